"""Checkpoints: the only file that talks to Orbax.

A checkpoint holds one pytree (the task state: params, optimizer state, EMA,
step; plus the training RNG key) and a small JSON of metadata (step, data
position). Restore walks from the newest step down: a checkpoint that cannot be
read is moved aside to `<dir>_corrupt/<step>` (kept, never deleted) with a
warning, and the newest readable one is used. If none is readable, nothing is
moved and the run stops with an error rather than start over on top of them.

Orbax 0.12.8 checksums only the shard index of an array file (crc32c), not the
values, so bytes garbled inside an array restore silently. Each save therefore
stores the sha256 of every leaf's bytes in its metadata ("digests"), and a
restore whose values do not match is treated like an unreadable checkpoint.

A save that fails (a full disk) surfaces as one `CheckpointWriteError` naming
the step that was not written and the last step that was.
"""

import errno
import hashlib
import logging as std_logging
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from gen_jax.errors import UserError


def _not_the_read_only_notice(record) -> bool:
  """Orbax warns on every read-only manager; read-only is what eval and readers ask for."""
  return not str(record.msg).startswith("Given directory is read only")


logging.get_absl_logger().addFilter(_not_the_read_only_notice)


class CheckpointWriteError(UserError):
  """A checkpoint could not be written (e.g. no space left on the device)."""


class CheckpointLayoutError(UserError):
  """The checkpoints hold another pytree than the task builds (an older state layout)."""


def leaf_digests(tree) -> dict[str, str] | None:
  """{key path: sha256 of the leaf's bytes}, or None when a leaf is not on this host."""
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  if not all(getattr(leaf, "is_fully_addressable", True) for _, leaf in leaves):
    return None
  values = jax.device_get([leaf for _, leaf in leaves])
  return {jax.tree_util.keystr(path): hashlib.sha256(np.ascontiguousarray(value).tobytes())
          .hexdigest() for (path, _), value in zip(leaves, values)}


def os_error_reason(error: BaseException) -> str:
  """'no space left on device (path)' for the innermost OSError behind `error`, else its
  first line (Orbax and TensorStore wrap the OSError of a failed write)."""
  seen, pending = set(), [error]
  while pending:
    current = pending.pop()
    if current is None or id(current) in seen:
      continue
    seen.add(id(current))
    if isinstance(current, OSError) and current.errno:
      where = f" ({current.filename})" if current.filename else ""
      return f"{os.strerror(current.errno).lower()}{where}"
    pending += [current.__cause__, current.__context__,
                *getattr(current, "exceptions", ())]
  text = str(error)
  for number in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES):
    if os.strerror(number).lower() in text.lower():
      return os.strerror(number).lower()
  return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"


class Checkpointer:
  """Periodic saves (keeping the newest `max_to_keep`) and restore-or-none.

  `read_only` (eval, sample) never writes: nothing is saved, cleaned or moved.
  """

  def __init__(self, directory: str, max_to_keep: int = 3, read_only: bool = False):
    self.directory = os.path.abspath(directory)
    self.max_to_keep, self.read_only = max_to_keep, read_only
    self._in_flight, self._failed = None, False
    self._manager = self._create_manager()

  def _create_manager(self) -> ocp.CheckpointManager:
    if self.read_only:
      options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                             save_interval_steps=0, max_to_keep=None)
    else:  # a save cut short leaves a tmp directory: the next manager removes it
      options = ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep, create=True,
                                             cleanup_tmp_directories=True)
    return ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, tree, metadata: dict) -> None:
    """Saves `tree` at `step` (asynchronously; `wait` blocks until it is on disk)."""
    if step in self._manager.all_steps():
      return
    self.wait()  # the previous save's error belongs to the previous step
    self._check_free_space(step, tree)
    metadata = {**metadata, "digests": leaf_digests(tree)}
    try:
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(tree), metadata=ocp.args.JsonSave(metadata)))
    except Exception as error:  # pylint: disable=broad-except  # any failed write
      raise self._write_error(step, error) from None
    self._in_flight = step

  def delete_after(self, step: int) -> None:
    """Removes the checkpoints past `step` (a resumed run's later evals are redone)."""
    self.wait()
    for later in [s for s in self._manager.all_steps() if s > step]:
      self._manager.delete(later)

  def _check_free_space(self, step: int, tree) -> None:
    """A full disk found before Orbax starts: a write that fails halfway leaves its
    threads' callbacks printing tracebacks into a closed event loop."""
    needed = sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(tree))
    free = shutil.disk_usage(self.directory).free
    if free < needed:  # uncompressed size: an upper bound of what the save writes
      raise self._write_error(step, OSError(
          errno.ENOSPC, os.strerror(errno.ENOSPC),
          f"{self.directory}: {free / 2**20:.1f} MiB free, the arrays take "
          f"{needed / 2**20:.1f} MiB uncompressed"))

  def _write_error(self, step: int, error: BaseException) -> CheckpointWriteError:
    self._failed = True
    saved = [s for s in self._manager.all_steps() if s < step and self._is_complete(s)]
    last = f"step {max(saved)} is the last saved" if saved else "no step is saved"
    return CheckpointWriteError(f"checkpoint at step {step} could not be written: "
                                f"{os_error_reason(error)}; {last} (in {self.directory})")

  def _is_complete(self, step: int) -> bool:
    return os.path.isdir(os.path.join(self.directory, str(step)))

  def _restore_step(self, step: int, abstract_tree):
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_tree), metadata=ocp.args.JsonRestore()))
    # Touch every leaf so a truncated array fails here, not inside the train step.
    jax.block_until_ready(restored["state"])
    metadata = dict(restored["metadata"])
    saved_digests = metadata.pop("digests", None)
    if saved_digests:  # checkpoints from before digests were saved have none
      digests = leaf_digests(restored["state"])
      bad = [key for key in saved_digests if digests is not None and
             digests.get(key) != saved_digests[key]]
      if bad:
        raise ValueError(f"{len(bad)} of {len(saved_digests)} arrays differ from their saved "
                         f"sha256 (first: {bad[0]})")
    return restored["state"], metadata

  def restore_latest(self, abstract_tree):
    """(tree, metadata) of the newest readable checkpoint, or None when there is none.

    `abstract_tree` holds `jax.ShapeDtypeStruct`s (with shardings) of the tree.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    errors = []
    for step in steps:
      try:
        tree, metadata = self._restore_step(step, abstract_tree)
      except Exception as error:  # pylint: disable=broad-except  # any unreadable checkpoint
        self._check_layout(step, abstract_tree)  # a tree of another shape is not corrupt
        errors.append((step, f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"))
        continue
      for bad_step, reason in errors:
        self._move_aside(bad_step, reason)
      if errors and not self.read_only:
        self._manager = self._create_manager()  # forget the moved steps
      return tree, metadata
    if errors:
      raise UserError(f"no readable checkpoint in {self.directory} (steps "
                      f"{[s for s, _ in errors]}; newest failed with {errors[0][1]}); "
                      "move them away to start from scratch")
    return None

  def _check_layout(self, step: int, abstract_tree) -> None:
    """A CheckpointLayoutError when the tree saved at `step` (its digests' key paths) has
    other leaves than `abstract_tree`: a checkpoint written before the state's layout
    changed (TrainState(step, params, opt_state, ema_params, aux) for every family), which
    no restore can read; moving it aside as corrupt would hide it."""
    try:
      saved = self._manager.restore(step, args=ocp.args.Composite(
          metadata=ocp.args.JsonRestore()))["metadata"].get("digests")
    except Exception:  # pylint: disable=broad-except  # no readable metadata: not decidable
      return
    expected = {jax.tree_util.keystr(path)
                for path, _ in jax.tree_util.tree_leaves_with_path(abstract_tree)}
    if not saved or set(saved) == expected:
      return
    differ = sorted(set(saved) ^ expected)
    raise CheckpointLayoutError(
        f"the checkpoint at step {step} in {os.path.dirname(self.directory)} holds another "
        f"state layout than this code builds ({len(differ)} leaves differ, first: "
        f"{differ[0]}): it predates the one-state change (TrainState(step, params, opt_state, "
        "ema_params, aux) for every family) and cannot be restored; start a new --workdir")

  def _move_aside(self, step: int, reason: str) -> None:
    source = os.path.join(self.directory, str(step))
    target = os.path.join(self.directory + "_corrupt", str(step))
    suffix = 1
    while os.path.exists(target):
      target = os.path.join(self.directory + "_corrupt", f"{step}.{suffix}")
      suffix += 1
    if self.read_only:
      logging.warning("checkpoint at step %d is unreadable (%s); fell back to an older one "
                      "(left in place: read-only)", step, reason)
      return
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.move(source, target)
    logging.warning("checkpoint at step %d is unreadable (%s); moved it to %s and "
                    "fell back to an older one", step, reason, target)

  def wait(self) -> None:
    """Blocks until the save in flight is on disk; a CheckpointWriteError if it failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as error:  # pylint: disable=broad-except  # any failed write
      if self._failed:  # reported already
        return
      raise self._write_error(self._in_flight, error) from None
    finally:
      self._in_flight = None

  def close(self) -> None:
    try:
      self.wait()
    finally:
      try:
        self._manager.close()
      except Exception:  # pylint: disable=broad-except  # a failed save, reported by wait
        if not self._failed:
          raise


# Orbax messages that say what the one-line errors of gen_jax.checkpointing say
# (a save that failed, logged with a traceback by each of its threads).
ORBAX_MESSAGES_REPORTED_ELSEWHERE = (
    "_SignalingThread.run() raised", "in background save thread", "Save Finalize thread",
    "Failed to write metadata")


def newest_step(workdir: str) -> int | None:
  """The step of the newest checkpoint under `workdir`/checkpoints (None: there is none)."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return None
  checkpointer = Checkpointer(directory, read_only=True)
  step = checkpointer.latest_step()
  checkpointer.close()
  return step


def quiet_info_logs() -> None:
  """Orbax logs every save step at INFO; keep its warnings and errors only."""
  class _Filter(std_logging.Filter):
    def filter(self, record):
      if "/orbax/" not in record.pathname:
        return True
      message = record.getMessage()
      return (record.levelno >= std_logging.WARNING and
              not any(part in message for part in ORBAX_MESSAGES_REPORTED_ELSEWHERE))
  logging.get_absl_handler().addFilter(_Filter())

"""Checkpoints: the only file that talks to Orbax.

A checkpoint holds one pytree (the task state: params, optimizer state, EMA,
step; plus the training RNG key) and a small JSON of metadata (step, data
position). Restore walks from the newest step down: a checkpoint that cannot be
read is moved aside to `<dir>_corrupt/<step>` (kept, never deleted) with a
warning, and the newest readable one is used. If none is readable, nothing is
moved and the run stops with an error rather than start over on top of them.
"""

import os
import shutil

import jax
import orbax.checkpoint as ocp
from absl import logging

from gen_jax.errors import UserError


class Checkpointer:
  """Periodic saves (keeping the newest `max_to_keep`) and restore-or-none."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.max_to_keep = max_to_keep
    self._manager = self._create_manager()

  def _create_manager(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep, create=True)
    return ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, tree, metadata: dict) -> None:
    """Saves `tree` at `step` (asynchronously; `wait` blocks until it is on disk)."""
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), metadata=ocp.args.JsonSave(metadata)))

  def _restore_step(self, step: int, abstract_tree):
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_tree), metadata=ocp.args.JsonRestore()))
    # Touch every leaf so a truncated array fails here, not inside the train step.
    jax.block_until_ready(restored["state"])
    return restored["state"], dict(restored["metadata"])

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
        errors.append((step, f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"))
        continue
      for bad_step, reason in errors:
        self._move_aside(bad_step, reason)
      if errors:
        self._manager = self._create_manager()  # forget the moved steps
      return tree, metadata
    if errors:
      raise UserError(f"no readable checkpoint in {self.directory} (steps "
                      f"{[s for s, _ in errors]}; newest failed with {errors[0][1]}); "
                      "move them away to start from scratch")
    return None

  def _move_aside(self, step: int, reason: str) -> None:
    source = os.path.join(self.directory, str(step))
    target = os.path.join(self.directory + "_corrupt", str(step))
    suffix = 1
    while os.path.exists(target):
      target = os.path.join(self.directory + "_corrupt", f"{step}.{suffix}")
      suffix += 1
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.move(source, target)
    logging.warning("checkpoint at step %d is unreadable (%s); moved it to %s and "
                    "fell back to an older one", step, reason, target)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

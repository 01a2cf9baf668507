"""The run directory: can it hold a run, and is one trainer at a time writing it.

A trainer holds `<workdir>/train.lock` for as long as it runs: an exclusive
`flock` on the file, which the kernel releases when the process exits in any
way (kill -9 included), so a crashed run never leaves a stale lock behind. The
file names the holder (host, pid) for the message a second trainer gets. Where
the filesystem has no `flock` (some network mounts), the lock falls back to the
file's existence, and a lock whose holder is a dead pid on this host is stale.
In a multi-host job only process 0 takes the lock; the others learn whether it
succeeded, so every process stops with the same one-line error.
"""

import contextlib
import errno
import fcntl
import json
import os
import socket
import tempfile
import time

import jax
import numpy as np
from absl import logging

from gen_jax import config_defaults
from gen_jax.errors import UserError

LOCK_NAME = "train.lock"


def ensure_writable_directory(path: str, flag: str = "--workdir") -> None:
  """Creates `path` if needed; a UserError when it is a file or cannot be written."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"{flag}={path} is a file, not a directory: name a directory")
  try:
    os.makedirs(path, exist_ok=True)
    create_scratch_file(path)
  except OSError as error:
    raise UserError(f"{flag}={path} cannot be written ({error.strerror or error}): name a "
                    "writable directory" + (" (or --output_dir=DIR for eval and sample outputs)"
                                            if flag == "--workdir" else "")) from None


def create_scratch_file(path: str) -> None:
  """Creates and removes a file in directory `path`: an OSError when it cannot be written
  (a read-only mount, no permission), which os.access does not see for read-only mounts."""
  tempfile.TemporaryFile(dir=path).close()


def is_writable_directory(path: str) -> bool:
  try:
    create_scratch_file(path)
  except OSError:
    return False
  return True


def _holder(path: str) -> dict:
  try:
    with open(path) as f:
      return json.loads(f.read() or "{}")
  except (OSError, ValueError):
    return {}


def _describe(holder: dict) -> str:
  return (f"process {holder.get('pid', '?')} on {holder.get('host', '?')} "
          f"(since {holder.get('since', '?')})")


def _pid_is_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class WorkdirLock:
  """An exclusive lock on a workdir for one trainer (see the module docstring)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_NAME)
    self._fd = None

  def acquire(self) -> None:
    """Takes the lock or raises a UserError naming the process that holds it."""
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
          raise UserError(f"another trainer is writing this workdir: {_describe(_holder(self.path))}"
                          f" holds {self.path}; wait for it, stop it, or use another --workdir"
                          ) from None
        fd = self._acquire_without_flock()  # e.g. ENOLCK on a network filesystem
        break
      if self._is_current_file(fd):  # not a file its last holder removed as we opened it
        break
      os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    self._fd = fd

  def _is_current_file(self, fd: int) -> bool:
    try:
      return os.fstat(fd).st_ino == os.stat(self.path).st_ino
    except OSError:
      return False

  def _acquire_without_flock(self) -> int:
    holder = _holder(self.path)
    stale = (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
             and not _pid_is_alive(holder["pid"]))
    if holder and not stale:
      raise UserError(f"another trainer may be writing this workdir: {_describe(holder)} holds "
                      f"{self.path} (no flock here); if it is gone, delete that file")
    return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

  def release(self) -> None:
    if self._fd is None:
      return
    with contextlib.suppress(OSError):  # already gone, or the directory turned read-only
      os.unlink(self.path)  # unlink first, then unlock: a waiter never locks a removed file
    os.close(self._fd)
    self._fd = None

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()


def training_lock_holder(workdir: str) -> str | None:
  """Who trains in `workdir` right now ('process P on H'), or None; takes no lock."""
  path = os.path.join(workdir, LOCK_NAME)
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except OSError as error:
    return _describe(_holder(path)) if error.errno in (errno.EWOULDBLOCK, errno.EACCES) else None
  finally:
    os.close(fd)  # closing drops the shared lock if it was taken
  return None


def lock_for_training(workdir: str) -> WorkdirLock | None:
  """Process 0 takes the workdir's lock; every process raises the same error if it fails."""
  lock, message = None, ""
  if jax.process_index() == 0:
    lock = WorkdirLock(workdir)
    try:
      lock.acquire()
    except UserError as error:
      lock, message = None, str(error)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    encoded = np.frombuffer(message.encode().ljust(512)[:512], np.uint8)
    message = bytes(np.asarray(multihost_utils.broadcast_one_to_all(encoded))).decode(
        errors="replace").strip()
  if message:
    raise UserError(message)
  return lock


def flat_items(config, prefix: str = "") -> dict:
  """{'train.batch_size': 64, ...}: a (nested) config as dotted keys."""
  items = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      items.update(flat_items(value, f"{prefix}{key}."))
    else:
      items[f"{prefix}{key}"] = value
  return items


def changes_the_saved_state(key: str, old, new) -> bool:
  """True for keys whose change gives the model other shapes or another meaning."""
  if key == "train.ema_decay":  # the state holds an EMA only when the decay is > 0
    return ((old or 0) > 0) != ((new or 0) > 0)
  # data.validation_fraction: the held-out examples would have been trained on, or not
  return key.startswith("model.") or key in ("data.name", "data.binarization",
                                              "data.validation_fraction")


def check_resumed_config(stored, config) -> None:
  """Refuses a resume whose config changes the saved state, warns about the data order.

  `stored` is the run's config.json (read back), `config` the new one. A change
  of the model, the dataset or its binarization is a UserError naming each
  key; a new batch size or seed is accepted with a warning of what happens to
  the order of the data; anything else (num_steps, log_every...) is noted.
  """
  # Both through JSON, as config.json was written: tuples become lists, and so on.
  old = flat_items(json.loads(stored.to_json_best_effort()))
  new = flat_items(json.loads(config.to_json_best_effort()))
  changed = {key: (old[key], new[key]) for key in sorted(old.keys() & new.keys())
             if old[key] != new[key] and key != "cpu_devices"}
  refused = [f"{key} ({a!r} -> {b!r})" for key, (a, b) in changed.items()
             if changes_the_saved_state(key, a, b)]
  if refused:  # keys only one of them has (older or newer code) are not compared
    raise UserError(f"the run in this workdir has another model or data than this config: "
                    f"{', '.join(refused)}; use a new --workdir, or set these back to resume")
  if "train.batch_size" in changed:
    old_batch, new_batch = changed.pop("train.batch_size")
    logging.warning(f"train.batch_size changed {old_batch} -> {new_batch} since this run's "
                    "config.json: the batches after the restored step are drawn as if every "
                    f"step had used {new_batch} examples, so the rest of the interrupted epoch "
                    "is skipped or partly repeated (not the data order of an uninterrupted run)")
  if "seed" in changed:
    old_seed, new_seed = changed.pop("seed")
    logging.warning(f"seed changed {old_seed} -> {new_seed} since this run's config.json: the "
                    "data order and eval/sample keys after the restored step follow the new "
                    "seed")
  if changed:
    logging.info("config changes since this run's config.json: " + ", ".join(
        f"{key} ({a!r} -> {b!r})" for key, (a, b) in changed.items()))


def check_stored_config(config, workdir: str) -> None:
  """Before anything is written: a resume must keep the model and data of its checkpoints."""
  checkpoints = os.path.join(workdir, "checkpoints")
  has_checkpoint = os.path.isdir(checkpoints) and any(
      name.isdigit() for name in os.listdir(checkpoints))
  if has_checkpoint and os.path.isfile(os.path.join(workdir, "config.json")):
    stored = config_defaults.read_run_config(os.path.join(workdir, "config.json"))
    check_resumed_config(stored, config)


def output_directory(workdir: str, mode: str, output_dir: str | None) -> str:
  """Where a mode writes metrics and samples: the workdir (training), or for the other
  modes `output_dir` when given, else the workdir if it is writable and no trainer in it
  appends to the same metrics.jsonl."""
  if mode == "train":
    ensure_writable_directory(workdir)
    return workdir
  if not os.path.isdir(workdir):
    raise UserError(f"--workdir={workdir} holds no run: train first")
  if output_dir:
    ensure_writable_directory(output_dir, "--output_dir")
    return output_dir
  if not is_writable_directory(workdir):
    raise UserError(f"--workdir={workdir} is read-only: pass --output_dir=DIR for the "
                    f"{mode} outputs")
  holder = training_lock_holder(workdir)
  if holder and mode != "sample":  # samples get names of their own; metrics would interleave
    raise UserError(f"a trainer ({holder}) is writing {workdir}: pass --output_dir=DIR for "
                    f"the {mode} outputs, or wait for it")
  return workdir

"""The generic trainer: mesh, restore-or-init, one jit'd step, eval, samples, logs.

It knows only the task interface of `gen_jax.tasks`, never a model by name.
`run(config, workdir, mode)` with mode 'train' (resuming from the workdir's
checkpoints), 'eval' (the whole eval split, once) or 'sample' (one grid).
"""

import dataclasses
import errno
import glob
import math
import os
import signal
import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm

from gen_jax import applications, checkpointing, data, parallel, runs, tasks
from gen_jax.selection import StepSelection, held_out_split
from gen_jax import workdir as workdir_lib
from gen_jax.errors import NonFiniteError, StoppedBySignal, UserError
from gen_jax.runs import abstract_checkpoint, dataset_spec, example_batch  # noqa: F401 (API)
from gen_jax.writers import MetricWriter

MODES = ("train", "eval", "sample")
# Dispatch runs ahead of execution by at most this many train steps. Unbounded,
# a log interval of fast steps queues up on XLA's CPU client, and with several
# host devices their all-reduces can starve each other of threads until the
# rendezvous aborts the process (seen with a char-RNN, 2 devices, 250 steps).
MAX_STEPS_IN_FLIGHT = 4


def validate_config(config, mesh) -> None:
  """Checks values that can be wrong together, before anything compiles."""
  if config.model.name not in tasks.TASKS:
    raise UserError(f"unknown model.name {config.model.name!r}; known: {', '.join(sorted(tasks.TASKS))}")
  if config.data.binarization not in ("none", "fixed", "dynamic"):
    raise UserError(f"data.binarization={config.data.binarization!r}: use none, fixed or dynamic")
  if not 0.0 <= config.data.background_noise_rate < 1.0:
    raise UserError(f"data.background_noise_rate={config.data.background_noise_rate} must be "
                    "in [0, 1)")
  if config.train.num_steps < 0 or config.train.log_every <= 0:
    raise UserError("train.num_steps must be >= 0 and train.log_every > 0")
  if config.train.compute_dtype not in ("float32", "bfloat16"):
    raise UserError(f"train.compute_dtype={config.train.compute_dtype!r}: use float32 or bfloat16")
  accum = config.train.grad_accum_steps
  if accum < 1 or config.train.batch_size % accum:
    raise UserError(f"train.grad_accum_steps={accum} must be >= 1 and divide "
                    f"train.batch_size={config.train.batch_size}")
  parallel.check_batch_size(config.train.batch_size, mesh, "train.batch_size")
  if accum > 1:
    parallel.check_batch_size(config.train.batch_size // accum, mesh,
                              "train.batch_size / train.grad_accum_steps")
  parallel.check_batch_size(config.train.eval_batch_size, mesh, "train.eval_batch_size")
  if config.train.select_metric and not config.data.validation_fraction:
    raise UserError(f"train.select_metric={config.train.select_metric} picks the step on a "
                    "validation split, never on the test split: set data.validation_fraction "
                    "(e.g. 0.1)")
  if config.train.select_mode not in ("min", "max"):
    raise UserError(f"train.select_mode={config.train.select_mode!r}: use min or max")


def is_due(step: int, every: int, last_step: int) -> bool:
  """True every `every` steps (never when every == 0) and always at the last step."""
  return step == last_step or (every > 0 and step % every == 0)


def mean_metrics(history: list[dict]) -> dict[str, float]:
  """Host means of a list of per-step device metric dicts (one sync)."""
  history = jax.device_get(history)
  return {k: float(np.mean([h[k] for h in history])) for k in history[0]}


def check_finite(metrics: dict[str, float], step: int,
                 last_saved_step: Callable[[], int | None] = lambda: None) -> None:
  """A NonFiniteError naming the step and metrics, and the last checkpoint (if any);
  `last_saved_step` is only asked (a directory listing) when something is non-finite."""
  bad = [name for name, value in metrics.items() if not math.isfinite(value)]
  if bad:
    last_saved = last_saved_step()
    kept = (f"the last good checkpoint (step {last_saved}) is kept" if last_saved is not None
            else "no checkpoint was saved before it")
    raise NonFiniteError(f"non-finite {', '.join(bad)} at step {step} "
                         f"({', '.join(f'{k}={metrics[k]}' for k in bad)}); {kept}")


def evaluate(eval_step, state, split, rng, mesh, config) -> dict[str, float]:
  """Example-weighted means of the task's eval sums over the whole split."""
  totals = None
  batches = data.eval_batches(split, global_batch_size=config.train.eval_batch_size,
                              process_index=jax.process_index(),
                              process_count=jax.process_count(),
                              binarization=config.data.binarization, seed=config.seed)
  for index, batch in enumerate(batches, start=1):
    sums = eval_step(state, parallel.to_global(batch, mesh), rng)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    if index % MAX_STEPS_IN_FLIGHT == 0:  # bounded dispatch, as in training
      jax.block_until_ready(totals)
  totals = jax.device_get(totals)
  count = float(totals.pop("num_examples"))
  return {name: float(value) / count for name, value in totals.items()}


class StopRequest:
  """Turns SIGTERM/SIGINT into a flag the loop polls, so it can save before exiting."""

  def __init__(self, enabled: bool = True):
    self.signal_number, self.enabled = None, enabled
    self._previous = {}

  def __enter__(self):
    if self.enabled and threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if self.signal_number is not None:  # a second signal: stop now, without saving
      raise KeyboardInterrupt
    self.signal_number = signum
    logging.warning("signal %d: saving a checkpoint after the current step, then exiting "
                    "(send it again to stop at once)", signum)

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


@dataclasses.dataclass(frozen=True)
class LoopHooks:
  """What the training loop calls out to besides its step, and the stop flag it polls."""
  writer: MetricWriter  # train metrics every log_every steps
  checkpointer: checkpointing.Checkpointer  # saves every checkpoint_every steps and on a stop
  evaluate: Callable  # (state, step) -> None: the whole eval split, written, every eval_every
  sample: Callable  # (state, step) -> None: a sample grid, written, every sample_every
  stop: StopRequest
  results: dict  # where the loop leaves its last train means ('train'), for `run` to return


def restore_run(config, workdir: str, mesh=None):
  """(state, step) of the newest readable checkpoint of the run in `workdir`."""
  return runs.restore_state(config, workdir, mesh)


def restore_or_init(task, checkpointer, init_rng, train_rng, example_batch, mesh):
  """(state, train_rng, step) from the newest readable checkpoint, or a fresh init."""
  restored = checkpointer.restore_latest(
      abstract_checkpoint(task, init_rng, train_rng, example_batch, mesh))
  if restored is not None:
    tree, metadata = restored
    logging.info("restored step %d from %s", metadata["step"], checkpointer.directory)
    saved_devices = metadata.get("num_devices", mesh.devices.size)
    if saved_devices != mesh.devices.size and not checkpointer.read_only:
      logging.warning("step %d was saved with %d devices, this run has %d: the data order is "
                      "unchanged (same global batches), but sums are reduced in another order, "
                      "so the result is not bitwise that of an uninterrupted run",
                      metadata["step"], saved_devices, mesh.devices.size)
    return tree["state"], tree["rng"], int(metadata["step"])
  state = jax.jit(task.init, out_shardings=parallel.replicated(mesh))(init_rng, example_batch)
  return state, train_rng, 0


def write_config(config, workdir: str) -> None:
  if parallel.is_main_process():
    path = os.path.join(workdir, "config.json")
    with open(path + ".tmp", "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    os.replace(path + ".tmp", path)


def run(config, workdir: str, mode: str = "train", mesh=None,
        output_dir: str | None = None) -> dict[str, dict[str, float]]:
  """Trains / evaluates / samples per `mode`; returns the last metrics by split.

  Only training writes the workdir (holding its lock: one trainer at a time);
  the other modes read it and write their outputs to `output_dir` (default: the
  workdir). A training run stopped by SIGTERM/SIGINT saves, then raises
  StoppedBySignal.
  """
  mesh = mesh or parallel.create_mesh()
  spec = dataset_spec(config.data)
  validate_config(config, mesh)
  task = tasks.create_task(config, spec)
  if mode not in MODES and mode not in applications.RUN_MODES:
    raise UserError(f"unknown mode {mode!r} for {config.model.name}; use one of "
                    f"{', '.join((*MODES, *applications.RUN_MODES))}")
  with StopRequest(enabled=mode == "train") as stop:
    if task.prepare_eval is not None and mode in ("train", "eval"):
      task.prepare_eval(mesh)  # a missing evaluation network fails here, before any step
    splits = data.load_splits(config.data, held_out_split(config, mode))
    outputs = workdir_lib.output_directory(workdir, mode, output_dir)
    lock = workdir_lib.lock_for_training(workdir) if mode == "train" else None
    try:
      workdir_lib.check_stored_config(config, workdir)  # before config.json is replaced
      if mode == "train":
        write_config(config, workdir)
      return run_in_workdir(config, workdir, outputs, mode, mesh, spec, task, splits, stop)
    finally:
      if lock is not None:
        lock.release()


def run_in_workdir(config, workdir, outputs, mode, mesh, spec, task, splits, stop):
  """`run` once the workdir is checked (and locked for training)."""
  train_split, eval_split = splits
  batches = data.TrainBatches(train_split, global_batch_size=config.train.batch_size,
                              seed=config.seed, process_index=jax.process_index(),
                              process_count=jax.process_count(),
                              binarization=config.data.binarization,
                              noise_rate=config.data.background_noise_rate,
                              noise_levels=data.noise_levels(spec))
  directory = (os.path.join(workdir, "checkpoints") if mode == "train" else
               runs.checkpoint_directory(config, workdir))  # a reader: the picked step
  if mode != "train" and not os.path.isdir(directory):
    raise UserError(f"--mode {mode} needs a checkpoint in {directory}; train first")
  checkpointer = checkpointing.Checkpointer(directory, config.train.keep_checkpoints,
                                            read_only=mode != "train")
  init_rng, train_rng, eval_rng, sample_rng = runs.run_keys(config, mesh)
  try:
    state, train_rng, step = restore_or_init(task, checkpointer, init_rng, train_rng,
                                             example_batch(config, spec, mesh), mesh)
  except BaseException:
    checkpointer.close()
    raise
  if mode != "train" and checkpointer.latest_step() is None:
    checkpointer.close()
    raise UserError(f"--mode {mode} needs a checkpoint in {checkpointer.directory}; train first")
  writer = MetricWriter(outputs, enabled=parallel.is_main_process(),
                        resume_step=step if mode == "train" else None)
  eval_name = "validation" if held_out_split(config, mode) == "validation" else "eval"
  selection = None  # training with train.select_metric: a StepSelection

  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  eval_step = jax.jit(task.eval_step, in_shardings=(replicated, sharded, replicated),
                      out_shardings=replicated)
  sample = jax.jit(task.sample, static_argnums=2, out_shardings=replicated)
  results = {}

  def do_eval(state, step):
    metrics = results[eval_name] = evaluate(eval_step, state, eval_split, eval_rng, mesh, config)
    if task.split_metrics is not None:
      split_metrics = task.split_metrics(state, eval_rng, eval_split, mesh)
      for name in [name for name, value in split_metrics.items() if np.ndim(value) == 1]:
        writer.write_histogram(step, f"{eval_name}/{name}", split_metrics.pop(name))
      metrics.update(split_metrics)
    if selection is not None:  # saved before its record: a resume redoes an eval it lacks
      selection.update(metrics, step, {"state": state, "rng": train_rng},
                       {"step": step, "data_position": step, "num_devices": mesh.devices.size})
    writer.write_scalars(step, eval_name, metrics)
    logging.info("step %d %s %s", step, eval_name, metrics)

  def do_sample(state, step, writer=writer):
    samples = jax.device_get(sample(state, jax.random.fold_in(sample_rng, step),
                                    config.train.num_samples))
    path = (task.write_samples(writer, step, samples) if task.write_samples is not None
            else writer.write_images(step, "step", samples))
    logging.info("wrote %s", path)

  try:
    if mode in applications.RUN_MODES:
      run_object = runs.Run(workdir, config, spec, task, state, step, mesh)
      results[mode] = applications.RUN_MODES[mode](
          run_object, jax.random.fold_in(sample_rng, step + 1), writer) or {}
      if results[mode]:
        writer.write_scalars(step, mode, results[mode])
        logging.info("step %d %s %s", step, mode, results[mode])
    elif mode == "eval":
      do_eval(state, step)
    elif mode == "sample":  # never over a grid training wrote: sample_step_<N>_<k>.png
      do_sample(state, step, writer.tagged("sample_", f"_{unused_sample_index(outputs, step)}"))
      if task.complete is not None:  # applications/completion.py
        applications.completion.write_completions(
            runs.Run(workdir, config, spec, task, state, step, mesh),
            jax.random.fold_in(jax.random.fold_in(sample_rng, step), 1),
            config.train.num_samples, writer)
    else:
      if config.train.select_metric:
        selection = StepSelection(config, workdir, outputs, step)
      finish_owed_work(config, outputs, state, step, do_eval, do_sample, eval_name)
      train_step = jax.jit(task.train_step, in_shardings=(replicated, sharded, replicated),
                           out_shardings=(replicated, replicated), donate_argnums=0)
      hooks = LoopHooks(writer=writer, checkpointer=checkpointer, evaluate=do_eval,
                        sample=do_sample, stop=stop, results=results)
      train_loop(config, state, step, train_rng, train_step, batches, mesh, hooks)
  except OSError as error:  # a full disk meets metrics or samples before a checkpoint
    if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
      raise
    saved = checkpointer.latest_step()
    raise UserError(f"{error.filename or outputs} could not be written: "
                    f"{os.strerror(error.errno).lower()}; " +
                    (f"step {saved} is the last saved" if saved is not None else
                     "no step is saved")) from None
  finally:  # an error still finishes the saves in flight (the last good checkpoint)
    try:
      checkpointer.close()
    finally:
      try:
        if selection is not None:
          selection.close()
      finally:
        writer.close()
  if stop.signal_number is not None and mode == "train":
    saved = checkpointer.latest_step()
    raise StoppedBySignal(stop.signal_number, f"stopped by signal {stop.signal_number}; " + (
        f"step {saved} is saved in {checkpointer.directory}: rerun the same command to resume"
        if saved is not None else "no step was saved"))
  return results


def unused_sample_index(outputs: str, step: int) -> int:
  """The first k >= 1 with no samples/sample_*_<step>_<k>.* in `outputs`."""
  k = 1
  while glob.glob(os.path.join(glob.escape(outputs), "samples", f"sample_*_{step}_{k}.*")):
    k += 1
  return k


def finish_owed_work(config, outputs, state, step, do_eval, do_sample,
                     eval_name: str = "eval") -> None:
  """The eval and samples due at a restored step that a killed run did not get to write
  (its checkpoint is saved before them): e.g. the final eval and grid of a finished run."""
  if step == 0:
    return
  num_steps = max(config.train.num_steps, step)
  eval_owed = is_due(step, config.train.eval_every, num_steps) and not any(
      r["step"] == step for r in runs.read_metrics(outputs, eval_name))
  sample_owed = is_due(step, config.train.sample_every, num_steps) and not glob.glob(
      os.path.join(glob.escape(outputs), "samples", f"step_{step}.*"))
  if jax.process_count() > 1:  # every process must take part in both (collectives)
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    eval_owed, sample_owed = (bool(x) for x in multihost_utils.broadcast_one_to_all(
        np.array([eval_owed, sample_owed])))
  if eval_owed:
    logging.info("step %d: writing the eval a stopped run owed", step)
    do_eval(state, step)
  if sample_owed:
    logging.info("step %d: writing the samples a stopped run owed", step)
    do_sample(state, step)


def train_loop(config, state, step, train_rng, train_step, batches, mesh,
               hooks: LoopHooks) -> None:
  """Steps from `step` to config.train.num_steps; saves on SIGTERM/SIGINT and exits."""
  checkpointer, stop = hooks.checkpointer, hooks.stop
  num_steps = config.train.num_steps
  first = num_steps if stop.signal_number is not None else step  # stopped while compiling
  device_batches = data.prefetch(parallel.to_global(batches(s), mesh)
                                 for s in range(first, num_steps))
  history, last_log = [], (step, time.perf_counter())
  progress = tqdm(total=num_steps, initial=step, unit="step", dynamic_ncols=True,
                  disable=not (config.train.progress_bar and parallel.is_main_process()))

  def save(step):
    checkpointer.save(step, {"state": state, "rng": train_rng},
                      {"step": step, "data_position": step, "num_devices": mesh.devices.size})

  for batch in device_batches:
    state, metrics = train_step(state, batch, train_rng)
    step += 1
    history.append(metrics)
    if len(history) > MAX_STEPS_IN_FLIGHT:  # see MAX_STEPS_IN_FLIGHT
      jax.block_until_ready(history[-MAX_STEPS_IN_FLIGHT - 1])
    progress.update()
    stopping = stop.signal_number is not None  # read once: a signal may land mid-iteration
    checkpoint_due = is_due(step, config.train.checkpoint_every, num_steps) or stopping
    if is_due(step, config.train.log_every, num_steps):
      means = mean_metrics(history)  # the only host sync: at logging/checkpoint time
      check_finite(means, step, checkpointer.latest_step)
      elapsed = time.perf_counter() - last_log[1]
      means["steps_per_s"] = (step - last_log[0]) / max(elapsed, 1e-9)
      hooks.writer.write_scalars(step, "train", means)
      progress.set_postfix(loss=f"{means['loss']:.4f}")
      hooks.results["train"], history, last_log = means, [], (step, time.perf_counter())
    if checkpoint_due:
      if history:  # never save a state whose recent steps went non-finite
        check_finite(mean_metrics(history), step, checkpointer.latest_step)
      save(step)
    if stopping:
      logging.warning("signal %d: saved step %d to %s, exiting", stop.signal_number,
                      step, checkpointer.directory)
      break
    if is_due(step, config.train.eval_every, num_steps):
      hooks.evaluate(state, step)
    if is_due(step, config.train.sample_every, num_steps):
      hooks.sample(state, step)
  progress.close()

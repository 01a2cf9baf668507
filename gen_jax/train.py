"""The generic trainer: mesh, restore-or-init, one jit'd step, eval, samples, logs.

It knows only the task interface of `gen_jax.tasks`, never a model by name.
`run(config, workdir, mode)` with mode 'train' (resuming from the workdir's
checkpoints), 'eval' (the whole eval split, once) or 'sample' (one grid).
"""

import dataclasses
import math
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm

from gen_jax import applications, checkpointing, data, parallel, runs, tasks
from gen_jax.errors import NonFiniteError, UserError
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


def is_due(step: int, every: int, last_step: int) -> bool:
  """True every `every` steps (never when every == 0) and always at the last step."""
  return step == last_step or (every > 0 and step % every == 0)


def mean_metrics(history: list[dict]) -> dict[str, float]:
  """Host means of a list of per-step device metric dicts (one sync)."""
  history = jax.device_get(history)
  return {k: float(np.mean([h[k] for h in history])) for k in history[0]}


def check_finite(metrics: dict[str, float], step: int) -> None:
  bad = [name for name, value in metrics.items() if not math.isfinite(value)]
  if bad:
    raise NonFiniteError(f"non-finite {', '.join(bad)} at step {step} "
                         f"({', '.join(f'{k}={metrics[k]}' for k in bad)}); "
                         "the last good checkpoint is kept")


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


def completion_grid(originals: np.ndarray, start: int, completions: np.ndarray) -> np.ndarray:
  """Rows of originals, observed parts (unobserved sub-pixels grey) and completions."""
  num = len(originals)
  observed = originals.reshape(num, -1).copy()
  observed[:, start:] = 128
  return np.concatenate([originals, observed.reshape(originals.shape), completions])


def write_completions(task, state, split, rng, num, step, writer) -> None:
  """Completes the bottom half of the first `num` eval images: samples/completion_<step>.png."""
  images = split.images[:num]
  labels = None if split.labels is None else jnp.asarray(split.labels[:num])
  height, width, channels = images.shape[1:]
  start = (height // 2) * width * channels  # observe the top half
  complete = jax.jit(task.complete, static_argnums=4)
  completions = jax.device_get(complete(state, rng, jnp.asarray(images), labels, start))
  grid = completion_grid(images, start, np.asarray(completions))
  logging.info("wrote %s", writer.write_images(step, "completion", grid, num_columns=num))


class StopRequest:
  """Turns SIGTERM/SIGINT into a flag the loop polls, so it can save before exiting."""

  def __init__(self):
    self.signal_number = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.signal_number = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


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
    return tree["state"], tree["rng"], int(metadata["step"])
  state = jax.jit(task.init, out_shardings=parallel.replicated(mesh))(init_rng, example_batch)
  return state, train_rng, 0


def write_config(config, workdir: str) -> None:
  if parallel.is_main_process():
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def run(config, workdir: str, mode: str = "train", mesh=None) -> dict[str, dict[str, float]]:
  """Trains / evaluates / samples per `mode`; returns the last metrics by split."""
  mesh = mesh or parallel.create_mesh()
  spec = dataset_spec(config.data)
  validate_config(config, mesh)
  task = tasks.create_task(config, spec)
  if mode not in MODES and mode not in task.modes and mode not in applications.RUN_MODES:
    raise UserError(f"unknown mode {mode!r} for {config.model.name}; use one of "
                    f"{', '.join((*MODES, *task.modes, *applications.RUN_MODES))}")
  if task.prepare_eval is not None and mode in ("train", "eval"):
    task.prepare_eval(mesh)  # a missing evaluation network fails here, before any step
  train_split, eval_split = data.load_splits(config.data)
  batches = data.TrainBatches(train_split, global_batch_size=config.train.batch_size,
                              seed=config.seed, process_index=jax.process_index(),
                              process_count=jax.process_count(),
                              binarization=config.data.binarization,
                              noise_rate=config.data.background_noise_rate,
                              noise_levels=data.noise_levels(spec))
  os.makedirs(workdir, exist_ok=True)
  write_config(config, workdir)
  writer = MetricWriter(workdir, enabled=parallel.is_main_process())
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                            config.train.keep_checkpoints)
  init_rng, train_rng, eval_rng, sample_rng = runs.run_keys(config, mesh)
  state, train_rng, step = restore_or_init(task, checkpointer, init_rng, train_rng,
                                           example_batch(config, spec, mesh), mesh)
  if mode != "train" and checkpointer.latest_step() is None:
    raise UserError(f"--mode {mode} needs a checkpoint in {checkpointer.directory}; train first")

  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  eval_step = jax.jit(task.eval_step, in_shardings=(replicated, sharded, replicated),
                      out_shardings=replicated)
  sample = jax.jit(task.sample, static_argnums=2, out_shardings=replicated)
  results = {}

  def do_eval(state, step):
    results["eval"] = evaluate(eval_step, state, eval_split, eval_rng, mesh, config)
    if task.split_metrics is not None:
      split_metrics = task.split_metrics(state, eval_rng, eval_split, mesh)
      for name in [name for name, value in split_metrics.items() if np.ndim(value) == 1]:
        writer.write_histogram(step, f"eval/{name}", split_metrics.pop(name))
      results["eval"].update(split_metrics)
    writer.write_scalars(step, "eval", results["eval"])
    logging.info("step %d eval %s", step, results["eval"])

  def do_sample(state, step):
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
    elif mode in task.modes:
      results[mode] = task.modes[mode](state, jax.random.fold_in(sample_rng, step + 1),
                                       eval_split, step, writer, mesh) or {}
      if results[mode]:
        writer.write_scalars(step, mode, results[mode])
        logging.info("step %d %s %s", step, mode, results[mode])
    elif mode == "eval":
      do_eval(state, step)
    elif mode == "sample":
      do_sample(state, step)
      if task.complete is not None:
        write_completions(task, state, eval_split, jax.random.fold_in(jax.random.fold_in(sample_rng, step), 1),
                          config.train.num_samples, step, writer)
    else:
      train_step = jax.jit(task.train_step, in_shardings=(replicated, sharded, replicated),
                           out_shardings=(replicated, replicated), donate_argnums=0)
      train_loop(config, state, step, train_rng, train_step, batches, mesh,
                 writer, checkpointer, do_eval, do_sample, results)
  finally:  # an error still finishes the saves in flight (the last good checkpoint)
    checkpointer.close()
    writer.close()
  return results


def train_loop(config, state, step, train_rng, train_step, batches, mesh, writer,
               checkpointer, do_eval, do_sample, results):
  """Steps from `step` to config.train.num_steps; saves on SIGTERM/SIGINT and exits."""
  num_steps = config.train.num_steps
  device_batches = data.prefetch(parallel.to_global(batches(s), mesh)
                                 for s in range(step, num_steps))
  history, last_log = [], (step, time.perf_counter())
  progress = tqdm(total=num_steps, initial=step, unit="step", dynamic_ncols=True,
                  disable=not (config.train.progress_bar and parallel.is_main_process()))

  def save(step):
    checkpointer.save(step, {"state": state, "rng": train_rng},
                      {"step": step, "data_position": step, "num_devices": mesh.devices.size})

  with StopRequest() as stop:
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
        check_finite(means, step)
        elapsed = time.perf_counter() - last_log[1]
        means["steps_per_s"] = (step - last_log[0]) / max(elapsed, 1e-9)
        writer.write_scalars(step, "train", means)
        progress.set_postfix(loss=f"{means['loss']:.4f}")
        results["train"], history, last_log = means, [], (step, time.perf_counter())
      if checkpoint_due:
        if history:  # never save a state whose recent steps went non-finite
          check_finite(mean_metrics(history), step)
        save(step)
      if stopping:
        logging.warning("signal %d: saved step %d to %s, exiting", stop.signal_number,
                        step, checkpointer.directory)
        break
      if is_due(step, config.train.eval_every, num_steps):
        do_eval(state, step)
      if is_due(step, config.train.sample_every, num_steps):
        do_sample(state, step)
  progress.close()

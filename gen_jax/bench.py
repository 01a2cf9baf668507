"""`python -m gen_jax.bench`: train-step throughput, compile time and memory.

  python -m gen_jax.bench --config configs/pixelcnn.py --what train [--steps 20]
      [--reference torch] [--config.train.batch_size=32]

Prints one JSON line. Figures are medians over repeated timed steps; with
`--reference torch` the equivalent PyTorch eager model (benchmarks/) is timed
in the same process run and the ratio is reported as `speedup_vs_reference`.
"""

import functools
import json
import resource
import statistics
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from gen_jax import parallel, tasks, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WHAT = flags.DEFINE_enum("what", "train", ["train", "sample"], "What to measure.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 16, "Images per sampling run (--what sample).")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after compile + 2 warm-up steps).")
_REFERENCE = flags.DEFINE_enum("reference", None, ["torch"],
                               "Also time the PyTorch eager equivalent in this process.")
flags.mark_flags_as_required(["config"])


def synthetic_batch(config, spec, mesh) -> dict:
  """A fixed random batch with the dataset's shapes (no data read needed)."""
  rng = np.random.default_rng(config.seed)
  size = config.train.batch_size // jax.process_count()
  batch = {"image": rng.integers(0, spec.num_levels, (size, *spec.image_shape), dtype=np.uint8)}
  if spec.num_classes:
    batch["label"] = rng.integers(0, spec.num_classes, (size,), dtype=np.int32)
  return parallel.to_global(batch, mesh)


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def measure_train(config, num_steps: int) -> dict:
  """Compile time and median step time of the task's jit'd, sharded, donated train step."""
  mesh = parallel.create_mesh()
  train.validate_config(config, mesh)
  spec = train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  batch = synthetic_batch(config, spec, mesh)
  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  init_rng, step_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  state = jax.jit(task.init, out_shardings=replicated)(init_rng, batch)
  step_fn = jax.jit(task.train_step, in_shardings=(replicated, sharded, replicated),
                    out_shardings=(replicated, replicated), donate_argnums=0)
  start = time.perf_counter()
  compiled = step_fn.lower(state, batch, step_rng).compile()
  compile_s = time.perf_counter() - start
  for _ in range(2):  # warm-up
    state, metrics = compiled(state, batch, step_rng)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(num_steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, step_rng)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  return {"examples_per_s": config.train.batch_size / step_s, "step_ms_median": 1e3 * step_s,
          "compile_s": compile_s, "num_devices": mesh.devices.size}


def time_call(fn, *args) -> tuple[float, float, jax.Array]:
  """(compile s, run s, output) of a jit'd function: first call compiles, second is timed."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  return compile_s, time.perf_counter() - start, out


def measure_sample(config, num_samples: int) -> dict:
  """Naive vs cached ancestral sampling of an untrained model, same key: time and agreement."""
  mesh = parallel.create_mesh()
  spec = train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  if task.sample_naive is None or not config.model.get("cached_sampling", False):
    raise app.UsageError(f"{config.model.name} has no cached sampler to compare")
  state = jax.jit(task.init)(jax.random.PRNGKey(config.seed), synthetic_batch(config, spec, mesh))
  rng = jax.random.PRNGKey(config.seed + 1)
  naive_compile, naive_s, naive = time_call(
      jax.jit(functools.partial(task.sample_naive, num=num_samples)), state, rng)
  cached_compile, cached_s, cached = time_call(
      jax.jit(functools.partial(task.sample, num=num_samples)), state, rng)
  return {"num_samples": num_samples, "naive_s": naive_s, "cached_s": cached_s,
          "speedup": naive_s / cached_s, "agree": bool((naive == cached).all()),
          "naive_compile_s": naive_compile, "cached_compile_s": cached_compile}


def measure_torch_reference(config, num_steps: int) -> dict:
  from benchmarks import pytorch_pixelcnn  # optional dependency: torch
  if config.model.name != "pixelcnn":
    raise app.UsageError(f"no PyTorch reference for model {config.model.name!r}")
  height, width, _ = train.dataset_spec(config.data).image_shape
  result = pytorch_pixelcnn.time_train_steps(
      config.train.batch_size, image_size=height, features=config.model.features,
      num_blocks=config.model.num_blocks, kernel_size=config.model.kernel_size,
      head_features=config.model.head_features, steps=num_steps)
  return {"reference": f"torch {result['torch_version']} eager, {result['threads']} threads",
          "reference_step_ms_median": result["step_ms_median"],
          "reference_examples_per_s": result["examples_per_s"]}


def main(argv):
  del argv
  config = _CONFIG.value
  parallel.configure_cpu_devices(config.cpu_devices)
  result = {"what": _WHAT.value, "config": config_flags.get_config_filename(flags.FLAGS["config"])}
  if _WHAT.value == "sample":
    result.update(measure_sample(config, _NUM_SAMPLES.value))
  else:
    result.update(measure_train(config, _STEPS.value))
  if _REFERENCE.value == "torch" and _WHAT.value == "train":
    result.update(measure_torch_reference(config, _STEPS.value))
    result["speedup_vs_reference"] = (result["reference_step_ms_median"]
                                      / result["step_ms_median"])
  device = jax.devices()[0]
  result.update({"device": f"{device.platform}:{device.device_kind}", "peak_rss_mb": peak_rss_mb(),
                 "batch_size": config.train.batch_size, "model": config.model.to_dict(),
                 "jax": jax.__version__})
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)

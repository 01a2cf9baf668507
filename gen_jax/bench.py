"""`python -m gen_jax.bench`: train-step throughput, compile time, memory, input and sampling speed.

  python -m gen_jax.bench --config configs/pixelcnn.py --what train [--steps 20]
      [--config.train.batch_size=32]
  python -m gen_jax.bench --config configs/pixelcnn.py --reference torch --rounds 5 --steps 3
      # alternating rounds against the PyTorch peer (pytorch-generative's architecture)
  python -m gen_jax.bench --config configs/pixelcnn.py --what sample   # naive vs cached
  python -m gen_jax.bench --config configs/pixelcnn.py --what memory   # fp32/bf16/accum/remat
  python -m gen_jax.bench --config configs/pixelcnn.py --what input    # data pipeline rate
  python -m gen_jax.bench --all [--markdown benchmarks/cpu.md]         # every config
      [--pass vqvae_prior.py:--config.vqvae_workdir=runs/vqvae]       # per-config flags

Prints one JSON line (--all: one per config, then a Markdown table). Figures are
medians over repeated timed steps; with `--reference torch` the PyTorch peer
(benchmarks/pytorch_peer.py) is timed in the same process, in rounds alternating
with gen_jax's step, and the ratio of medians is `speedup_vs_reference`. Memory is XLA's compiled buffer
plan for the step (`step_memory_mb`: arguments + outputs + temporaries, the
device peak on GPU/TPU) and the process's peak RSS.
"""

import functools
import glob
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from gen_jax import parallel, tasks, train
from gen_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WHAT = flags.DEFINE_enum(
    "what", "train", ["train", "sample", "memory", "input", "summary"],
    "train: step time; sample: naive vs cached sampling; memory: each precision/memory option; "
    "input: the data pipeline; summary: train + input + sample time (what --all runs).")
_ALL = flags.DEFINE_bool("all", False, "Every configs/*.py: train, input and sampling figures.")
_MARKDOWN = flags.DEFINE_string("markdown", None, "With --all: also write the table here.")
_PASS = flags.DEFINE_multi_string(
    "pass", [], "With --all: FILE:FLAG passes FLAG to configs/FILE's run, e.g. "
    "vqvae_prior.py:--config.vqvae_workdir=runs/vqvae (a stage 2 needs its stage 1).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 16, "Images per sampling run (--what sample).")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after compile + 2 warm-up steps); per round with --reference torch.")
_REFERENCE = flags.DEFINE_enum(
    "reference", None, ["torch", "torch_port"],
    "torch: alternate rounds of this step and the PyTorch peer's (pytorch-generative's "
    "PixelCNN / Gated PixelCNN architecture, benchmarks/pytorch_peer.py) in this process; "
    "torch_port: gen_jax's own PixelCNN in PyTorch (benchmarks/pytorch_pixelcnn.py), after.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "--reference torch: alternating rounds.")
_THREADS = flags.DEFINE_integer("threads", 2, "--reference torch: PyTorch threads.")


def synthetic_batch(config, spec, mesh) -> dict:
  """A fixed random batch with the dataset's shapes (no data read needed)."""
  rng = np.random.default_rng(config.seed)
  size = config.train.batch_size // jax.process_count()
  batch = {}
  for name, (shape, dtype) in spec.example_features().items():
    if np.issubdtype(np.dtype(dtype), np.floating):
      batch[name] = rng.standard_normal((size, *shape)).astype(dtype)
    else:  # labels in range of the classes, everything else (pixels, tokens) in the levels
      high = spec.num_classes if name == "label" and spec.num_classes else spec.num_levels
      batch[name] = rng.integers(0, max(high, 1), (size, *shape)).astype(dtype)
  return parallel.to_global(batch, mesh)


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def compile_train_step(config):
  """(compiled step, state, batch, rng, compile s, mesh) of the task's jit'd, sharded, donated
  train step on a synthetic batch."""
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
  return compiled, state, batch, step_rng, time.perf_counter() - start, mesh


def measure_train(config, num_steps: int) -> dict:
  """Compile time and median step time of the task's jit'd, sharded, donated train step."""
  compiled, state, batch, step_rng, compile_s, mesh = compile_train_step(config)
  memory = compiled.memory_analysis()
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
  step_bytes = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                + memory.temp_size_in_bytes - memory.alias_size_in_bytes) if memory else 0
  return {"examples_per_s": config.train.batch_size / step_s, "step_ms_median": 1e3 * step_s,
          "compile_s": compile_s, "num_devices": mesh.devices.size,
          "step_memory_mb": step_bytes / 2**20,
          "temp_memory_mb": (memory.temp_size_in_bytes / 2**20) if memory else 0.0}


def measure_memory(config, num_steps: int) -> dict:
  """Step time and memory with each memory/precision option (one process, same batch)."""
  options = {"float32": {}, "bfloat16": {"train.compute_dtype": "bfloat16"},
             "grad_accum_4": {"train.grad_accum_steps": 4}}
  if "remat" in config.model:
    options["remat"] = {"model.remat": True}
  results = {}
  for label, overrides in options.items():
    variant = config.copy_and_resolve_references()
    with variant.unlocked():
      for key, value in overrides.items():
        section, name = key.split(".")
        variant[section][name] = value
    figures = measure_train(variant, num_steps)
    results[label] = {k: figures[k] for k in ("step_ms_median", "step_memory_mb",
                                              "temp_memory_mb", "compile_s")}
  return {"options": results}


def measure_input(config, num_batches: int = 50) -> dict:
  """Batches/s of the real input pipeline (index the in-memory split, slice, device put)."""
  from gen_jax import data  # reads the dataset: only here, not for synthetic benchmarks
  mesh = parallel.create_mesh()
  train_split, _ = data.load_splits(config.data)
  batches = data.TrainBatches(train_split, global_batch_size=config.train.batch_size,
                              seed=config.seed, binarization=config.data.binarization)
  jax.block_until_ready(parallel.to_global(batches(0), mesh))
  start = time.perf_counter()
  for step in range(1, num_batches + 1):
    jax.block_until_ready(parallel.to_global(batches(step), mesh))
  seconds = (time.perf_counter() - start) / num_batches
  return {"input_examples_per_s": config.train.batch_size / seconds,
          "input_batch_ms": 1e3 * seconds}


def measure_sample_time(config, num_samples: int) -> dict:
  """Compile and run time of the task's `sample` (cached where the model has it)."""
  mesh = parallel.create_mesh()
  spec = train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  state = jax.jit(task.init)(jax.random.PRNGKey(config.seed), synthetic_batch(config, spec, mesh))
  compile_s, run_s, _ = time_call(jax.jit(functools.partial(task.sample, num=num_samples)),
                                  state, jax.random.PRNGKey(config.seed + 1))
  return {"sample_num": num_samples, "sample_s": run_s, "sample_compile_s": compile_s}


def time_call(fn, *args, budget_s: float = 3.0,
              max_runs: int = 7) -> tuple[float, float, jax.Array]:
  """(compile s, run s, output) of a jit'd function: compiled first, then run again
  while the runs took less than budget_s in all (at most max_runs); run s is their
  median (one run for a slow function, several for a fast one, whose single run
  the machine's other work can double)."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  times = []
  while not times or (sum(times) < budget_s and len(times) < max_runs):
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return compile_s, statistics.median(times), out


def measure_sample(config, num_samples: int) -> dict:
  """Naive vs cached ancestral sampling of an untrained model, same key: time and agreement
  (a VQ prior's also without the stage-1 decoding: `codes_*`)."""
  mesh = parallel.create_mesh()
  spec = train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  if task.sample_naive is None or not config.model.get("cached_sampling", True):
    raise app.UsageError(f"{config.model.name} has no cached sampler to compare")
  state = jax.jit(task.init)(jax.random.PRNGKey(config.seed), synthetic_batch(config, spec, mesh))
  rng = jax.random.PRNGKey(config.seed + 1)
  naive_compile, naive_s, naive = time_call(
      jax.jit(functools.partial(task.sample_naive, num=num_samples)), state, rng)
  cached_compile, cached_s, cached = time_call(
      jax.jit(functools.partial(task.sample, num=num_samples)), state, rng)
  result = {"num_samples": num_samples, "naive_s": naive_s, "cached_s": cached_s,
            "speedup": naive_s / cached_s, "agree": bool((naive == cached).all()),
            "naive_compile_s": naive_compile, "cached_compile_s": cached_compile}
  if "decode" in inspect.signature(task.sample).parameters:  # a VQ prior: the code grids alone
    _, naive_s, naive = time_call(jax.jit(functools.partial(
        task.sample_naive, num=num_samples, decode=False)), state, rng)
    _, cached_s, cached = time_call(jax.jit(functools.partial(
        task.sample, num=num_samples, decode=False)), state, rng)
    result.update({"codes_naive_s": naive_s, "codes_cached_s": cached_s,
                   "codes_speedup": naive_s / cached_s,
                   "codes_agree": all(bool((naive[k] == cached[k]).all()) for k in naive)})
  return result


def measure_summary(config, num_steps: int, num_samples: int) -> dict:
  """Train, input and sampling figures of one config; input is skipped when data is missing."""
  result = measure_train(config, num_steps)
  try:
    result.update(measure_input(config))
    result["input_over_train"] = result["input_examples_per_s"] / result["examples_per_s"]
  except UserError as error:
    result["input_error"] = str(error)
  result.update(measure_sample_time(config, num_samples))
  return result


TABLE_COLUMNS = [("config", "config", "{}"), ("batch", "batch_size", "{}"),
                 ("devices", "num_devices", "{}"), ("step ms", "step_ms_median", "{:.1f}"),
                 ("examples/s", "examples_per_s", "{:.0f}"), ("compile s", "compile_s", "{:.1f}"),
                 ("step memory MB", "step_memory_mb", "{:.0f}"),
                 ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
                 ("input examples/s", "input_examples_per_s", "{:.0f}"),
                 ("input / train", "input_over_train", "{:.3g}x"),
                 ("sample s", "sample_s", "{:.2f}"), ("samples", "sample_num", "{}")]


def markdown_table(rows: list[dict]) -> str:
  lines = ["| " + " | ".join(title for title, _, _ in TABLE_COLUMNS) + " |",
           "|" + "---|" * len(TABLE_COLUMNS)]
  for row in rows:
    if "error" in row:
      lines.append(f"| {row['config']} | " + f"failed: {row['error']} |")
      continue
    cells = [fmt.format(row[key]) if key in row else "n/a" for _, key, fmt in TABLE_COLUMNS]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def run_all(num_steps: int, num_samples: int, markdown_path: str | None,
            passed: list[str]) -> None:
  """`--what summary` for every configs/*.py, each in its own process (clean memory figures);
  `passed` holds 'FILE:FLAG' items, FLAG given to configs/FILE's process."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  extra = {}
  for item in passed:
    filename, sep, flag = item.partition(":")
    if not sep or not flag.startswith("--"):
      raise app.UsageError(f"--pass={item!r}: expected FILE:--FLAG, e.g. "
                           "vqvae_prior.py:--config.vqvae_workdir=runs/vqvae")
    extra.setdefault(filename, []).append(flag)
  rows = []
  for path in sorted(glob.glob(os.path.join(root, "configs", "*.py"))):
    name = os.path.relpath(path, root)
    done = subprocess.run(
        [sys.executable, "-m", "gen_jax.bench", "--config", name, "--what", "summary",
         f"--steps={num_steps}", f"--num_samples={num_samples}",
         *extra.get(os.path.basename(path), [])],
        cwd=root, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
      row = json.loads(lines[-1])
    else:
      last = (done.stderr.strip().splitlines() or ["no output"])[-1]
      row = {"config": name, "error": last.removeprefix("error: ")[:200]}
    row["config"] = name
    print(json.dumps(row), flush=True)
    rows.append(row)
  device = next((r["device"] for r in rows if "device" in r), "unknown device")
  table = (f"Device: {device}; JAX {jax.__version__}; {num_steps} timed steps per config "
           f"(medians); `python -m gen_jax.bench --all --steps {num_steps}`\n\n"
           + markdown_table(rows))
  print(table)
  if markdown_path:
    with open(markdown_path, "w") as f:
      f.write(table)


def main(argv):
  del argv
  if _ALL.value:
    run_all(_STEPS.value, _NUM_SAMPLES.value, _MARKDOWN.value, _PASS.value)
    return
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required (or --all)")
  parallel.configure_cpu_devices(config.cpu_devices)
  if _REFERENCE.value:
    from benchmarks import against_torch  # pylint: disable=import-outside-toplevel  # torch
  result = {"what": _WHAT.value, "config": config_flags.get_config_filename(flags.FLAGS["config"])}
  try:
    if _WHAT.value == "sample":
      result.update(measure_sample(config, _NUM_SAMPLES.value))
    elif _WHAT.value == "memory":
      result.update(measure_memory(config, _STEPS.value))
    elif _WHAT.value == "input":
      result.update(measure_input(config))
    elif _WHAT.value == "summary":
      result.update(measure_summary(config, _STEPS.value, _NUM_SAMPLES.value))
    elif _REFERENCE.value == "torch":
      result.update(against_torch.measure_against_peer(
          config, compile_train_step(config), _ROUNDS.value, _STEPS.value, _THREADS.value))
    else:
      result.update(measure_train(config, _STEPS.value))
  except UserError as error:
    sys.exit(f"error: {error}")
  if _REFERENCE.value == "torch_port" and _WHAT.value == "train":
    result.update(against_torch.measure_torch_port(config, _STEPS.value))
    result["speedup_vs_reference"] = (result["reference_step_ms_median"]
                                      / result["step_ms_median"])
  device = jax.devices()[0]
  result.update({"device": f"{device.platform}:{device.device_kind}", "peak_rss_mb": peak_rss_mb(),
                 "batch_size": config.train.batch_size, "model": config.model.to_dict(),
                 "jax": jax.__version__})
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)

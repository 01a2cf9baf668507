"""gen_jax's train step side by side with PyTorch (`python -m gen_jax.bench --reference ...`).

torch: the peer, pytorch-generative's PixelCNN / Gated PixelCNN architecture
(benchmarks/pytorch_peer.py), in rounds alternating with gen_jax's step in one process;
torch_port: gen_jax's own PixelCNN ported to PyTorch (benchmarks/pytorch_pixelcnn.py).
Needs torch (`make torch`); imported by gen_jax.bench only when --reference is given.
"""

import os
import statistics
import time

import jax
import numpy as np
from absl import app

from benchmarks import pytorch_peer, pytorch_pixelcnn
from gen_jax import train


def measure_torch_port(config, num_steps: int) -> dict:
  """gen_jax's own PixelCNN in PyTorch (benchmarks/pytorch_pixelcnn.py), timed after JAX."""
  if config.model.name != "pixelcnn":
    raise app.UsageError(f"no PyTorch port of model {config.model.name!r}")
  height, width, _ = train.dataset_spec(config.data).image_shape
  result = pytorch_pixelcnn.time_train_steps(
      config.train.batch_size, image_size=height, features=config.model.features,
      num_blocks=config.model.num_blocks, kernel_size=config.model.kernel_size,
      head_features=config.model.head_features, steps=num_steps)
  return {"reference": f"torch {result['torch_version']} eager, {result['threads']} threads",
          "reference_step_ms_median": result["step_ms_median"],
          "reference_examples_per_s": result["examples_per_s"]}


def timed(step) -> tuple[float, float]:
  """(wall s, process CPU s) of one call."""
  wall, cpu = time.perf_counter(), time.process_time()
  step()
  return time.perf_counter() - wall, time.process_time() - cpu


def spread(values: list[float]) -> dict:
  return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure_against_peer(config, compiled_step, rounds: int, steps_per_round: int,
                         threads: int) -> dict:
  """gen_jax's step and the PyTorch peer's (benchmarks/pytorch_peer.py: pytorch-generative's
  architecture at this config's sizes, eager, `threads` threads) in alternating rounds of
  `steps_per_round` steps each, so both see the same machine load. Medians over all timed
  steps, and the spread of the per-round medians; FLOPs: XLA's cost analysis of the compiled
  step (all devices) and the peer's convolutions counted by hooks (x3 for a train step)."""
  if config.model.name not in ("pixelcnn", "gated_pixelcnn"):
    raise app.UsageError(f"no PyTorch peer for model {config.model.name!r}: "
                         "use configs/pixelcnn.py or configs/gated_pixelcnn.py")
  height, _, _ = train.dataset_spec(config.data).image_shape
  compiled, state, batch, rng, compile_s, mesh = compiled_step  # gen_jax.bench.compile_train_step
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  jax_flops = float(cost.get("flops", 0.0)) * mesh.devices.size  # the cost is per device
  peer = pytorch_peer.build(config.model.name, config.model)
  torch_step = pytorch_peer.make_train_step(peer, config.train.batch_size, height, threads)
  peer_flops = 3 * pytorch_peer.forward_flops(peer, torch_step.images)
  holder = {"state": state}

  def jax_step():
    holder["state"], metrics = compiled(holder["state"], batch, rng)
    jax.block_until_ready(metrics)

  for _ in range(2):  # warm-up
    jax_step()
    torch_step()
  load_before = os.getloadavg()[0]
  samples = {"jax": [], "peer": []}
  round_medians = {"jax": [], "peer": []}
  for _ in range(rounds):
    for name, step in (("jax", jax_step), ("peer", torch_step)):
      times = [timed(step) for _ in range(steps_per_round)]
      samples[name] += times
      round_medians[name].append(statistics.median(wall for wall, _ in times))
  wall = {name: statistics.median(w for w, _ in times) for name, times in samples.items()}
  cpu = {name: statistics.median(c for _, c in times) for name, times in samples.items()}
  import torch
  return {
      "reference": f"pytorch-generative architecture, torch {torch.__version__} eager, "
                   f"{torch.get_num_threads()} threads",
      "num_devices": mesh.devices.size, "compile_s": compile_s,
      "rounds": rounds, "steps_per_round": steps_per_round,
      "load_average_before_after": [load_before, os.getloadavg()[0]],
      "step_ms_median": 1e3 * wall["jax"], "reference_step_ms_median": 1e3 * wall["peer"],
      "round_medians_ms": {n: [round(1e3 * t, 1) for t in v] for n, v in round_medians.items()},
      "step_cpu_ms_median": 1e3 * cpu["jax"], "reference_step_cpu_ms_median": 1e3 * cpu["peer"],
      "speedup_vs_reference": wall["peer"] / wall["jax"],
      "gflop_per_step": jax_flops / 1e9, "reference_gflop_per_step": peer_flops / 1e9,
      "gflop_per_s": jax_flops / wall["jax"] / 1e9,
      "reference_gflop_per_s": peer_flops / wall["peer"] / 1e9,
      "num_params": count_params(state.params),
      "reference_num_params": pytorch_peer.count_parameters(peer),
      "reference_num_live_params": pytorch_peer.count_live_parameters(peer)}


def count_params(params) -> int:
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(params)))

"""A train step with XLA's kernel gradient for the causal convolutions against the per-tap
one (`gen_jax.nn.causal_conv.tap_conv`) on every convolution with Cout >= Cin from
--min-features input features and --min-positions pixels on (the library's thresholds by
default): both compiled in one process, then alternated step by step.

  python -m benchmarks.kernel_gradient [--config pixelcnn.py:peer] [--devices 2] [--steps 6]
      [--min-features 64] [--min-positions 256] [--set config.vqvae_workdir=DIR ...]

Prints the median wall and process CPU seconds per step of each (after 2 warm-up steps).
Compiled with the XLA flags of the environment (not the test suite's -O0 ones).
"""

import argparse
import ast
import os
import statistics
import time

import jax

from gen_jax import bench, config_defaults, parallel
from gen_jax.nn import causal_conv

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def load_config(spec, overrides, devices):
  """configs/FILE[:VARIANT] with `config.KEY=VALUE` overrides (Python literals, else
  strings) and `devices` host CPU devices."""
  name, _, variant = spec.partition(":")
  config = config_defaults.load_experiment(os.path.join(CONFIGS, name), variant or None)
  for override in overrides:
    key, _, text = override.removeprefix("config.").partition("=")
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    try:
      node[leaf] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      node[leaf] = text
  config.cpu_devices = devices
  return config


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="pixelcnn.py:peer", help="configs/FILE[:VARIANT]")
  parser.add_argument("--devices", type=int, default=2, help="host CPU devices")
  parser.add_argument("--steps", type=int, default=6, help="timed steps of each")
  parser.add_argument("--min-features", type=int, default=causal_conv.TAP_GRADIENT_MIN_FEATURES,
                      help="the tap variant's TAP_GRADIENT_MIN_FEATURES")
  parser.add_argument("--min-positions", type=int,
                      default=causal_conv.TAP_GRADIENT_MIN_POSITIONS,
                      help="the tap variant's TAP_GRADIENT_MIN_POSITIONS")
  parser.add_argument("--set", action="append", default=[], metavar="config.KEY=VALUE",
                      help="a config override (repeatable)")
  args = parser.parse_args()
  parallel.configure_cpu_devices(args.devices)  # before JAX starts its backend
  steps = {}
  # The thresholds per variant (read when the step is traced): never, and the flags'.
  for label, thresholds in {"lax": (10**9, 10**9),
                            "tap": (args.min_features, args.min_positions)}.items():
    causal_conv.TAP_GRADIENT_MIN_FEATURES, causal_conv.TAP_GRADIENT_MIN_POSITIONS = thresholds
    config = load_config(args.config, args.set, args.devices)
    compiled, state, batch, rng, _, _ = bench.compile_train_step(config)
    steps[label] = [compiled, state, batch, rng]
  times = {label: [] for label in steps}
  for step in range(args.steps + 2):
    for label, (compiled, state, batch, rng) in steps.items():
      wall, cpu = time.perf_counter(), time.process_time()
      state, metrics = compiled(state, batch, rng)
      jax.block_until_ready(metrics)
      steps[label][1] = state
      if step >= 2:
        times[label].append((time.perf_counter() - wall, time.process_time() - cpu))
  for label, values in times.items():
    print(f"{label}: wall {statistics.median(v[0] for v in values):.3f} s, "
          f"CPU {statistics.median(v[1] for v in values):.3f} s per step")


if __name__ == "__main__":
  main()

"""A train step with XLA's kernel gradient for the causal convolutions against the per-tap
one (`gen_jax.nn.causal_conv.tap_conv`) on every convolution from --min-features (128) on
with Cout >= Cin: both compiled in one process, then alternated step by step.

  python -m benchmarks.kernel_gradient [--config pixelcnn.py:peer] [--devices 2] [--steps 6]
      [--min-features 128]

Prints the median wall and process CPU seconds per step of each (after 2 warm-up steps).
"""

import argparse
import statistics
import time

import jax

from gen_jax import bench
from gen_jax.nn import causal_conv
from tests.conftest import load_config


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="pixelcnn.py:peer", help="configs/FILE[:VARIANT]")
  parser.add_argument("--devices", type=int, default=2, help="host CPU devices")
  parser.add_argument("--steps", type=int, default=6, help="timed steps of each")
  parser.add_argument("--min-features", type=int, default=128,
                      help="the tap variant's TAP_GRADIENT_MIN_FEATURES")
  args = parser.parse_args()
  name, _, variant = args.config.partition(":")
  steps = {}
  saved = causal_conv.TAP_GRADIENT_MIN_FEATURES
  try:
    # TAP_GRADIENT_MIN_FEATURES per variant: never, and from --min-features on.
    for label, min_features in {"lax": 10**9, "tap": args.min_features}.items():
      causal_conv.TAP_GRADIENT_MIN_FEATURES = min_features  # read when the step is traced
      config = load_config(name, variant or None)
      config.cpu_devices = args.devices
      compiled, state, batch, rng, _, _ = bench.compile_train_step(config)
      steps[label] = [compiled, state, batch, rng]
  finally:
    causal_conv.TAP_GRADIENT_MIN_FEATURES = saved
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

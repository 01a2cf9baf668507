"""A train step with XLA's kernel gradient for the causal convolutions against the per-tap
one (`gen_jax.nn.causal_conv.tap_conv`) on every convolution with Cout >= Cin from
--min_features input features and --min_positions pixels on (the library's thresholds by
default): both compiled in one process, then alternated step by step.

  python -m benchmarks.kernel_gradient --config configs/pixelcnn.py:peer
      [--config.cpu_devices=2] [--steps 6] [--min_features 64] [--min_positions 256]
      [--config.vqvae_workdir=DIR ...]

Prints the median wall and process CPU seconds per step of each (after 2 warm-up steps).
Compiled with the XLA flags of the environment, not the test suite's -O0 ones (do not
import tests.conftest here).
"""

import statistics
import time

import jax
from absl import app, flags

from gen_jax import bench, parallel  # bench defines --config (and --config.KEY=...) and --steps
from gen_jax.nn import causal_conv

_MIN_FEATURES = flags.DEFINE_integer("min_features", causal_conv.TAP_GRADIENT_MIN_FEATURES,
                                     "The tap variant's TAP_GRADIENT_MIN_FEATURES.")
_MIN_POSITIONS = flags.DEFINE_integer("min_positions", causal_conv.TAP_GRADIENT_MIN_POSITIONS,
                                      "The tap variant's TAP_GRADIENT_MIN_POSITIONS.")


def main(argv):
  del argv
  config = flags.FLAGS.config
  if config is None:
    raise app.UsageError("--config is required")
  parallel.configure_cpu_devices(config.cpu_devices)  # before JAX starts its backend
  steps = {}
  # The thresholds per variant (read when the step is traced): never, and the flags'.
  for label, thresholds in {"lax": (10**9, 10**9),
                            "tap": (_MIN_FEATURES.value, _MIN_POSITIONS.value)}.items():
    causal_conv.TAP_GRADIENT_MIN_FEATURES, causal_conv.TAP_GRADIENT_MIN_POSITIONS = thresholds
    compiled, state, batch, rng, _, _ = bench.compile_train_step(config)
    steps[label] = [compiled, state, batch, rng]
  times = {label: [] for label in steps}
  for step in range(flags.FLAGS.steps + 2):
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
  app.run(main)

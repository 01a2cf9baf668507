"""A stride-2 4x4 transposed convolution as lax's lhs-dilated convolution
(`nnx.ConvTranspose`) against the same layer by phases (`gen_jax.nn.upsample`): forward
and gradient (parameters and input) at the conv VAE/AE decoder's shapes, alternating in
one process, one device.

  python -m benchmarks.upsample [--batch 64] [--calls 9]

Prints the median milliseconds per call of each.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.upsample import ConvTranspose

SHAPES = {  # name: (in features, out features, input height = width)
    "64 -> 32, 7x7 -> 14x14": (64, 32, 7),
    "32 -> 32, 14x14 -> 28x28": (32, 32, 14),
}


def compiled(call, layer, x):
  graph, params = nnx.split(layer)
  forward = jax.jit(lambda params, x: call(nnx.merge(graph, params), x))
  gradient = jax.jit(jax.grad(lambda params, x: jnp.sum(call(nnx.merge(graph, params), x) ** 2),
                              argnums=(0, 1)))
  return {"forward": (forward, params, x), "gradient": (gradient, params, x)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--calls", type=int, default=9, help="timed calls of each")
  args = parser.parse_args()
  for name, (cin, cout, size) in SHAPES.items():
    layer = ConvTranspose(cin, cout, (4, 4), (2, 2), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (args.batch, size, size, cin))
    variants = {"lhs-dilated": compiled(nnx.ConvTranspose.__call__, layer, x),
                "by phases": compiled(ConvTranspose.__call__, layer, x)}
    times = {(variant, kind): [] for variant in variants for kind in variants[variant]}
    for call in range(args.calls + 1):  # the first call of each compiles
      for (variant, kind), values in times.items():
        fn, *fn_args = variants[variant][kind]
        start = time.perf_counter()
        jax.block_until_ready(fn(*fn_args))
        if call:
          values.append(1e3 * (time.perf_counter() - start))
    for (variant, kind), values in times.items():
      print(f"{name}  {variant:12s} {kind:9s} {statistics.median(values):8.1f} ms")


if __name__ == "__main__":
  main()

"""Where a train step's time goes, op by op: XLA (gen_jax's formulation) against PyTorch
(the peer's), at the shapes of pytorch-generative's default PixelCNN residual block.

  python -m benchmarks.peer_ops [--batch 32] [--rounds 9] [--threads 2]

One process; for each op, `--rounds` alternating calls of the XLA and the PyTorch version
(one device, XLA's own thread pool; PyTorch with `--threads` threads), medians of wall and
process CPU time in ms. Ops: the block's causal 3x3 convolution (128 -> 128; gen_jax: one
[2, 3] VALID convolution, 6 taps; the peer: a masked 3x3 'same' convolution, 9 taps) and
its 1x1 layers (256 -> 128, 128 -> 256; gen_jax: [N, Cin] @ [Cin, Cout]; the peer: 1x1
convolutions in NCHW), each as forward, input gradient and kernel gradient.
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

SIZE = 28
PADDING = ((1, 0), (1, 1))  # the [2, 3] kernel of gen_jax's CausalConv (mask B, k = 3)
LINEAR_SHAPES = ((256, 128), (128, 256))  # the residual block's 1x1 layers


def make_arrays(batch: int, seed: int = 0) -> dict:
  """The inputs of every op, NHWC / HWIO / [N, C] rows, float32. The [2, 3] kernel's
  centre-row right tap is zero, as in gen_jax's mask-B CausalConv."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  kernel = 0.05 * normal(2, 3, 128, 128)
  kernel[1, 2] = 0.0
  arrays = {"x": normal(batch, SIZE, SIZE, 128), "kernel": kernel,
            "grad": normal(batch, SIZE, SIZE, 128)}
  for cin, cout in LINEAR_SHAPES:
    arrays[f"rows{cin}"] = normal(batch * SIZE * SIZE, cin)
    arrays[f"weight{cin}_{cout}"] = 0.05 * normal(cin, cout)
    arrays[f"grad_rows{cout}"] = normal(batch * SIZE * SIZE, cout)
  return arrays


def xla_ops(arrays: dict) -> dict:
  """name -> (jitted fn, args): gen_jax's formulation of each op."""
  a = {name: jnp.asarray(value) for name, value in arrays.items()}

  def conv(v, k):
    return lax.conv_general_dilated(v, k, (1, 1), PADDING,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  conv_args = (a["x"], a["kernel"], a["grad"])
  ops = {
      "conv3x3 forward": (jax.jit(conv), conv_args[:2]),
      "conv3x3 input grad": (jax.jit(lambda v, k, g: jax.vjp(lambda u: conv(u, k), v)[1](g)[0]),
                             conv_args),
      "conv3x3 kernel grad": (jax.jit(lambda v, k, g: jax.vjp(lambda w: conv(v, w), k)[1](g)[0]),
                              conv_args),
  }
  for cin, cout in LINEAR_SHAPES:
    rows, weight, grad = a[f"rows{cin}"], a[f"weight{cin}_{cout}"], a[f"grad_rows{cout}"]
    name = f"1x1 {cin}->{cout}"
    ops[f"{name} forward"] = (jax.jit(lambda r, w: r @ w), (rows, weight))
    ops[f"{name} input grad"] = (jax.jit(lambda g, w: g @ w.T), (grad, weight))
    ops[f"{name} kernel grad"] = (jax.jit(lambda r, g: r.T @ g), (rows, grad))
  return ops


def torch_ops(arrays: dict, threads: int) -> dict:
  """name -> (fn, args): the peer's formulation of each op on the same values (NCHW, a
  masked 3x3 'same' convolution, 1x1 convolutions). Results in the peer's layouts: NCHW
  activations, [Cout, Cin, kh, kw] kernels."""
  import torch  # the optional benchmark dependency (make torch)
  import torch.nn.functional as F
  torch.set_num_threads(threads)
  nchw = lambda v: torch.from_numpy(np.ascontiguousarray(v.transpose(0, 3, 1, 2)))
  x, grad = nchw(arrays["x"]), nchw(arrays["grad"])
  # [2, 3, Cin, Cout] -> [Cout, Cin, 3, 3]: the rows above and the centre row; the row
  # below the centre is masked, as is the centre row's right tap (zero already).
  kernel = torch.zeros(128, 128, 3, 3)
  kernel[:, :, :2] = torch.from_numpy(arrays["kernel"].transpose(3, 2, 0, 1).copy())
  mask = torch.ones(3, 3)
  mask[2] = 0.0
  mask[1, 2] = 0.0

  def backward(inputs, weight, grads, padding, output_mask):
    return torch.ops.aten.convolution_backward(
        grads, inputs, weight, [weight.shape[0]], [1, 1], [padding, padding], [1, 1],
        False, [0, 0], 1, output_mask)

  ops = {
      "conv3x3 forward": (lambda: F.conv2d(x, kernel * mask, padding=1), ()),
      "conv3x3 input grad": (
          lambda: backward(x, kernel * mask, grad, 1, [True, False, False])[0], ()),
      "conv3x3 kernel grad": (
          lambda: backward(x, kernel * mask, grad, 1, [False, True, False])[1], ()),
  }
  for cin, cout in LINEAR_SHAPES:
    image = lambda rows, c: nchw(rows.reshape(-1, SIZE, SIZE, c))
    inputs, grads = image(arrays[f"rows{cin}"], cin), image(arrays[f"grad_rows{cout}"], cout)
    weight = torch.from_numpy(arrays[f"weight{cin}_{cout}"].T.copy())[:, :, None, None]
    name = f"1x1 {cin}->{cout}"
    ops[f"{name} forward"] = (lambda i=inputs, w=weight: F.conv2d(i, w), ())
    ops[f"{name} input grad"] = (
        lambda i=inputs, w=weight, g=grads: backward(i, w, g, 0, [True, False, False])[0], ())
    ops[f"{name} kernel grad"] = (
        lambda i=inputs, w=weight, g=grads: backward(i, w, g, 0, [False, True, False])[1], ())
  return ops


def time_call(fn, args, block) -> tuple[float, float]:
  wall, cpu = time.perf_counter(), time.process_time()
  block(fn(*args))
  return 1e3 * (time.perf_counter() - wall), 1e3 * (time.process_time() - cpu)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32, help="images per call (the peer's)")
  parser.add_argument("--rounds", type=int, default=9, help="alternating timed calls of each")
  parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
  args = parser.parse_args()
  arrays = make_arrays(args.batch)
  xla, peer = xla_ops(arrays), torch_ops(arrays, args.threads)
  rows = []
  for name in xla:
    timings = {"xla": [], "torch": []}
    versions = (("xla", xla[name], jax.block_until_ready), ("torch", peer[name], lambda out: out))
    for _ in range(2):  # compile and warm up
      for _, (fn, inputs), block in versions:
        block(fn(*inputs))
    for _ in range(args.rounds):
      for label, (fn, inputs), block in versions:
        timings[label].append(time_call(fn, inputs, block))
    row = {"op": name}
    for label, values in timings.items():
      row[f"{label}_wall_ms"] = round(statistics.median(v[0] for v in values), 2)
      row[f"{label}_cpu_ms"] = round(statistics.median(v[1] for v in values), 2)
    row["torch_over_xla_wall"] = round(row["torch_wall_ms"] / row["xla_wall_ms"], 3)
    print(json.dumps(row), flush=True)
    rows.append(row)
  print("| op | XLA wall ms | PyTorch wall ms | PyTorch / XLA | XLA CPU ms | PyTorch CPU ms |")
  print("|---|---|---|---|---|---|")
  for row in rows:
    print(f"| {row['op']} | {row['xla_wall_ms']} | {row['torch_wall_ms']} | "
          f"{row['torch_over_xla_wall']}x | {row['xla_cpu_ms']} | {row['torch_cpu_ms']} |")


if __name__ == "__main__":
  main()

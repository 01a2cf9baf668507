"""Sampling side by side: gen_jax's cached PixelCNN sampler vs a PyTorch PixelCNN
sampling as pytorch-generative's `AutoregressiveModel.sample` does.

The architecture is pytorch-generative's PixelCNN default (7x7 mask-A input
convolution to a 256-channel stream, 15 residual blocks relu -> 1x1 (256 -> 128)
-> relu -> masked 3x3 'B' (128 -> 128) -> relu -> 1x1 (128 -> 256), a head relu ->
1x1 (256 -> 32) -> relu -> 1x1 (32 -> 256-way logits)), on 28x28x1 images. The
PyTorch module below is written for this benchmark (masked kernels, NCHW, eager);
its sampler follows the peer's: for every pixel in raster order, one forward pass
of the whole batch, then a categorical draw at that pixel (`torch.no_grad`).
gen_jax samples the same architecture (configs/pixelcnn.py with features=256,
num_blocks=15, head_features=32) through its cached sampler, `task.sample`.

Both models are untrained (the time does not depend on the weights). Every
PyTorch forward pass costs the same, so `--torch_rows R` times the first R rows
of its sampling and also reports R rows' time scaled to all H rows
(`torch_s_extrapolated`); with R = 28 (the default) it samples whole images.

  python -m benchmarks.peer_sampling [--num_samples 4] [--torch_rows 28] [--repeats 1]
"""

import argparse
import functools
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

SIZE, LEVELS = 28, 256


class MaskedConv(nn.Conv2d):
  """A k x k convolution whose kernel keeps only the rows above the centre and, on the
  centre row, the taps left of the centre ('A') or left of and at it ('B')."""

  def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int):
    super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    centre = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:centre] = 1.0
    mask[centre, :centre + (mask_type == "B")] = 1.0
    self.register_buffer("mask", mask)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self._conv_forward(x, self.weight * self.mask, self.bias)


class TorchPixelCNN(nn.Module):
  """uint8-valued images [B, 1, H, W] -> logits [B, 256, H, W]."""

  def __init__(self, features: int = 256, num_blocks: int = 15, head_features: int = 32):
    super().__init__()
    half = features // 2
    self.first = MaskedConv("A", 1, features, 7)
    self.blocks = nn.ModuleList(nn.ModuleList([
        nn.Conv2d(features, half, 1), MaskedConv("B", half, half, 3),
        nn.Conv2d(half, features, 1)]) for _ in range(num_blocks))
    self.head = nn.ModuleList([nn.Conv2d(features, head_features, 1),
                               nn.Conv2d(head_features, LEVELS, 1)])

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    h = self.first(images / 255.0 * 2.0 - 1.0)
    for reduce, spatial, expand in self.blocks:
      h = h + expand(F.relu(spatial(F.relu(reduce(F.relu(h))))))
    return self.head[1](F.relu(self.head[0](F.relu(h))))


@torch.no_grad()
def torch_sample(model: nn.Module, num: int, rows: int) -> torch.Tensor:
  """The first `rows` rows of `num` images, one full forward pass per pixel (the peer's way)."""
  images = torch.zeros(num, 1, SIZE, SIZE)
  for row in range(rows):
    for column in range(SIZE):
      logits = model(images)[:, :, row, column]  # [N, 256]
      images[:, 0, row, column] = torch.multinomial(F.softmax(logits, -1), 1)[:, 0].float()
  return images


def gen_jax_sampler(num: int):
  """(jit'd cached sample, state, rng, parameter count) of gen_jax's PixelCNN at these settings."""
  import importlib.util

  import jax
  from gen_jax import tasks
  from gen_jax.data.sources import DatasetSpec
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      "pixelcnn.py")
  spec_module = importlib.util.spec_from_file_location("pixelcnn_config", path)
  module = importlib.util.module_from_spec(spec_module)
  spec_module.loader.exec_module(module)
  config = module.get_config()
  config.model.features, config.model.num_blocks, config.model.head_features = 256, 15, 32
  task = tasks.create_task(config, DatasetSpec((SIZE, SIZE, 1), LEVELS, 0))
  state = jax.jit(task.init)(jax.random.PRNGKey(0), None)
  num_params = sum(leaf.size for leaf in jax.tree.leaves(state.params))
  return (jax.jit(functools.partial(task.sample, num=num)), state, jax.random.PRNGKey(1),
          num_params)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_samples", type=int, default=4)
  parser.add_argument("--torch_rows", type=int, default=SIZE)
  parser.add_argument("--repeats", type=int, default=1, help="alternating rounds; medians")
  args = parser.parse_args(argv)
  import jax
  torch.manual_seed(0)
  model = TorchPixelCNN().eval()
  torch_params = sum(p.numel() for p in model.parameters())
  sample, state, rng, jax_params = gen_jax_sampler(args.num_samples)
  start = time.perf_counter()
  compiled = sample.lower(state, rng).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(state, rng))  # warm-up
  jax_times, torch_times, jax_cpu, torch_cpu = [], [], [], []
  for _ in range(args.repeats):  # interleaved
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(state, rng))
    jax_times.append(time.perf_counter() - start)
    jax_cpu.append(time.process_time() - cpu)
    start, cpu = time.perf_counter(), time.process_time()
    torch_sample(model, args.num_samples, args.torch_rows)
    torch_times.append(time.perf_counter() - start)
    torch_cpu.append(time.process_time() - cpu)
  jax_s, torch_s = statistics.median(jax_times), statistics.median(torch_times)
  torch_full_s = torch_s * SIZE / args.torch_rows
  # CPU seconds of the process (all threads): on a machine shared with other work,
  # wall time also counts the waits for a core; CPU time does not.
  jax_cpu_s = statistics.median(jax_cpu)
  torch_cpu_full_s = statistics.median(torch_cpu) * SIZE / args.torch_rows
  print(json.dumps({
      "num_samples": args.num_samples, "image": f"{SIZE}x{SIZE}x1",
      "gen_jax_cached_s": jax_s, "gen_jax_compile_s": compile_s, "gen_jax_all_s": jax_times,
      "torch_rows": args.torch_rows, "torch_s": torch_s, "torch_all_s": torch_times,
      "torch_s_extrapolated": torch_full_s, "speedup": torch_full_s / jax_s,
      "gen_jax_cpu_s": jax_cpu_s, "torch_cpu_s_extrapolated": torch_cpu_full_s,
      "speedup_cpu_time": torch_cpu_full_s / jax_cpu_s, "load_average": os.getloadavg()[0],
      "gen_jax_params": int(jax_params), "torch_params": int(torch_params),
      "torch": f"{torch.__version__} eager, {torch.get_num_threads()} threads",
      "jax": jax.__version__}))


if __name__ == "__main__":
  main()

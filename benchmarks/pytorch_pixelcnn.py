"""PyTorch eager reference PixelCNN, used only as a speed baseline.

This module is the *masked-kernel* PixelCNN baseline: the causal convolutions are
ordinary ``nn.Conv2d`` layers whose weights are multiplied by a fixed 0/1 mask
buffer on every forward pass, which is how PixelCNN is most commonly written in
PyTorch. The model works on grayscale (1-channel) uint8 images in NCHW layout and
predicts a 256-way categorical distribution per pixel.

Architecture:
  * input ``x`` (uint8, [B, 1, H, W]) -> ``x / 255 * 2 - 1``
  * masked conv type 'A', 7x7, 1 -> F
  * ``num_blocks`` residual blocks:
      relu -> 1x1 (F -> F//2) -> relu -> masked conv 'B' kxk (F//2 -> F//2)
      -> relu -> 1x1 (F//2 -> F), added back to the residual stream
  * head: relu -> 1x1 (F -> head_features) -> relu -> 1x1 (-> 256 logits)
  * loss: ``F.cross_entropy`` against the pixel values, mean over pixels
  * optimizer: ``torch.optim.Adam(lr=1e-3)``

``gen_jax.bench`` imports :func:`time_train_steps` from here to report a
same-process JAX/PyTorch speed ratio. PyTorch is an optional dependency; nothing
in the test suite imports this module.

CLI::

    python -m benchmarks.pytorch_pixelcnn --batch_size 64 --features 64 \\
        --num_blocks 5 --head_features 64 --steps 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """Conv2d whose kernel is multiplied by a causal raster-scan mask.

    Mask 'A': rows above the centre fully on; centre row on strictly left of the
    centre; centre tap and everything right of / below it off.
    Mask 'B': mask 'A' plus the centre tap.
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int,
                 kernel_size: int):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size,
                         padding=kernel_size // 2, bias=True)
        c = kernel_size // 2
        mask = torch.zeros(kernel_size, kernel_size)
        mask[:c, :] = 1.0
        mask[c, :c] = 1.0
        if mask_type == "B":
            mask[c, c] = 1.0
        self.register_buffer("mask", mask[None, None].expand_as(self.weight).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class ResidualBlock(nn.Module):
    def __init__(self, features: int, kernel_size: int):
        super().__init__()
        half = features // 2
        self.conv_in = nn.Conv2d(features, half, 1)
        self.conv_masked = MaskedConv2d("B", half, half, kernel_size)
        self.conv_out = nn.Conv2d(half, features, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.conv_in(F.relu(h))
        y = self.conv_masked(F.relu(y))
        y = self.conv_out(F.relu(y))
        return h + y


class PixelCNN(nn.Module):
    def __init__(self, features: int = 64, num_blocks: int = 5,
                 kernel_size: int = 3, head_features: int = 64):
        super().__init__()
        self.conv_in = MaskedConv2d("A", 1, features, 7)
        self.blocks = nn.ModuleList(
            ResidualBlock(features, kernel_size) for _ in range(num_blocks))
        self.head_hidden = nn.Conv2d(features, head_features, 1)
        self.head_out = nn.Conv2d(head_features, 256, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in 0..255) images [B, 1, H, W] -> logits [B, 256, H, W]."""
        x = images.float() / 255.0 * 2.0 - 1.0
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h)
        h = self.head_hidden(F.relu(h))
        return self.head_out(F.relu(h))


def build_model(features: int = 64, num_blocks: int = 5, kernel_size: int = 3,
                head_features: int = 64) -> nn.Module:
    """Build the masked-kernel PixelCNN."""
    return PixelCNN(features=features, num_blocks=num_blocks,
                    kernel_size=kernel_size, head_features=head_features)


def loss_fn(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel cross-entropy (nats) of the 256-way pixel predictions."""
    logits = model(images)
    targets = images[:, 0].long()  # [B, H, W]
    return F.cross_entropy(logits, targets)


def time_train_steps(batch_size: int, image_size: int = 28, features: int = 64,
                     num_blocks: int = 5, kernel_size: int = 3,
                     head_features: int = 64, steps: int = 10, warmup: int = 2,
                     threads: int | None = None, seed: int = 0) -> dict:
    """Time full Adam train steps (zero_grad, forward, loss, backward, step).

    Runs ``warmup`` untimed steps, then times each of ``steps`` steps with
    ``time.perf_counter``. Returns a dict with the median and all step times in
    milliseconds, examples/s at the median, the torch version and thread count.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = build_model(features=features, num_blocks=num_blocks,
                        kernel_size=kernel_size, head_features=head_features)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 1, image_size, image_size),
                           dtype=torch.uint8, generator=gen)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, images)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()

    times_ms = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times_ms.append((time.perf_counter() - t0) * 1e3)

    median_ms = statistics.median(times_ms)
    return {
        "step_ms_median": median_ms,
        "step_ms_all": times_ms,
        "examples_per_s": batch_size / (median_ms / 1e3),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--image_size", type=int, default=28)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--num_blocks", type=int, default=5)
    p.add_argument("--kernel_size", type=int, default=3)
    p.add_argument("--head_features", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = time_train_steps(**vars(args))
    settings = {k: v for k, v in vars(args).items() if k != "threads"}
    print(json.dumps({**settings, **result}))


if __name__ == "__main__":
    main()

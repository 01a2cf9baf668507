"""PyTorch eager models with the architecture of pytorch-generative's PixelCNN and
Gated PixelCNN (EugenHotaj/pytorch-generative @ d1f0a5c, its default settings),
written here from its documented architecture, as the speed peer of
`python -m gen_jax.bench --reference torch`.

PixelCNN (peer defaults: n_residual=15, residual_channels=128, head_channels=32):
  causal 7x7 mask-A conv, 1 -> 2R (a full kernel times a 0/1 mask, every step)
  15 residual blocks on a 2R-channel stream:
    relu -> 1x1 (2R -> R) -> relu -> masked 3x3, mask B (R -> R) -> relu -> 1x1 (R -> 2R)
    the block adds its input back, and the model adds the block's input once more
    (stream <- stream + block(stream) with block(s) = s + net(s): the peer's
    double residual, kept so that the arithmetic is the same)
  head: relu -> 1x1 (2R -> 32) -> relu -> 1x1 (32 -> 256 logits)

Gated PixelCNN (peer defaults: n_gated=10, gated_channels=128, head_channels=32):
  an input gated layer (kernel 7, centre masked, no horizontal residual), then
  n_gated gated layers (kernel 3); each layer, with F channels and N = kernel:
    vertical:   1xN conv (Cin -> F), then an (N//2 + 1)x1 conv (F -> 2F) padded one
                row more on top and cropped to H rows (rows above only), plus a
                1x1 conv of the layer's vertical input (Cin -> 2F); gated
    link:       1x1 conv (2F -> 2F) of the vertical pre-activation (before the 1x1 term)
    horizontal: 1x(N//2 + 1) conv (Cin -> 2F), cropped to W columns (one column more
                padding when the centre is masked) + link; gated; then a 1x1 (F -> F)
                skip and a 1x1 (F -> F) residual (added to the input unless masked)
  gate(x) = tanh(first half) * sigmoid(second half); the head is relu -> 1x1
  (F -> 32) -> relu -> 1x1 (32 -> 256) of the summed skips.

Both take uint8 images [B, 1, H, W] (scaled to [-1, 1]) and are trained with the
mean 256-way cross-entropy and Adam(lr=1e-3), batch 32, as in
`gen_jax.bench --reference torch`. PyTorch is optional: only the benchmark and
a test that skips without it import this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def raster_mask(kernel_size: int, include_centre: bool) -> torch.Tensor:
  """[k, k] 0/1: rows above the centre, and the centre row left of (and at) the centre."""
  mask = torch.zeros(kernel_size, kernel_size)
  centre = kernel_size // 2
  mask[:centre] = 1.0
  mask[centre, :centre + int(include_centre)] = 1.0
  return mask


class MaskedConv2d(nn.Conv2d):
  """A 'same' k x k convolution whose kernel is multiplied by a raster mask each call."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
               include_centre: bool):
    super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    self.register_buffer("mask", raster_mask(kernel_size, include_centre))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self._conv_forward(x, self.weight * self.mask, self.bias)

  def live_parameters(self) -> int:
    """Weights the mask keeps, plus the bias."""
    taps = int(self.mask.sum().item())
    return taps * self.in_channels * self.out_channels + self.out_channels


def scale_images(images: torch.Tensor) -> torch.Tensor:
  return images.float() * (2.0 / 255.0) - 1.0


class ResidualBlock(nn.Module):
  def __init__(self, channels: int):
    super().__init__()
    self.reduce = nn.Conv2d(channels, channels // 2, 1)
    self.spatial = MaskedConv2d(channels // 2, channels // 2, 3, include_centre=True)
    self.expand = nn.Conv2d(channels // 2, channels, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.spatial(F.relu(self.reduce(F.relu(x))))
    return x + self.expand(F.relu(y))


class PeerPixelCNN(nn.Module):
  def __init__(self, num_residual: int = 15, residual_channels: int = 128,
               head_channels: int = 32, num_levels: int = 256):
    super().__init__()
    stream = 2 * residual_channels
    self.first = MaskedConv2d(1, stream, 7, include_centre=False)
    self.blocks = nn.ModuleList(ResidualBlock(stream) for _ in range(num_residual))
    self.head_hidden = nn.Conv2d(stream, head_channels, 1)
    self.head_out = nn.Conv2d(head_channels, num_levels, 1)

  def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 1, H, W] -> [B, L, H, W]
    x = self.first(scale_images(images))
    for block in self.blocks:
      x = x + block(x)
    return self.head_out(F.relu(self.head_hidden(F.relu(x))))


def gate(x: torch.Tensor) -> torch.Tensor:  # [B, 2F, H, W] -> [B, F, H, W]
  features = x.shape[1] // 2
  return torch.tanh(x[:, :features]) * torch.sigmoid(x[:, features:])


class GatedLayer(nn.Module):
  def __init__(self, in_channels: int, channels: int, kernel_size: int, mask_centre: bool):
    super().__init__()
    half = kernel_size // 2
    self.mask_centre = mask_centre
    self.vertical_row = nn.Conv2d(in_channels, channels, (1, kernel_size), padding=(0, half))
    self.vertical_column = nn.Conv2d(channels, 2 * channels, (half + 1, 1), padding=(half + 1, 0))
    self.vertical_pointwise = nn.Conv2d(in_channels, 2 * channels, 1)
    self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
    self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, half + 1),
                                padding=(0, half + int(mask_centre)))
    self.residual = nn.Conv2d(channels, channels, 1)
    self.skip = nn.Conv2d(channels, channels, 1)

  def forward(self, vertical, horizontal):
    height, width = vertical.shape[2:]
    v_pre = self.vertical_column(self.vertical_row(vertical))[:, :, :height]
    link = self.link(v_pre)
    v_out = gate(v_pre + self.vertical_pointwise(vertical))
    h_gated = gate(link + self.horizontal(horizontal)[:, :, :, :width])
    h_out = self.residual(h_gated)
    if not self.mask_centre:
      h_out = h_out + horizontal
    return v_out, h_out, self.skip(h_gated)


class PeerGatedPixelCNN(nn.Module):
  def __init__(self, num_gated: int = 10, channels: int = 128, head_channels: int = 32,
               num_levels: int = 256):
    super().__init__()
    self.first = GatedLayer(1, channels, 7, mask_centre=True)
    self.layers = nn.ModuleList(GatedLayer(channels, channels, 3, mask_centre=False)
                                for _ in range(num_gated))
    self.head_hidden = nn.Conv2d(channels, head_channels, 1)
    self.head_out = nn.Conv2d(head_channels, num_levels, 1)

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    x = scale_images(images)
    vertical, horizontal, skips = self.first(x, x)
    for layer in self.layers:
      vertical, horizontal, skip = layer(vertical, horizontal)
      skips = skips + skip
    return self.head_out(F.relu(self.head_hidden(F.relu(skips))))


def count_parameters(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def count_live_parameters(model: nn.Module) -> int:
  """Parameters that can affect the output: masked-out kernel taps not counted."""
  total = 0
  for module in model.modules():
    if isinstance(module, MaskedConv2d):
      total += module.live_parameters()
    elif isinstance(module, nn.Conv2d):
      total += sum(p.numel() for p in module.parameters(recurse=False))
  return total


def forward_flops(model: nn.Module, images: torch.Tensor) -> int:
  """FLOPs (2 per multiply-add) of every convolution in one forward pass, as executed:
  a masked kernel counts all its taps. A train step costs about 3x this (forward,
  input gradient, weight gradient)."""
  total = [0]

  def count(module, inputs, output):
    kernel_taps = module.weight[0].numel()  # Cin/groups x kh x kw
    total[0] += 2 * output.numel() * kernel_taps

  hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
  try:
    with torch.no_grad():
      model(images)
  finally:
    for hook in hooks:
      hook.remove()
  return total[0]


def build(model_name: str, model_config) -> nn.Module:
  """The peer model matching a gen_jax config's model section (pixelcnn, gated_pixelcnn)."""
  if model_name == "pixelcnn":
    return PeerPixelCNN(num_residual=model_config.num_blocks,
                        residual_channels=model_config.features // 2,
                        head_channels=model_config.head_features)
  if model_name == "gated_pixelcnn":
    return PeerGatedPixelCNN(num_gated=model_config.num_layers, channels=model_config.features,
                             head_channels=model_config.head_features)
  raise ValueError(f"no PyTorch peer for model {model_name!r}")


def make_train_step(model: nn.Module, batch_size: int, image_size: int = 28,
                    threads: int = 2, seed: int = 0):
  """A closure running one Adam step (zero_grad, forward, cross-entropy, backward, step)
  on a fixed random uint8 batch; returns the loss as a float."""
  torch.set_num_threads(threads)
  torch.manual_seed(seed)
  model.train()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  generator = torch.Generator().manual_seed(seed)
  images = torch.randint(0, 256, (batch_size, 1, image_size, image_size), dtype=torch.uint8,
                         generator=generator)
  targets = images[:, 0].long()  # [B, H, W]

  def step() -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images), targets)
    loss.backward()
    optimizer.step()
    return loss.item()

  step.images = images
  return step

"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", sec. 3.5).

p(x) = prod_i prod_c p(x_{i,c} | x_{<i}, x_{i,<c}): a mask-A k x k convolution,
residual blocks of mask-B convolutions (1x1 -> k x k -> 1x1, as in the paper's
Figure 5), and a head of two mask-B 1x1 convolutions giving a 256-way softmax
per sub-pixel. Colour images are ordered R -> G -> B inside each pixel through
channel groups (see `gen_jax.nn.causal_conv`).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.causal_conv import CausalConv
from gen_jax.nn.precision import compute_dtype


class ResidualBlock(nnx.Module):
  """h + conv1x1(relu(conv_kxk(relu(conv1x1(relu(h)))))), all mask B."""

  def __init__(self, features: int, kernel_size: int, num_groups: int, *, rngs: nnx.Rngs):
    hidden = features // 2
    self.reduce = CausalConv(features, hidden, 1, "B", num_groups=num_groups, rngs=rngs)
    self.spatial = CausalConv(hidden, hidden, kernel_size, "B", num_groups=num_groups, rngs=rngs)
    self.expand = CausalConv(hidden, features, 1, "B", num_groups=num_groups, rngs=rngs)

  def __call__(self, h: jax.Array) -> jax.Array:  # [B, H, W, F]
    y = self.reduce(jax.nn.relu(h))
    y = self.spatial(jax.nn.relu(y))
    y = self.expand(jax.nn.relu(y))
    return h + y


def call(module: nnx.Module, *args):
  return module(*args)


class PixelCNN(nnx.Module):
  """Maps uint8 images [B, H, W, C] to logits [B, H, W, C, num_levels]."""

  def __init__(self, *, num_channels: int, num_levels: int, features: int,
               num_blocks: int, kernel_size: int, first_kernel_size: int,
               head_features: int, remat: bool = False, rngs: nnx.Rngs):
    groups = num_channels
    self.remat = remat  # recompute each block's activations in the backward pass
    self.num_channels = num_channels
    self.num_levels = num_levels
    self.first = CausalConv(num_channels, features, first_kernel_size, "A",
                            num_groups=groups, rngs=rngs)
    self.blocks = nnx.List([ResidualBlock(features, kernel_size, groups, rngs=rngs)
                            for _ in range(num_blocks)])
    self.head_hidden = CausalConv(features, head_features, 1, "B", num_groups=groups, rngs=rngs)
    self.head_out = CausalConv(head_features, num_channels * num_levels, 1, "B",
                               num_groups=groups, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = images.astype(compute_dtype(self)) * (2.0 / (self.num_levels - 1)) - 1.0  # [B, H, W, C] in [-1, 1]
    h = self.first(x)  # [B, H, W, F]
    apply_block = nnx.remat(call) if self.remat else call
    for block in self.blocks:
      h = apply_block(block, h)
    h = self.head_hidden(jax.nn.relu(h))
    logits = self.head_out(jax.nn.relu(h))  # [B, H, W, C * L], channel-major groups
    return logits.reshape(*images.shape, self.num_levels)  # [B, H, W, C, L]

  # ------------------------------------------------------------ cached sampling
  # Every layer's output at an earlier pixel is final once that pixel is drawn
  # (causality), so drawing pixel (i, j) needs each layer's output at (i, j)
  # only. The cache holds the (zero-bordered) inputs of the residual blocks'
  # k x k convolutions; the first layer reads the images themselves, and 1x1
  # convolutions and residuals act on the pixel's feature vector alone.

  def init_cache(self, images: jax.Array) -> list[jax.Array]:
    num, height, width, _ = images.shape
    return [block.spatial.pad_for_cache(
        jnp.zeros((num, height, width, block.spatial.in_features))) for block in self.blocks]

  def logits_at(self, cache: list[jax.Array], images: jax.Array, row, column):
    """(logits [N, C, L] at pixel (row, column), updated cache)."""
    x = images.astype(compute_dtype(self)) * (2.0 / (self.num_levels - 1)) - 1.0  # [N, H, W, C]
    h = self.first.at(self.first.pad_for_cache(x), row, column)  # [N, F]
    block_caches = []
    for block, block_cache in zip(self.blocks, cache):
      y = jax.nn.relu(block.reduce(jax.nn.relu(h)))  # the k x k conv's input at this pixel
      half = block.spatial.half
      block_cache = _write(block_cache, y, row + half, column + half)
      h = h + block.expand(jax.nn.relu(block.spatial.at(block_cache, row, column)))
      block_caches.append(block_cache)
    logits = self.head_out(jax.nn.relu(self.head_hidden(jax.nn.relu(h))))  # [N, C * L]
    return logits.reshape(-1, self.num_channels, self.num_levels), block_caches


def _write(cache: jax.Array, values: jax.Array, row, column) -> jax.Array:
  """cache[:, row, column, :] = values ([N, C]) at traced indices."""
  return jax.lax.dynamic_update_slice(cache, values[:, None, None, :].astype(cache.dtype),
                                      (0, row, column, 0))

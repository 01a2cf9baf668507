"""Vertical and horizontal stacks of the Gated PixelCNN, cropped and shifted.

The vertical stack at row i sees rows i-k//2 .. i (all k columns): it may see
the present row, because the horizontal stack only ever receives it shifted
down by one row (`down_shift`), i.e. rows < i. The horizontal stack sees
columns j-k//2 .. j of row i (j itself is excluded in the first layer, mask
'A'), with the R -> G -> B channel ordering on the centre tap. Together they
cover every earlier pixel: no blind spot (van den Oord et al. 2016, Fig. 1).
"""

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from gen_jax.nn.causal_conv import causal_conv2d, channel_group_mask, init_kernel


def down_shift(x: jax.Array) -> jax.Array:  # [B, H, W, C]: row i <- row i-1, row 0 <- 0
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


class VerticalConv(nnx.Module):
  """[k//2 + 1, k] kernel over rows i-k//2 .. i, 'SAME' along columns."""

  def __init__(self, in_features: int, out_features: int, kernel_size: int, *, rngs: nnx.Rngs):
    self.half = kernel_size // 2
    shape = (self.half + 1, kernel_size, in_features, out_features)
    self.kernel = init_kernel(rngs, shape, shape[0] * shape[1] * in_features)
    self.bias = nnx.Param(jnp.zeros((out_features,)))

  def __call__(self, x: jax.Array) -> jax.Array:
    return causal_conv2d(x, self.kernel[...], ((self.half, 0), (self.half, self.half))
                         ) + self.bias[...]


class HorizontalConv(nnx.Module):
  """[1, k//2 (+1)] kernel over columns j-k//2 .. j-1 (and j unless mask 'A' on one group)."""

  def __init__(self, in_features: int, out_features: int, kernel_size: int, mask_type: str,
               *, num_groups: int = 1, rngs: nnx.Rngs):
    self.half, self.num_groups, self.mask_type = kernel_size // 2, num_groups, mask_type
    self.has_centre = mask_type == "B" or num_groups > 1
    width = self.half + int(self.has_centre)
    self.kernel = init_kernel(rngs, (1, width, in_features, out_features), width * in_features)
    self.bias = nnx.Param(jnp.zeros((out_features,)))
    self.in_features, self.out_features = in_features, out_features

  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.kernel[...]
    if self.num_groups > 1 and self.has_centre:
      kernel = kernel.at[0, -1].multiply(channel_group_mask(
          self.in_features, self.out_features, self.num_groups, self.mask_type))
    right = 0 if self.has_centre else -1
    return causal_conv2d(x, kernel, ((0, 0), (self.half, right))) + self.bias[...]


def horizontal_at(conv: HorizontalConv, padded: jax.Array, row, column) -> jax.Array:
  """HorizontalConv's output at one pixel, [N, Cout], from its input padded by
  `half` zero columns on the left ([N, H, W + half, Cin])."""
  num, _, _, features = padded.shape
  kernel = conv.kernel[...]  # [1, width, Cin, Cout]
  if conv.num_groups > 1 and conv.has_centre:
    kernel = kernel.at[0, -1].multiply(channel_group_mask(
        conv.in_features, conv.out_features, conv.num_groups, conv.mask_type))
  window = lax.dynamic_slice(padded, (0, row, column, 0), (num, 1, kernel.shape[1], features))
  return jnp.einsum("nwc,wcd->nd", window[:, 0], kernel[0]) + conv.bias[...]


def vertical_row(conv: VerticalConv, padded: jax.Array, row) -> jax.Array:
  """VerticalConv's output on one whole row, [N, W, Cout], from its input padded by
  `half` zero rows on top ([N, H + half, W, Cin])."""
  num, _, width, features = padded.shape
  window = lax.dynamic_slice(padded, (0, row, 0, 0), (num, conv.half + 1, width, features))
  return conv(window)[:, -1]  # the last row sees exactly rows row-half .. row

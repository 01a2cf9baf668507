"""Down-shifted and down-right-shifted convolutions of PixelCNN++ (Salimans et al. 2017).

Causality comes from where the zero padding goes, not from a mask:

  'down'        [kh, kw]: output (i, j) reads rows i-kh+1 .. i, columns j-(kw-1)/2 .. j+(kw-1)/2
  'down_right'  [kh, kw]: output (i, j) reads rows i-kh+1 .. i, columns j-kw+1 .. j

so a 'down' stream that starts from rows < i (after one `down_shift`) never sees
row i, and a 'down_right' stream that starts from the pixels before (i, j) in
raster order never sees (i, j). With stride 2 the output (i, j) reads the same
window around input (2i, 2j), and the stride-2 transposed convolution sends
input (i, j) to outputs (2i .. 2i+kh-1, 2j ..): an output only receives from
inputs at or above-left of it in the coarse grid, which keeps both properties
(the coarse pixel (i, j) stands for the 2 x 2 block whose top-left is (2i, 2j)).
The transposed convolution is, by definition, a convolution over the input
dilated by 2 (`lhs_dilation`), padded on the same sides; it is computed as one
stride-1 convolution of the undilated input into the four output phases
followed by depth-to-space (`nn/upsample.py::upsample_by_phases`), which skips
the zeros of the dilation.
"""

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from gen_jax.nn.causal_conv import init_kernel
from gen_jax.nn.gated import down_shift
from gen_jax.nn.upsample import upsample_by_phases

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
DIRECTIONS = ("down", "down_right")

__all__ = ["DIRECTIONS", "ShiftedConv", "down_shift", "right_shift", "shifted_padding"]


def right_shift(x: jax.Array) -> jax.Array:  # [B, H, W, C]: column j <- column j-1, column 0 <- 0
  return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def shifted_padding(kernel_shape: tuple[int, int], direction: str,
                    upsample: bool = False) -> tuple[tuple[int, int], tuple[int, int]]:
  """((top, bottom), (left, right)) zero padding that makes the convolution causal.

  Upsampling convolves the input dilated to 2H-1 rows: one extra row (column) at
  the bottom (right) brings the output to 2H (2W).
  """
  height, width = kernel_shape
  extra = int(upsample)
  rows = (height - 1, extra)
  if direction == "down":
    if width % 2 != 1:
      raise ValueError(f"a 'down' kernel needs an odd width, got {width}")
    columns = ((width - 1) // 2, (width - 1) // 2 + extra)
  elif direction == "down_right":
    columns = (width - 1, extra)
  else:
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
  return rows, columns


class ShiftedConv(nnx.Module):
  """A causal convolution in a PixelCNN++ stream: stride 1, 2 (downsample) or
  a stride-2 transposed convolution (upsample). NHWC; H and W even when resampling."""

  def __init__(self, in_features: int, out_features: int, kernel_shape: tuple[int, int],
               direction: str, *, resample: str = "none", init_scale: float = 1.0,
               rngs: nnx.Rngs):
    if resample not in ("none", "down", "up"):
      raise ValueError(f"resample must be none, down or up, got {resample!r}")
    self.padding = shifted_padding(kernel_shape, direction, upsample=resample == "up")
    self.strides = (2, 2) if resample == "down" else (1, 1)
    self.dilation = (2, 2) if resample == "up" else (1, 1)
    shape = (*kernel_shape, in_features, out_features)
    self.kernel = nnx.Param(init_scale * init_kernel(
        rngs, shape, kernel_shape[0] * kernel_shape[1] * in_features)[...])
    self.bias = nnx.Param(jnp.zeros((out_features,)))

  def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, Cin] -> [B, H', W', Cout]
    if self.dilation == (2, 2):
      return upsample_by_phases(x, self.kernel[...], self.padding) + self.bias[...]
    return lax.conv_general_dilated(
        x, self.kernel[...], self.strides, self.padding, lhs_dilation=self.dilation,
        dimension_numbers=_DIMENSION_NUMBERS) + self.bias[...]

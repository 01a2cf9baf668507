"""Raster-order causal convolutions, cropped and shifted instead of masked.

A PixelCNN mask on a k x k kernel keeps the k//2 rows above the centre and the
taps left of the centre (mask A) or left of and at the centre (mask B): about
half the taps of the full kernel. Rather than multiply a full kernel by a mask
(and pay for the zeros), `CausalConv` holds only the live taps as two kernels:

  above: [k//2, k]        rows i-k//2 .. i-1, columns j-k//2 .. j+k//2
  row:   [1, k//2 (+1)]   row i, columns j-k//2 .. j-1 (and j itself)

Each is a VALID convolution over an input padded so that output (i, j) sees
only those pixels; negative padding crops the row or column that would leak
the present pixel. For colour images the centre tap also carries the channel
ordering R -> G -> B: features are split into one group per colour channel, and
group g at pixel (i, j) may see groups < g (mask A) or <= g (mask B). Only the
centre tap is masked, so the masked work is one 1x1 kernel, not k x k.

`causal_conv2d` runs these VALID convolutions. From TAP_GRADIENT_MIN_FEATURES
input features on, with at least as many output features, on images of at least
TAP_GRADIENT_MIN_POSITIONS pixels (the peer-size PixelCNN's 128 -> 128, the Gated
PixelCNNs' 64 -> 128 and 128 -> 256 convolutions at 28x28), it uses
`tap_conv`, whose kernel gradient is one matmul per kernel tap over the shifted
input instead of XLA:CPU's weight-gradient convolution (a convolution whose
window is the whole image); below that width, or on a small grid, XLA's is as fast or faster on the
default configs (benchmarks/peer.md, benchmarks/kernel_gradient.py).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
# The per-tap kernel gradient beats XLA:CPU's from this many input features on, with
# Cout >= Cin, on images of at least this many positions (benchmarks/kernel_gradient.py,
# a full train step each, Intel AVX-512, 2026-12-05): PixelCNN :peer's 128 -> 128 5% faster
# on 2 devices and 18% on 1, the default Gated PixelCNN's 64 -> 128 14-15%; but the default
# PixelCNN's 32 -> 32 11% slower, and the VQ-VAE prior's 64 -> 128 on its 7x7 code grid
# 4-6% slower (a [B*H*W, Cin] matmul per tap is too short there to pay for its slices).
TAP_GRADIENT_MIN_FEATURES = 64
TAP_GRADIENT_MIN_POSITIONS = 256

Padding = tuple[tuple[int, int], tuple[int, int]]


def _conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                  dimension_numbers=_DIMENSION_NUMBERS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def tap_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  """[B, H, W, Cin] * [kh, kw, Cin, Cout] -> [B, H', W', Cout], stride 1, NHWC/HWIO.

  `padding` ((top, bottom), (left, right)) may be negative (a crop). The same
  values as lax.conv_general_dilated; the kernel gradient is one
  [B*H'*W', Cin]^T @ [B*H'*W', Cout] matmul per tap.
  """
  return _conv(x, kernel, padding)


def _tap_conv_fwd(x, kernel, padding):
  return _conv(x, kernel, padding), (x, kernel)


def _tap_conv_bwd(padding, residuals, grad):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda v: _conv(v, kernel, padding), x)
  (grad_x,) = input_vjp(grad)
  (top, bottom), (left, right) = padding
  padded = lax.pad(x, jnp.zeros((), x.dtype),
                   ((0, 0, 0), (top, bottom, 0), (left, right, 0), (0, 0, 0)))
  _, height, width, cout = grad.shape
  kh, kw, cin, _ = kernel.shape
  grad_rows = grad.reshape(-1, cout)  # [N, Cout]
  taps = []
  for a in range(kh):
    for b in range(kw):
      shifted = padded[:, a:a + height, b:b + width].reshape(-1, cin)  # [N, Cin]
      taps.append(lax.dot_general(shifted, grad_rows, (((0,), (0,)), ((), ())),
                                  preferred_element_type=jnp.float32))
  grad_kernel = jnp.stack(taps).reshape(kh, kw, cin, cout).astype(kernel.dtype)
  return grad_x, grad_kernel


tap_conv.defvjp(_tap_conv_fwd, _tap_conv_bwd)


def causal_conv2d(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  """The VALID convolution of the causal layers: `tap_conv` from
  TAP_GRADIENT_MIN_FEATURES input features on with Cout >= Cin on images of at least
  TAP_GRADIENT_MIN_POSITIONS pixels, else lax's."""
  in_features, out_features = kernel.shape[2], kernel.shape[3]
  if (in_features >= TAP_GRADIENT_MIN_FEATURES and out_features >= in_features
      and x.shape[1] * x.shape[2] >= TAP_GRADIENT_MIN_POSITIONS):
    return tap_conv(x, kernel, padding)
  return _conv(x, kernel, padding)


def channel_group_mask(in_features: int, out_features: int, num_groups: int,
                       mask_type: str) -> np.ndarray:
  """[in, out] 0/1 mask: out group g sees in groups < g ('A') or <= g ('B').

  Feature f of n belongs to group f * num_groups // n, so the groups are
  contiguous blocks (R features first, then G, then B).
  """
  group_in = np.arange(in_features) * num_groups // in_features  # [in]
  group_out = np.arange(out_features) * num_groups // out_features  # [out]
  if mask_type == "A":
    return (group_in[:, None] < group_out[None, :]).astype(np.float32)
  return (group_in[:, None] <= group_out[None, :]).astype(np.float32)


def init_kernel(rngs: nnx.Rngs, shape, fan_in: int) -> nnx.Param:
  """Truncated-normal kernel with variance 1/fan_in (LeCun), fan_in over all taps."""
  std = 1.0 / math.sqrt(fan_in) / 0.87962566  # undo the truncation's shrinkage
  return nnx.Param(std * jax.random.truncated_normal(rngs.params(), -2.0, 2.0, shape))


class CausalConv(nnx.Module):
  """k x k raster-causal convolution (PixelCNN mask 'A' or 'B'), NHWC.

  kernel_size 1 is the masked 1x1 convolution (only the centre tap).
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int,
               mask_type: str, *, num_groups: int = 1, rngs: nnx.Rngs):
    if mask_type not in ("A", "B"):
      raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size % 2 != 1:
      raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    self.kernel_size = kernel_size
    self.half = kernel_size // 2
    self.num_groups = num_groups
    self.mask_type = mask_type
    # The centre tap exists unless it is fully masked (mask A, one group).
    self.has_centre = mask_type == "B" or num_groups > 1
    row_width = self.half + int(self.has_centre)
    fan_in = in_features * (self.half * kernel_size + row_width)
    self.above = (init_kernel(rngs, (self.half, kernel_size, in_features, out_features), fan_in)
                  if self.half > 0 else None)
    self.row = (init_kernel(rngs, (1, row_width, in_features, out_features), fan_in)
                if row_width > 0 else None)
    self.bias = nnx.Param(jnp.zeros((out_features,)))
    self.in_features = in_features
    self.out_features = out_features

  def _row_kernel(self) -> jax.Array:
    kernel = self.row[...]  # [1, width, Cin, Cout]
    if self.num_groups > 1:  # the centre tap carries the R -> G -> B order
      centre_mask = channel_group_mask(self.in_features, self.out_features,
                                       self.num_groups, self.mask_type)
      kernel = kernel.at[0, -1].multiply(centre_mask)
    return kernel

  def __call__(self, x: jax.Array) -> jax.Array:  # [B, H, W, Cin] -> [B, H, W, Cout]
    bias = self.bias[...]
    if self.row is None and self.above is None:  # mask A 1x1 with one group: sees nothing
      return jnp.broadcast_to(bias, (*x.shape[:-1], self.out_features)).astype(x.dtype)
    if self.kernel_size == 1:  # a matmul over the channel axis (cheaper than a 1x1 conv on CPU)
      # As a 2-D [N, Cin] @ [Cin, Cout]: XLA's CPU dot then needs no transposed copies.
      kernel = self._row_kernel()[0, 0]  # [Cin, Cout]
      y = x.reshape(-1, self.in_features) @ kernel + bias
      return y.reshape(*x.shape[:-1], self.out_features)
    # One VALID convolution with a [half + 1, k] kernel: the `above` rows, then the
    # centre row with its taps right of (and, for mask A with one group, at) the centre
    # held at exactly zero. One conv beats two on CPU even with the few zero taps.
    row = self._row_kernel() if self.row is not None else jnp.zeros(
        (1, 0, self.in_features, self.out_features), x.dtype)
    row = jnp.pad(row, ((0, 0), (0, self.kernel_size - row.shape[1]), (0, 0), (0, 0)))
    kernel = jnp.concatenate([self.above[...], row], axis=0)  # [half + 1, k, Cin, Cout]
    # Output (i, j) sees rows i-half .. i and columns j-half .. j+half.
    y = causal_conv2d(x, kernel, ((self.half, 0), (self.half, self.half)))
    return y + bias

  def pad_for_cache(self, x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, H + half, W + 2 half, C]: the zero border `at` reads."""
    return jnp.pad(x, ((0, 0), (self.half, 0), (self.half, self.half), (0, 0)))

  def at(self, padded: jax.Array, row: jax.Array, column: jax.Array) -> jax.Array:
    """The output at one pixel, [N, Cout], from a `pad_for_cache`d input.

    Reads only the live taps: rows row-half .. row-1 and row `row` up to the
    centre, i.e. what the cached sampler has already filled in.
    """
    num, _, _, features = padded.shape
    window = lax.dynamic_slice(padded, (0, row, column, 0),
                               (num, self.half + 1, self.kernel_size, features))  # [N, half+1, k, C]
    y = self.bias[...]
    if self.above is not None:
      y = y + jnp.einsum("nhwc,hwcd->nd", window[:, :self.half], self.above[...])
    if self.row is not None:
      kernel = self._row_kernel()  # [1, width, Cin, Cout]
      y = y + jnp.einsum("nwc,wcd->nd", window[:, self.half, :kernel.shape[1]], kernel[0])
    return y

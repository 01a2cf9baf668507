"""Stride-2 transposed convolutions computed without the dilation's zeros.

A transposed convolution is, by definition, a stride-1 convolution over its input
dilated by the stride (`lhs_dilation`): three of every four dilated pixels are zeros.
XLA:CPU has no fast kernel for its gradient: 179 ms for one 32 -> 32 4x4 layer from
14x14 to 28x28 at batch 64, against 13 ms for the forward pass, and 46 ms computed as
below (`python -m benchmarks.upsample`, idle 2-core Intel Xeon, 2026-12-05). Every
output pixel of a stride-2 transposed
convolution has one of four phases (row and column parity), and each phase reads the
undilated input through a fixed subset of the kernel's taps; `upsample_by_phases`
runs all four as one stride-1 convolution into 4 x Cout channels, then
depth-to-space. The values are the textbook ones (tests/nn/test_upsample.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def phase_taps(kernel_size: int, pad_before: int) -> dict[tuple[int, int], int]:
  """{(phase, offset): tap} of a stride-2 transposed convolution along one axis.

  Output 2i + phase reads dilated input 2i + phase + tap - pad_before; that is
  undilated input i + offset when tap = 2 offset - phase + pad_before.
  """
  taps = {}
  for phase in (0, 1):
    for tap in range(kernel_size):
      if (tap + phase - pad_before) % 2 == 0:
        taps[(phase, (tap + phase - pad_before) // 2)] = tap
  return taps


def upsample_by_phases(x: jax.Array, kernel: jax.Array,
                       padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """conv(dilate_2(x), kernel, padding) -> [B, 2H, 2W, Cout], without the dilation's zeros.

  Each output phase (a, b) (row parity, column parity) is a stride-1
  convolution of x over offsets (dr, dc) with the taps `phase_taps` assigns to
  it; all four run as one convolution into 4 Cout channels, then depth-to-space.
  padding: the ((top, bottom), (left, right)) of the dilated form (bottom and
  right are then implied: the output is 2H x 2W).
  """
  kernel_height, kernel_width, in_features, out_features = kernel.shape
  row_taps = phase_taps(kernel_height, padding[0][0])
  column_taps = phase_taps(kernel_width, padding[1][0])
  row_offsets = sorted({offset for _, offset in row_taps})
  column_offsets = sorted({offset for _, offset in column_taps})
  # Gather indices into the kernel padded with one zero tap at the end (for unused slots).
  rows = np.full((len(row_offsets), 2), kernel_height, np.int32)  # [offsets, phase]
  columns = np.full((len(column_offsets), 2), kernel_width, np.int32)
  for (phase, offset), tap in row_taps.items():
    rows[offset - row_offsets[0], phase] = tap
  for (phase, offset), tap in column_taps.items():
    columns[offset - column_offsets[0], phase] = tap
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  phased = padded[rows[:, None, :, None], columns[None, :, None, :]]  # [dr, dc, a, b, Cin, Cout]
  phased = jnp.moveaxis(phased, (2, 3), (3, 4))  # [dr, dc, Cin, a, b, Cout]
  phased = phased.reshape(len(row_offsets), len(column_offsets), in_features, 4 * out_features)
  offsets_padding = ((-row_offsets[0], row_offsets[-1]), (-column_offsets[0], column_offsets[-1]))
  y = lax.conv_general_dilated(x, phased, (1, 1), offsets_padding,
                               dimension_numbers=_DIMENSION_NUMBERS)  # [B, H, W, (a, b, Cout)]
  batch, height, width, _ = y.shape
  y = y.reshape(batch, height, width, 2, 2, out_features).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(batch, 2 * height, 2 * width, out_features)


class ConvTranspose(nnx.ConvTranspose):
  """`nnx.ConvTranspose` whose 2-D stride-2 'SAME' form (the upsampling layers of the
  conv VAE, DCGAN and the VQ-VAEs) runs as `upsample_by_phases`: the same parameters,
  initialisation and values, its gradient a stride-1 convolution's. Other settings
  (masks, kernel dilation, other strides or paddings) run as nnx's."""

  def __call__(self, inputs: jax.Array) -> jax.Array:
    kernel_shape = tuple(self.kernel_size)
    if (inputs.ndim != 4 or len(kernel_shape) != 2 or min(kernel_shape) < 2
        or tuple(np.broadcast_to(self.strides, 2)) != (2, 2) or self.padding != "SAME"
        or tuple(np.broadcast_to(self.kernel_dilation or 1, 2)) != (1, 1)
        or self.mask is not None or self.transpose_kernel
        or self.precision is not None or self.preferred_element_type is not None):
      return super().__call__(inputs)
    bias = self.bias[...] if self.bias is not None else None
    inputs, kernel, bias = self.promote_dtype((inputs, self.kernel[...], bias), dtype=self.dtype)
    # lax.conv_transpose's 'SAME' padding of the dilated input at stride 2: k in all, the
    # larger half first, so the output is 2H x 2W.
    padding = tuple((-(-size // 2), size // 2) for size in kernel_shape)
    y = upsample_by_phases(inputs, kernel, padding)
    return y if bias is None else y + bias

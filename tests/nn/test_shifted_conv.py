"""ShiftedConv reads exactly the window its direction allows, at stride 1, 2 and when upsampling."""

import jax
import numpy as np
import pytest
from flax import nnx
from jax import lax

from gen_jax.nn.shifted_conv import ShiftedConv, right_shift, shifted_padding
from gen_jax.nn.upsample import upsample_by_phases


def expected_support(direction, kernel_shape, resample, height, width):
  """[out pixel, in pixel] bool, by the definition in the module docstring."""
  kh, kw = kernel_shape
  out_height, out_width = {"none": (height, width), "down": (height // 2, width // 2),
                           "up": (2 * height, 2 * width)}[resample]

  def reads(out_index, in_index, size_k, centred):
    """Whether output coordinate `out_index` reads input coordinate `in_index` (one axis)."""
    if resample == "up":  # input i sits at 2i of the output grid
      in_index = 2 * in_index
    elif resample == "down":  # output i sits at 2i of the input grid
      out_index = 2 * out_index
    if centred:
      return abs(in_index - out_index) <= (size_k - 1) // 2
    return out_index - size_k + 1 <= in_index <= out_index

  support = np.zeros((out_height, out_width, height, width), bool)
  for i, j, ii, jj in np.ndindex(out_height, out_width, height, width):
    support[i, j, ii, jj] = (reads(i, ii, kh, False) and
                             reads(j, jj, kw, direction == "down"))
  return support.reshape(out_height * out_width, height * width)


@pytest.mark.parametrize("direction,kernel_shape", [("down", (2, 3)), ("down_right", (2, 2)),
                                                    ("down", (1, 3)), ("down_right", (2, 1))])
@pytest.mark.parametrize("resample", ["none", "down", "up"])
def test_dependence_is_exactly_the_shifted_window(direction, kernel_shape, resample):
  height, width = 4, 6
  conv = ShiftedConv(2, 3, kernel_shape, direction, resample=resample, rngs=nnx.Rngs(0))
  x = np.random.default_rng(1).normal(size=(1, height, width, 2)).astype(np.float32)
  jacobian = jax.jit(jax.jacrev(lambda v: conv(v)[0]))(x)  # [H', W', 3, 1, H, W, 2]
  got = np.abs(np.asarray(jacobian)).sum(axis=(2, 3, 6)) > 0  # [H', W', H, W]
  expected = expected_support(direction, kernel_shape, resample, height, width)
  np.testing.assert_array_equal(got.reshape(expected.shape), expected)


@pytest.mark.parametrize("direction,kernel_shape", [("down", (2, 3)), ("down_right", (2, 2)),
                                                    ("down", (3, 5)), ("down_right", (3, 4))])
def test_upsampling_by_phases_is_the_dilated_convolution(direction, kernel_shape):
  """The four-phase convolution equals the textbook transposed convolution: a convolution
  over the input dilated by 2 (lax's lhs_dilation), with the same padding."""
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
  kernel = rng.normal(size=(*kernel_shape, 5, 6)).astype(np.float32)
  padding = shifted_padding(kernel_shape, direction, upsample=True)
  expected = lax.conv_general_dilated(x, kernel, (1, 1), padding, lhs_dilation=(2, 2),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  got = jax.jit(upsample_by_phases, static_argnums=2)(x, kernel, padding)
  assert got.shape == (2, 6, 8, 6)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_right_shift_moves_columns_right_with_zeros():
  x = np.arange(12.0).reshape(1, 2, 3, 2)
  np.testing.assert_array_equal(right_shift(x)[0, :, 1:], x[0, :, :-1])
  np.testing.assert_array_equal(right_shift(x)[0, :, 0], 0.0)


def test_bad_arguments_are_errors():
  with pytest.raises(ValueError, match="odd width"):
    shifted_padding((2, 2), "down")
  with pytest.raises(ValueError, match="direction must be one of"):
    shifted_padding((2, 2), "up_left")

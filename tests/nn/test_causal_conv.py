"""CausalConv reads exactly the pixels (and colour groups) its PixelCNN mask allows."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.nn.causal_conv import CausalConv, channel_group_mask


def expected_support(height, width, in_features, out_features, kernel_size, mask_type, groups):
  """[out pixel+feature, in pixel+feature] bool: the masked k x k PixelCNN kernel, by definition."""
  half = kernel_size // 2
  group_mask = channel_group_mask(in_features, out_features, groups, mask_type) > 0  # [in, out]
  support = np.zeros((height, width, out_features, height, width, in_features), bool)
  for i in range(height):
    for j in range(width):
      for di in range(-half, half + 1):
        for dj in range(-half, half + 1):
          ii, jj = i + di, j + dj
          if not (0 <= ii < height and 0 <= jj < width):
            continue
          if di < 0 or (di == 0 and dj < 0):  # strictly before in raster order
            support[i, j, :, ii, jj, :] = True
          elif di == 0 and dj == 0:  # the centre: colour groups decide
            support[i, j, :, ii, jj, :] = group_mask.T
  return support.reshape(height * width * out_features, height * width * in_features)


@pytest.mark.parametrize("kernel_size,mask_type,groups,in_features,out_features", [
    (7, "A", 1, 1, 4), (3, "B", 1, 4, 4), (5, "B", 1, 2, 3), (1, "B", 1, 4, 4),
    (5, "A", 3, 3, 6), (3, "B", 3, 6, 6), (1, "B", 3, 6, 9), (1, "A", 3, 3, 6),
])
def test_dependence_is_exactly_the_mask(kernel_size, mask_type, groups, in_features, out_features):
  height, width = 6, 7
  conv = CausalConv(in_features, out_features, kernel_size, mask_type, num_groups=groups,
                    rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (1, height, width, in_features))
  jacobian = jax.jacrev(lambda v: conv(v)[0])(x)[:, :, :, 0]  # [H, W, Cout, H, W, Cin]
  actual = np.abs(np.asarray(jacobian)).reshape(height * width * out_features, -1) > 0
  expected = expected_support(height, width, in_features, out_features, kernel_size,
                              mask_type, groups)
  # No leak from the present/future, and no blind spot inside the kernel's window.
  np.testing.assert_array_equal(actual, expected)


def test_shape_and_jit():
  conv = CausalConv(3, 6, 3, "B", num_groups=3, rngs=nnx.Rngs(0))
  x = jnp.ones((2, 5, 4, 3))
  chex.assert_shape(nnx.jit(lambda m, v: m(v))(conv, x), (2, 5, 4, 6))


def test_bad_arguments():
  with pytest.raises(ValueError, match="mask_type"):
    CausalConv(1, 1, 3, "C", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="odd"):
    CausalConv(1, 1, 4, "A", rngs=nnx.Rngs(0))

"""PixelCNN: causal in raster and R -> G -> B order, right shapes, uniform start."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.models.pixelcnn import PixelCNN
from gen_jax.objectives import likelihoods


def small_model(channels, **overrides):
  settings = dict(num_channels=channels, num_levels=256, features=12, num_blocks=2,
                  kernel_size=3, first_kernel_size=5, head_features=12)
  settings.update(overrides)
  return PixelCNN(**settings, rngs=nnx.Rngs(0))


def sub_pixel_jacobian(model, height, width, channels):
  """|d sum(logits[i]) / d x[j]| over flat sub-pixel indices (raster, then channel)."""
  x = jax.random.uniform(jax.random.key(1), (1, height, width, channels), maxval=255.0)
  # jit: one compiled program, not one per eager op of the batched backward pass
  jacobian = jax.jit(jax.jacrev(lambda v: model(v)[0].sum(-1)))(x)  # [H, W, C, 1, H, W, C]
  size = height * width * channels
  return np.abs(np.asarray(jacobian)).reshape(size, size)


@pytest.mark.parametrize("channels", [1, 3])
def test_causal_by_jacobian(channels):
  height, width = 5, 6
  # 24 features: wide enough per colour group that no ReLU path dies at random inputs.
  model = small_model(channels, features=24, head_features=24)
  jac = sub_pixel_jacobian(model, height, width, channels)
  # Output sub-pixel i never depends on input sub-pixels j >= i ...
  np.testing.assert_array_equal(np.triu(jac), 0.0)
  # ... and does see every channel of its left neighbour and of the pixel above
  # (no dead network), and, in colour, the earlier channels of its own pixel.
  c = channels
  for i in range(height):
    for j in range(width):
      pixel = i * width + j
      for out_channel in range(c):
        row = c * pixel + out_channel
        if j > 0:
          assert np.all(jac[row, c * (pixel - 1):c * pixel] > 0)
        if i > 0:
          assert np.all(jac[row, c * (pixel - width):c * (pixel - width + 1)] > 0)
        assert np.all(jac[row, c * pixel:c * pixel + out_channel] > 0)


@pytest.mark.parametrize("channels", [1, 3])
def test_logit_shape_and_initial_bits_per_dim(channels):
  model = small_model(channels)
  images = jax.random.randint(jax.random.key(2), (4, 8, 8, channels), 0, 256).astype(jnp.uint8)
  logits = jax.jit(lambda v: model(v))(images)
  chex.assert_shape(logits, (4, 8, 8, channels, 256))
  bpd = likelihoods.bits_per_dim(likelihoods.categorical_nll(logits, images), 8 * 8 * channels)
  # A freshly initialised model is close to uniform: about 8 bits/dim.
  np.testing.assert_allclose(np.asarray(bpd), 8.0, atol=0.5)

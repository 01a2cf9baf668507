"""Gated PixelCNN: causal, no blind spot, class conditioning reaches every pixel."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.models.gated_pixelcnn import GatedPixelCNN, gate
from gen_jax.models.pixelcnn import PixelCNN


def gated(channels, num_classes=0, num_layers=3):
  # 16 features per colour group: wide enough that no ReLU path dies at random inputs.
  width = 16 * channels if channels > 1 else 24
  return GatedPixelCNN(num_channels=channels, num_levels=256, features=width,
                       num_layers=num_layers, kernel_size=3, first_kernel_size=3,
                       skip_features=width, head_features=width, num_classes=num_classes,
                       rngs=nnx.Rngs(0))


def jacobian(model, height, width, channels, *args):
  x = jax.random.uniform(jax.random.key(1), (1, height, width, channels), maxval=255.0)
  # jit: one compiled program, not one per eager op of the batched backward pass
  jac = jax.jit(jax.jacrev(lambda v: model(v, *args)[0].sum(-1)))(x)  # [H, W, C, 1, H, W, C]
  size = height * width * channels
  return np.abs(np.asarray(jac)).reshape(size, size)


@pytest.mark.parametrize("channels", [1, 3])
def test_causal_by_jacobian(channels):
  jac = jacobian(gated(channels, num_classes=10), 6, 5, channels, jnp.array([4]))
  np.testing.assert_array_equal(np.triu(jac), 0.0)
  if channels == 3:  # within a pixel, G sees R and B sees R and G
    for pixel in range(30):
      red, green, blue = 3 * pixel, 3 * pixel + 1, 3 * pixel + 2
      assert jac[green, red] > 0 and jac[blue, green] > 0 and jac[blue, red] > 0


def test_no_blind_spot_where_the_masked_pixelcnn_has_one():
  height, width, (i, j) = 6, 7, (4, 3)
  gated_jac = jacobian(gated(1), height, width, 1)
  plain = PixelCNN(num_channels=1, num_levels=256, features=24, num_blocks=2, kernel_size=3,
                   first_kernel_size=3, head_features=24, rngs=nnx.Rngs(0))
  plain_jac = jacobian(plain, height, width, 1)
  up_right = (i - 1) * width + j + 2  # two columns right of the pixel, one row up
  # 3 gated layers of 3x3 reach two rows up and two columns either side, and 3 to the left.
  for di in (1, 2):
    for dj in range(-2, 3):
      assert gated_jac[i * width + j, (i - di) * width + j + dj] > 0, (di, dj)
  for dj in (1, 2, 3):
    assert gated_jac[i * width + j, i * width + j - dj] > 0
  # The masked PixelCNN of the same reach (3 causal 3x3 layers) cannot see up-right.
  assert plain_jac[i * width + j, up_right] == 0


def test_class_conditioning_changes_every_pixel_logit():
  model = gated(1, num_classes=10)
  images = jnp.zeros((2, 5, 5, 1), jnp.uint8)
  a, b = model(images, jnp.array([0, 0])), model(images, jnp.array([0, 7]))
  chex.assert_shape(a, (2, 5, 5, 1, 256))
  np.testing.assert_array_equal(a[0], b[0])
  assert np.all(np.abs(np.asarray(a[1] - b[1])).max(-1) > 0)  # pixel (0, 0) included


def test_gate_is_tanh_times_sigmoid_of_interleaved_pairs():
  x = jnp.arange(8.0).reshape(1, 8) / 10
  np.testing.assert_allclose(gate(x), jnp.tanh(x[:, 0::2]) * jax.nn.sigmoid(x[:, 1::2]), rtol=1e-6)

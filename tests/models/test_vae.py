"""VAE encoders/decoders: shapes, per-example independence, label conditioning."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.models import vae

IMAGE_SHAPE = (8, 12, 1)


def create(architecture, num_classes=0, outputs=3, variational=True):
  return vae.VAE(architecture=architecture, image_shape=IMAGE_SHAPE, latent_dim=4,
                 outputs_per_subpixel=outputs, num_levels=256, hidden_sizes=(16,), features=4,
                 num_classes=num_classes, variational=variational, rngs=nnx.Rngs(0))


def images(num, seed=0):
  return jax.random.randint(jax.random.key(seed), (num, *IMAGE_SHAPE), 0, 256).astype(jnp.uint8)


@pytest.fixture(scope="module", params=["mlp", "conv"])
def conditional_model(request):
  return create(request.param, num_classes=5)


def test_shapes_and_examples_are_independent(conditional_model):
  """Changing example 1 changes its own code and decoding only (no mixing across the batch)."""
  model, x, labels = conditional_model, images(3), jnp.array([0, 4, 2])
  mean, log_variance = model.encode(x, labels)
  assert mean.shape == log_variance.shape == (3, 4)
  assert model.decode(mean, labels).shape == (3, *IMAGE_SHAPE, 3)
  changed_mean = model.encode(x.at[1].set(255 - x[1]), labels)[0]
  np.testing.assert_allclose(mean[jnp.array([0, 2])], changed_mean[jnp.array([0, 2])], rtol=1e-6)
  assert not np.allclose(mean[1], changed_mean[1])
  outputs, changed = model.decode(mean, labels), model.decode(mean.at[1].add(1.0), labels)
  np.testing.assert_allclose(outputs[jnp.array([0, 2])], changed[jnp.array([0, 2])], rtol=1e-6)
  assert not np.allclose(outputs[1], changed[1])


def test_labels_condition_both_encoder_and_decoder(conditional_model):
  model, x, z = conditional_model, images(2), jnp.ones((2, 4))
  labels_a, labels_b = jnp.array([0, 1]), jnp.array([3, 1])
  assert not np.allclose(model.encode(x, labels_a)[0][0], model.encode(x, labels_b)[0][0])
  np.testing.assert_allclose(model.encode(x, labels_a)[0][1], model.encode(x, labels_b)[0][1],
                             rtol=1e-6)
  assert not np.allclose(model.decode(z, labels_a)[0], model.decode(z, labels_b)[0])
  np.testing.assert_allclose(model.decode(z, labels_a)[1], model.decode(z, labels_b)[1], rtol=1e-6)


def test_unconditional_model_shapes():
  model = create("conv", outputs=2)
  mean, _ = model.encode(images(2))
  assert model(images(2)).shape == model.decode(mean).shape == (2, *IMAGE_SHAPE, 2)


def test_autoencoder_code_is_a_point_mass():
  model = create("mlp", variational=False)
  code, log_variance = model.encode(images(2))
  assert code.shape == (2, 4) and np.all(np.isneginf(log_variance))


def test_conv_kernel_init_is_lecun_normal():
  """std 1/sqrt(fan_in), fan_in = kh * kw * in; Flax's truncated normal: |w| <= 2.274 std."""
  kernel = vae.conv_kernel_init(jax.random.key(0), (4, 4, 32, 64))
  fan_in = 4 * 4 * 32
  np.testing.assert_allclose(kernel.std(), 1 / math.sqrt(fan_in), rtol=0.03)
  assert float(jnp.abs(kernel).max()) <= 2.28 / math.sqrt(fan_in)
  default = nnx.initializers.lecun_normal()(jax.random.key(1), (4, 4, 32, 64))
  np.testing.assert_allclose(kernel.std(), default.std(), rtol=0.05)

"""VQ-VAE / VQ-VAE-2 modules: grid shapes, the bottom grid conditioned on the top, bad sizes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.errors import UserError
from gen_jax.models.vqvae import VQVAE, VQVAE2
from gen_jax.objectives import vector_quantization as vq


def create(model_class, num_downsamples):
  with jax.threefry_partitionable(False):  # eager draws of many shapes compile 3x faster
    return model_class(num_channels=1, features=8, residual_hidden=4, num_residual=1,
                       num_downsamples=num_downsamples, embedding_dim=3, rngs=nnx.Rngs(0))


def quantize_with(codebooks):
  def quantize(scale, z):
    embedding, codes = vq.quantize(z, codebooks[scale])
    return vq.straight_through(z, embedding), codes
  return quantize


def test_latent_grids_and_reconstruction_shapes():
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1), minval=-1, maxval=1)
  codebooks = {scale: jax.random.normal(jax.random.key(1), (5, 3))
               for scale in ("latent", "top", "bottom")}
  for model_class, num_downsamples, shapes in ((VQVAE, 2, {"latent": (7, 7)}),
                                               (VQVAE2, 1, {"top": (7, 7), "bottom": (14, 14)})):
    assert model_class.latent_shapes((28, 28, 1), num_downsamples) == shapes
    model = create(model_class, num_downsamples)
    mean, latents, codes = jax.jit(lambda x: model(x, quantize_with(codebooks)))(x)
    chex.assert_shape(mean, (2, 28, 28, 1))
    for scale, shape in shapes.items():
      chex.assert_shape(latents[scale], (2, *shape, 3))
      chex.assert_shape(codes[scale], (2, *shape))


def test_vqvae2_bottom_codes_see_the_top_codes():
  model = create(VQVAE2, 1)
  x = jax.random.uniform(jax.random.key(0), (1, 28, 28, 1), minval=-1, maxval=1)
  codebooks = {"top": jax.random.normal(jax.random.key(1), (5, 3)),
               "bottom": jax.random.normal(jax.random.key(2), (5, 3))}
  forward = jax.jit(lambda codebooks: model(x, quantize_with(codebooks))[1])
  latents = forward(codebooks)
  # other top embeddings, same image
  moved_latents = forward({**codebooks, "top": codebooks["top"] + 1.0})
  np.testing.assert_array_equal(latents["top"], moved_latents["top"])
  assert np.all(np.abs(np.asarray(latents["bottom"] - moved_latents["bottom"])).max(-1) > 0)


def test_decoder_reads_every_level():
  model = create(VQVAE2, 1)
  embeddings = {"top": jnp.zeros((1, 7, 7, 3)), "bottom": jnp.zeros((1, 14, 14, 3))}
  decode = jax.jit(model.decode)
  base = decode(embeddings)
  for scale in embeddings:
    changed = decode({**embeddings, scale: embeddings[scale] + 1.0})
    assert np.abs(np.asarray(changed - base)).max() > 0, scale


@pytest.mark.parametrize("model_class,num_downsamples", [(VQVAE, 3), (VQVAE2, 2), (VQVAE, 0)])
def test_grids_that_do_not_tile_the_image_are_a_user_error(model_class, num_downsamples):
  message = f"model.num_downsamples={num_downsamples} does not fit 28x28"
  with pytest.raises(UserError, match=message):
    model_class.latent_shapes((28, 28, 1), num_downsamples)

"""Code priors: the Gated PixelCNN with embedded codes and a conditioning map.

Causal over the codes (raster order), the conditioning map reaching every
position, and cached sampling equal to naive sampling with both.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax import sampling
from gen_jax.models.code_prior import CodePrior
from gen_jax.models.gated_pixelcnn import GatedPixelCNN

HEIGHT, WIDTH, NUM_CODES = 5, 4, 7


def gated(embed_features=0, condition_features=3):
  with jax.threefry_partitionable(False):  # eager draws of many shapes compile 3x faster
    return GatedPixelCNN(num_channels=1, num_levels=NUM_CODES, features=16, num_layers=3,
                         kernel_size=3, first_kernel_size=3, skip_features=16,
                         head_features=16, embed_features=embed_features,
                         condition_features=condition_features, rngs=nnx.Rngs(0))


def test_causal_over_the_codes_with_a_condition_map():
  """Jacobian over (scaled) code inputs: position i depends on no position j >= i."""
  model = gated()
  condition = jax.random.normal(jax.random.key(2), (1, HEIGHT, WIDTH, 3))
  x = jax.random.uniform(jax.random.key(1), (1, HEIGHT, WIDTH, 1), maxval=NUM_CODES - 1)
  jac = jax.jit(jax.jacrev(lambda v: model(v, None, condition)[0].sum(-1)))(x)
  size = HEIGHT * WIDTH
  jac = np.abs(np.asarray(jac)).reshape(size, size)
  np.testing.assert_array_equal(np.triu(jac), 0.0)
  assert np.all(np.diag(jac, -1)[np.arange(1, size) % WIDTH != 0] > 0)  # the left neighbour


def test_embedded_codes_are_causal():
  """Changing the code at j changes no logits at positions <= j (and does change a later one)."""
  model = gated(embed_features=5)
  condition = jax.random.normal(jax.random.key(2), (1, HEIGHT, WIDTH, 3))
  codes = jax.random.randint(jax.random.key(3), (1, HEIGHT, WIDTH, 1), 0, NUM_CODES)
  size = HEIGHT * WIDTH
  flipped = jnp.tile(codes, (size, 1, 1, 1)).reshape(size, size)
  flipped = flipped.at[jnp.arange(size), jnp.arange(size)].set(
      (flipped[jnp.arange(size), jnp.arange(size)] + 1) % NUM_CODES)
  batch = jnp.concatenate([codes.reshape(1, size), flipped])  # row 0 unchanged, one call
  logits = jax.jit(model)(batch.reshape(size + 1, HEIGHT, WIDTH, 1), None,
                          jnp.tile(condition, (size + 1, 1, 1, 1)))
  logits = logits.reshape(size + 1, size, NUM_CODES)
  moved = np.abs(np.asarray(logits[1:] - logits[:1])).max(-1)  # [flipped j, position i]
  np.testing.assert_array_equal(np.tril(moved), 0.0)  # i <= j unaffected
  assert np.all(moved[:-1, -1] > 0)  # the last position sees every earlier code


def test_condition_map_reaches_every_position():
  model = gated(embed_features=5)
  codes = jax.random.randint(jax.random.key(3), (1, HEIGHT, WIDTH, 1), 0, NUM_CODES)
  condition = jax.random.normal(jax.random.key(2), (1, HEIGHT, WIDTH, 3))
  # [H, W, 1] logits (summed over codes) by [1, H, W, 3] map
  jac = jax.jit(jax.jacrev(lambda c: model(codes, None, c)[0].sum(-1)))(condition)
  own = np.abs(np.asarray(jac)).reshape(HEIGHT * WIDTH, HEIGHT * WIDTH, 3).sum(-1)
  assert np.all(np.diag(own) > 0)  # the map at a position reaches that position's logits


def test_unconditioned_model_is_unchanged_and_rejects_a_map():
  with jax.threefry_partitionable(False):
    plain = GatedPixelCNN(num_channels=1, num_levels=NUM_CODES, features=16, num_layers=2,
                          kernel_size=3, first_kernel_size=3, skip_features=16,
                          head_features=16, rngs=nnx.Rngs(0))
  names = {"/".join(map(str, path)) for path, _ in nnx.state(plain, nnx.Param).flat_state()}
  assert not any("condition" in name or "embed" in name for name in names)
  codes = jnp.zeros((1, HEIGHT, WIDTH, 1), jnp.int32)
  with pytest.raises(ValueError, match="condition map of 0 features"):  # not silently ignored
    plain(codes, None, jnp.zeros((1, HEIGHT, WIDTH, 3)))


def test_cached_sampling_of_a_conditioned_code_prior_equals_naive_sampling():
  with jax.threefry_partitionable(False):
    prior = CodePrior(num_codes=NUM_CODES, features=16, num_layers=3, kernel_size=3,
                      first_kernel_size=3, skip_features=16, head_features=16, embed_features=5,
                      condition_num_codes=6, condition_features=4, rngs=nnx.Rngs(1))
  graphdef, params = nnx.split(prior)
  prior = nnx.merge(graphdef, jax.tree.map(lambda p: 3.0 * p, params))  # sharper draws
  top = jax.random.randint(jax.random.key(0), (3, 3, 2), 0, 6)  # bottom grid 6 x 4
  grid = jnp.zeros((3, 6, 4, 1), jnp.int32)
  rng = jax.random.PRNGKey(5)
  naive = jax.jit(lambda r: sampling.sample_autoregressive(
      lambda c: prior(c[..., 0], top)[..., None, :], r, grid))(rng)
  cached = jax.jit(lambda r: sampling.sample_autoregressive_cached(
      lambda c: prior.init_cache(c, top), prior.logits_at, r, grid))(rng)
  np.testing.assert_array_equal(naive, cached)
  assert len(np.unique(np.asarray(naive))) > 3  # real draws over several codes
  other_top = jax.jit(lambda r: sampling.sample_autoregressive_cached(
      lambda c: prior.init_cache(c, (top + 1) % 6), prior.logits_at, r, grid))(rng)
  assert np.any(np.asarray(other_top) != np.asarray(cached))  # the top codes matter

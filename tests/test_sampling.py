"""Ancestral sampling: raster order, keyed per position, completion keeps the prefix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import sampling


def counting_logits(images):
  """A causal 'model' that puts all mass on (previous sub-pixel's value + 1) mod 256."""
  flat = images.reshape(images.shape[0], -1).astype(jnp.int32)  # [N, D]
  previous = jnp.concatenate([jnp.full((flat.shape[0], 1), -1), flat[:, :-1]], axis=1)
  logits = 50.0 * jax.nn.one_hot((previous + 1) % 256, 256)  # [N, D, 256]
  return logits.reshape(*images.shape, 256)


def test_samples_in_raster_then_channel_order():
  images = jnp.zeros((2, 3, 4, 3), jnp.uint8)
  out = jax.jit(sampling.sample_autoregressive, static_argnums=0)(
      counting_logits, jax.random.PRNGKey(0), images)
  # Each sub-pixel saw its fully-sampled predecessor: 0, 1, 2, ... in raster order.
  np.testing.assert_array_equal(out.reshape(2, -1), np.tile(np.arange(36), (2, 1)))


def test_completion_keeps_the_observed_prefix():
  images = jnp.full((1, 3, 4, 1), 200, jnp.uint8)
  out = sampling.sample_autoregressive(counting_logits, jax.random.PRNGKey(0), images, start=5)
  flat = np.asarray(out).reshape(-1)
  np.testing.assert_array_equal(flat[:5], 200)
  np.testing.assert_array_equal(flat[5:], (201 + np.arange(7)) % 256)


def test_draws_follow_the_model_distribution_and_the_key():
  probs = jnp.array([0.1, 0.6, 0.3])
  logits_fn = lambda images: jnp.broadcast_to(jnp.log(probs), (*images.shape, 3))
  images = jnp.zeros((2000, 2, 2, 1), jnp.uint8)
  out = np.asarray(sampling.sample_autoregressive(logits_fn, jax.random.PRNGKey(1), images))
  np.testing.assert_allclose(np.bincount(out.reshape(-1), minlength=3) / out.size, probs, atol=0.02)
  again = np.asarray(sampling.sample_autoregressive(logits_fn, jax.random.PRNGKey(1), images))
  np.testing.assert_array_equal(out, again)


def test_image_grid_layout():
  images = np.stack([np.full((2, 3, 1), v, np.uint8) for v in (10, 20, 30)])
  grid = sampling.image_grid(images, num_columns=2)
  assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1)
  assert grid[1, 1, 0] == 10 and grid[1, 5, 0] == 20 and grid[4, 1, 0] == 30
  assert grid[4, 5, 0] == 255  # empty cell stays white


@pytest.mark.parametrize("channels,features", [(1, 16), (3, 24)])
def test_cached_pixelcnn_sampling_equals_naive_sampling(channels, features):
  """Same key -> identical images, grayscale and RGB (the R -> G -> B order included)."""
  from flax import nnx
  from gen_jax.models.pixelcnn import PixelCNN
  model = PixelCNN(num_channels=channels, num_levels=256, features=features, num_blocks=2,
                   kernel_size=3, first_kernel_size=5, head_features=features, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  # Sharpen the model so draws depend strongly on the context (not near-uniform).
  model = nnx.merge(graphdef, jax.tree.map(lambda p: 4.0 * p, params))
  images = jnp.zeros((3, 7, 6, channels), jnp.uint8)
  rng = jax.random.PRNGKey(7)
  naive = jax.jit(lambda r: sampling.sample_autoregressive(model, r, images))(rng)
  cached = jax.jit(lambda r: sampling.sample_autoregressive_cached(
      model.init_cache, model.logits_at, r, images))(rng)
  np.testing.assert_array_equal(naive, cached)
  assert len(np.unique(np.asarray(naive))) > 10  # real draws, not a constant image


def test_cached_completion_keeps_prefix_and_matches_naive():
  from flax import nnx
  from gen_jax.models.pixelcnn import PixelCNN
  model = PixelCNN(num_channels=1, num_levels=256, features=16, num_blocks=1, kernel_size=3,
                   first_kernel_size=3, head_features=16, rngs=nnx.Rngs(1))
  observed = jax.random.randint(jax.random.key(0), (2, 5, 5, 1), 0, 256).astype(jnp.uint8)
  rng = jax.random.PRNGKey(3)
  naive = sampling.sample_autoregressive(model, rng, observed, start=10)
  cached = sampling.sample_autoregressive_cached(model.init_cache, model.logits_at, rng,
                                                 observed, start=10)
  np.testing.assert_array_equal(naive, cached)
  np.testing.assert_array_equal(naive.reshape(2, -1)[:, :10], observed.reshape(2, -1)[:, :10])


@pytest.mark.parametrize("channels,features,num_classes", [(1, 16, 0), (3, 24, 0), (1, 16, 10)])
def test_cached_gated_pixelcnn_sampling_equals_naive_sampling(channels, features, num_classes):
  from flax import nnx
  from gen_jax.models.gated_pixelcnn import GatedPixelCNN
  model = GatedPixelCNN(num_channels=channels, num_levels=256, features=features, num_layers=3,
                        kernel_size=3, first_kernel_size=5, skip_features=features,
                        head_features=features, num_classes=num_classes, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  model = nnx.merge(graphdef, jax.tree.map(lambda p: 3.0 * p, params))
  labels = jnp.array([1, 4, 7]) if num_classes else None
  logits_fn = (lambda x: model(x, labels)) if num_classes else model
  images = jnp.zeros((3, 6, 7, channels), jnp.uint8)
  rng = jax.random.PRNGKey(3)
  naive = jax.jit(lambda r: sampling.sample_autoregressive(logits_fn, r, images))(rng)
  cached = jax.jit(lambda r: sampling.sample_autoregressive_cached(
      lambda x: model.init_cache(x, labels), model.logits_at, r, images))(rng)
  np.testing.assert_array_equal(naive, cached)
  assert len(np.unique(np.asarray(naive))) > 10


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layer_type", ["row_lstm", "diagonal_bilstm"])
def test_cached_pixelrnn_sampling_equals_naive_sampling(layer_type, channels):
  """Same key -> identical images: the carried row / diagonal LSTM states (and the
  right-to-left pass run once a row is drawn) give the naive sampler's logits."""
  from flax import nnx
  from gen_jax.models.pixelrnn import PixelRNN
  width = 8 * channels
  model = PixelRNN(layer_type=layer_type, num_channels=channels, num_levels=256, features=width,
                   hidden_features=width, num_layers=2, kernel_size=3, first_kernel_size=3,
                   head_features=width, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  model = nnx.merge(graphdef, jax.tree.map(lambda p: 3.0 * p, params))
  # A completion (start > 0) keeps the observed prefix in both samplers.
  observed = jax.random.randint(jax.random.key(0), (3, 5, 4, channels), 0, 256).astype(jnp.uint8)
  start = 3 * channels
  rng = jax.random.PRNGKey(7)
  naive = jax.jit(lambda r: sampling.sample_autoregressive(model, r, observed, start=start))(rng)
  cached = jax.jit(lambda r: sampling.sample_autoregressive_cached(
      model.init_cache, model.logits_at, r, observed, start=start))(rng)
  np.testing.assert_array_equal(naive, cached)
  np.testing.assert_array_equal(naive.reshape(3, -1)[:, :start], observed.reshape(3, -1)[:, :start])
  assert len(np.unique(np.asarray(naive))) > 10

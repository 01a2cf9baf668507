"""PixelCNN++: causal through the channel coupling, no blind spot, samplers agree, config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import load_config
from gen_jax import parallel, tasks, train
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.pixelcnn_pp import PixelCNNPlusPlus
from gen_jax.objectives import logistic_mixture


def perturbed(tree, seed, scale=0.1):
  """Adds noise to every parameter: nonzero biases, so no path is silent at the image edge."""
  leaves, treedef = jax.tree.flatten(tree)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(treedef, [leaf + scale * rng.normal(size=leaf.shape).astype(np.float32)
                                      for leaf in leaves])


def sub_pixel_jacobian(num_channels, height=4, width=4, num_mixtures=2):
  """|d (projected log-probs of sub-pixel p) / d x_q| over flat sub-pixels (raster, channel)."""
  model = PixelCNNPlusPlus(num_channels=num_channels, num_levels=256, features=8, num_resnets=1,
                           num_scales=2, num_mixtures=num_mixtures, dropout_rate=0.0,
                           rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  params = perturbed(params, seed=1)
  projection = np.random.default_rng(2).normal(size=256).astype(np.float32)

  def projected_log_probs(images):  # [1, H, W, C] floats -> [H * W * C]
    raw = nnx.merge(graphdef, params)(images)
    mixture = logistic_mixture.split_mixture_params(raw, num_channels, num_mixtures)
    return (logistic_mixture.sub_pixel_log_probs(mixture, images, 256) @ projection).reshape(-1)

  # Non-integer levels away from the edge bins: every path is differentiable.
  x = np.random.default_rng(3).uniform(20.0, 235.0, (1, height, width, num_channels))
  jacobian = jax.jit(jax.jacrev(projected_log_probs))(x.astype(np.float32))
  size = height * width * num_channels
  return np.abs(np.asarray(jacobian)).reshape(size, size)


@pytest.mark.parametrize("num_channels", [1, 3])
def test_causal_by_jacobian_through_the_channel_coupling(num_channels):
  jacobian = sub_pixel_jacobian(num_channels)
  # The distribution of sub-pixel p never depends on sub-pixels q >= p (p itself included) ...
  np.testing.assert_array_equal(np.triu(jacobian), 0.0)
  # ... and depends on every earlier one: no blind spot, and in colour the coupling reaches
  # G from R and B from R and G inside each pixel (the network alone sees earlier pixels only).
  earlier = np.tril(np.ones_like(jacobian, bool), -1)
  assert np.all(jacobian[earlier] > 0), np.argwhere(earlier & (jacobian == 0))[:5]


def tiny_task(image_shape, **model_overrides):
  config = load_config("pixelcnn_pp.py", "smoke")
  with config.unlocked():
    config.model.features, config.model.num_scales = 8, 2
    for key, value in model_overrides.items():
      config.model[key] = value
  spec = DatasetSpec(image_shape, 256, 0)
  return config, spec, tasks.create_task(config, spec)


@pytest.mark.parametrize("channels,num_scales,size", [(3, 2, 4), (1, 3, 4), (1, 3, 8), (3, 3, 8)])
def test_cached_sampler_draws_what_the_naive_one_draws(channels, num_scales, size):
  """Completion from the middle of the image (RGB: pixel 6, channel B): the prefix is kept,
  and the cached sampler (the u stream once per row on its row at every scale, the ul stream
  once per pixel at its position at every scale, the rows above and the columns to the left
  from ring buffers) draws exactly what the naive one draws; at 8x8 over 3 scales a coarse
  position is shared by 2 x 2 and 4 x 4 pixels."""
  _, _, task = tiny_task((size, size, channels), num_scales=num_scales)
  _, _, naive_task = tiny_task((size, size, channels), num_scales=num_scales,
                               cached_sampling=False)
  state = task.init(jax.random.key(0), None)
  state = state.replace(ema_params=perturbed(state.ema_params, seed=4))
  shape = (2, size, size, channels)
  images = jnp.asarray(np.random.default_rng(6).integers(0, 256, shape), jnp.uint8)
  rng, start = jax.random.key(5), 20 if channels == 3 else 5
  cached = jax.jit(task.complete, static_argnums=4)(state, rng, images, None, start)
  naive = jax.jit(naive_task.complete, static_argnums=4)(state, rng, images, None, start)
  np.testing.assert_array_equal(cached, naive)
  np.testing.assert_array_equal(cached.reshape(2, -1)[:, :start], images.reshape(2, -1)[:, :start])
  assert np.any(cached.reshape(2, -1)[:, start:] != images.reshape(2, -1)[:, start:])


def test_dropout_only_with_an_rng_and_a_near_uniform_start():
  model = PixelCNNPlusPlus(num_channels=1, num_levels=256, features=8, num_resnets=1,
                           num_scales=1, num_mixtures=5, dropout_rate=0.5, rngs=nnx.Rngs(0))
  images = np.random.default_rng(7).integers(0, 256, (16, 8, 8, 1)).astype(np.uint8)
  apply = jax.jit(lambda x, rng: model(x, rng))
  deterministic = jax.jit(lambda x: model(x))
  np.testing.assert_array_equal(deterministic(images), deterministic(images))
  assert not np.allclose(apply(images, jax.random.key(1)), deterministic(images))
  assert not np.allclose(apply(images, jax.random.key(1)), apply(images, jax.random.key(2)))
  # The head starts near uniform: about 8 bits/dim on uniform noise (8.07 for its bias alone).
  nll = logistic_mixture.mixture_nll(deterministic(images), images, num_mixtures=5, num_levels=256)
  assert 8.0 < float(nll.mean()) / (64 * np.log(2.0)) < 8.4


@pytest.mark.parametrize("overrides,message", [
    (dict(num_scales=4), r"image size 28x28 must be divisible by 8 \(model.num_scales=4"),
    (dict(dropout_rate=1.0), r"model.dropout_rate=1.0 must be in \[0, 1\)"),
    (dict(num_mixtures=0), r"model.num_mixtures=0 must be at least 1"),
])
def test_config_values_that_cannot_work_are_user_errors(overrides, message):
  config = load_config("pixelcnn_pp.py")
  with config.unlocked():
    config.model.update(overrides)
  with pytest.raises(UserError, match=message):
    tasks.create_task(config, train.dataset_spec(config.data))


def test_cifar10_variant_is_the_papers_model_and_validates():
  config = load_config("pixelcnn_pp.py", "cifar10")
  assert config.data.name == "cifar10"
  model = config.model
  assert (model.features, model.num_resnets, model.num_mixtures) == (160, 5, 10)
  spec = train.dataset_spec(config.data)
  assert spec.image_shape == (32, 32, 3)
  train.validate_config(config, parallel.create_mesh())
  task = tasks.create_task(config, spec)
  # 10 parameters per component in colour: logit, 3 means, 3 log-scales, 3 coefficients.
  params = jax.eval_shape(task.init, jax.random.key(0), None).params
  assert params["head"]["linear"]["kernel"].shape == (160, 100)

"""The M2 task: its vectorised bounds agree with a class-by-class computation."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import load_config
from gen_jax import tasks, train
from gen_jax.errors import UserError

from gen_jax.models.semi_supervised_vae import LabelledLinear, SemiSupervisedVAE
from gen_jax.tasks import semi_supervised_vae as task_module
from gen_jax.tasks.common import TrainState, module_functions

K, Z, D = 3, 2, 12


def create_model(rngs):
  return SemiSupervisedVAE(num_inputs=D, num_classes=K, latent_dim=Z, hidden=8, num_layers=2,
                           rngs=rngs)


def test_labelled_linear_is_a_linear_map_of_the_concatenation():
  layer = LabelledLinear(5, K, 4, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (6, 5))
  labels = jnp.array([0, 2, 1, 1, 0, 2])
  kernel = jnp.concatenate([layer.inputs.kernel[...], layer.labels.embedding[...]])  # [5 + K, 4]
  concatenated = jnp.concatenate([x, jax.nn.one_hot(labels, K)], axis=-1)
  expected = concatenated @ kernel + layer.inputs.bias[...]
  np.testing.assert_allclose(layer(x, labels), expected, rtol=1e-5, atol=1e-6)
  every = layer.every_class(x)  # [6, K, 4]
  np.testing.assert_allclose(every[jnp.arange(6), labels], expected, rtol=1e-5, atol=1e-6)


def bernoulli_log_likelihood(logits, x):  # sum_d x log sigmoid(l) + (1 - x) log sigmoid(-l)
  return jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), -1)


@jax.jit
def explicit_unlabelled_bound(params, images, rng):
  """U(x) one class at a time through the per-label methods, with the same noise
  eps[:, y] that the vectorised path draws for class y; and log q(y|x)."""
  model = nnx.merge(nnx.graphdef(create_model(nnx.Rngs(0))), params)
  x = images.reshape(len(images), -1).astype(jnp.float32)
  log_q = jax.nn.log_softmax(model.classify(x))  # [B, K]
  eps = jax.random.normal(rng, (len(x), K, Z))
  total = jnp.zeros(len(x))
  for y in range(K):
    labels = jnp.full((len(x),), y)
    mean, log_variance = model.encode(x, labels)
    z = mean + jnp.exp(0.5 * log_variance) * eps[:, y]
    kl = 0.5 * jnp.sum(jnp.exp(log_variance) + mean ** 2 - 1 - log_variance, -1)
    bound = bernoulli_log_likelihood(model.decode(z, labels), x) - math.log(K) - kl  # L(x, y)
    total += jnp.exp(log_q[:, y]) * (bound - log_q[:, y])
  return total, log_q


def test_unlabelled_bound_equals_the_explicit_sum_over_classes():
  create_params, apply_fn = module_functions(create_model)
  params = jax.jit(create_params)(jax.random.key(0))
  images = jax.random.bernoulli(jax.random.key(1), 0.4, (5, 3, 4, 1)).astype(jnp.uint8)
  rng = jax.random.key(2)
  bounds_fn = functools.partial(task_module.every_class_bounds, apply_fn=apply_fn, num_classes=K)
  batch = {"image": images, "label": jnp.array([0, 1, 2, 0, 1]), "mask": jnp.ones(5)}
  eval_step = jax.jit(functools.partial(task_module.semi_supervised_vae_eval_step,
                                        bounds_fn=bounds_fn))
  metrics = eval_step(TrainState(jnp.zeros((), jnp.int32), params, None), batch, rng)
  total, log_q = explicit_unlabelled_bound(params, images, rng)
  np.testing.assert_allclose(metrics["negative_elbo_nats"], -total.sum(), rtol=1e-5)
  np.testing.assert_allclose(metrics["bits_per_dim"], -total.sum() / (D * math.log(2)), rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"],
                             jnp.sum(jnp.argmax(log_q, -1) == batch["label"]), rtol=0)


@pytest.mark.parametrize("overrides,message", [
    ({"data.name": "fashion_mnist"}, "trains on data.name=semi_supervised"),
    ({"data.binarization": "none"}, "Bernoulli decoder"),
    ({"model.hidden": 0}, "model.hidden=0"),
    ({"model.alpha": -1.0}, "model.alpha"),
])
def test_bad_configs_are_user_errors(overrides, message):
  config = load_config("semi_supervised_vae.py", "smoke")
  with config.unlocked():
    for key, value in overrides.items():
      section, name = key.split(".")
      config[section][name] = value
  with pytest.raises(UserError, match=message):
    tasks.create_task(config, train.dataset_spec(config.data))

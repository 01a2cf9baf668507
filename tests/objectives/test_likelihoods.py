"""Categorical likelihood and bits/dim: closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.objectives import likelihoods


def test_uniform_model_scores_exactly_8_bits_per_dim():
  images = jax.random.randint(jax.random.key(0), (3, 28, 28, 1), 0, 256).astype(jnp.uint8)
  logits = jnp.full((3, 28, 28, 1, 256), 0.37)  # any constant: uniform over 256 levels
  nll = likelihoods.categorical_nll(logits, images)
  np.testing.assert_allclose(likelihoods.bits_per_dim(nll, 28 * 28), 8.0, rtol=1e-6)


def test_bits_per_dim_is_nats_over_dims_ln2():
  nll = jnp.array([1000.0, 2000.0])
  np.testing.assert_allclose(likelihoods.bits_per_dim(nll, 784),
                             np.array([1000.0, 2000.0]) / (784 * math.log(2)), rtol=1e-6)


def test_categorical_nll_matches_direct_computation():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 3, 4, 3, 5)).astype(np.float32)
  targets = rng.integers(0, 5, size=(2, 3, 4, 3))
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  expected = np.zeros(2)
  for b in range(2):
    for index in np.ndindex(3, 4, 3):
      expected[b] -= np.log(probs[(b, *index, targets[(b, *index)])])
  np.testing.assert_allclose(likelihoods.categorical_nll(jnp.asarray(logits), jnp.asarray(targets)),
                             expected, rtol=1e-5)


def test_categorical_nll_gradient_is_softmax_minus_onehot():
  logits = jax.random.normal(jax.random.key(3), (1, 2, 2, 1, 4))
  targets = jnp.array([[[[1], [3]], [[0], [2]]]])
  grad = jax.grad(lambda l: likelihoods.categorical_nll(l, targets).sum())(logits)
  expected = jax.nn.softmax(logits) - jax.nn.one_hot(targets, 4)
  np.testing.assert_allclose(grad, expected, atol=1e-6)

"""M2 bounds: U(x) against its closed form, and which rows the loss takes from where."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.objectives import semi_supervised

K = 4


def random_bounds_and_posterior(seed=0, batch=5):
  bounds_key, logits_key = jax.random.split(jax.random.key(seed))
  bounds = -100.0 + 10.0 * jax.random.normal(bounds_key, (batch, K))  # L(x, y), nats
  class_log_probs = jax.nn.log_softmax(3.0 * jax.random.normal(logits_key, (batch, K)))
  return bounds, class_log_probs


def test_unlabelled_bound_is_logsumexp_minus_the_posterior_kl():
  bounds, class_log_probs = random_bounds_and_posterior()
  u = semi_supervised.unlabelled_bound(class_log_probs, bounds)
  # U = logsumexp_y L - KL(q || softmax L), so U <= logsumexp L, with equality at q = softmax L.
  posterior = jax.nn.log_softmax(bounds)
  kl = jnp.sum(jnp.exp(class_log_probs) * (class_log_probs - posterior), axis=-1)
  np.testing.assert_allclose(u, jax.nn.logsumexp(bounds, axis=-1) - kl, rtol=1e-6)
  assert jnp.all(u < jax.nn.logsumexp(bounds, axis=-1))
  np.testing.assert_allclose(semi_supervised.unlabelled_bound(posterior, bounds),
                             jax.nn.logsumexp(bounds, axis=-1), rtol=1e-6)
  # A one-hot q(y|x) gives back that class's labelled bound.
  one_hot = jnp.log(jax.nn.one_hot(jnp.array([2, 0, 1, 3, 2]), K) + 1e-30)
  np.testing.assert_allclose(semi_supervised.unlabelled_bound(one_hot, bounds),
                             bounds[jnp.arange(5), jnp.array([2, 0, 1, 3, 2])], rtol=1e-5)


def test_labelled_bound_adds_the_uniform_class_prior():
  np.testing.assert_allclose(semi_supervised.labelled_bound(jnp.array([-50.0]), jnp.array([3.0]), 10),
                             [-53.0 - np.log(10.0)], rtol=1e-6)


def test_loss_takes_labelled_and_unlabelled_terms_from_their_rows():
  bounds, class_log_probs = random_bounds_and_posterior(batch=4)
  labels = jnp.array([1, -1, 3, -1])
  weight = jnp.array([0.5, 0.0, 0.25, 0.0])  # 1 / copies where labelled
  alpha, num_labelled = 14.0, 2
  loss = semi_supervised.semi_supervised_loss(bounds, class_log_probs, labels, weight, alpha,
                                              num_labelled)
  u = semi_supervised.unlabelled_bound(class_log_probs, bounds)
  expected = [-0.5 * (bounds[0, 1] + 7.0 * class_log_probs[0, 1]), -u[1],
              -0.25 * (bounds[2, 3] + 7.0 * class_log_probs[2, 3]), -u[3]]
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  # A hidden label's value is never read.
  other = semi_supervised.semi_supervised_loss(bounds, class_log_probs, jnp.array([1, 2, 3, 0]),
                                               weight, alpha, num_labelled)
  np.testing.assert_array_equal(loss, other)
  # Gradients: a labelled row reaches only its own class's bound.
  grad = jax.grad(lambda b: semi_supervised.semi_supervised_loss(
      b, class_log_probs, labels, weight, alpha, num_labelled).sum())(bounds)
  np.testing.assert_array_equal(grad[0], -0.5 * jax.nn.one_hot(1, K))
  np.testing.assert_allclose(grad[1], -jnp.exp(class_log_probs[1]), rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 60.0])
def test_alpha_scales_only_the_labelled_cross_entropy(alpha):
  bounds, class_log_probs = random_bounds_and_posterior(batch=2)
  labels, weight = jnp.array([2, 0]), jnp.array([1.0, 0.0])
  base = semi_supervised.semi_supervised_loss(bounds, class_log_probs, labels, weight, 0.0, 3)
  loss = semi_supervised.semi_supervised_loss(bounds, class_log_probs, labels, weight, alpha, 3)
  np.testing.assert_allclose(loss - base, [-alpha / 3 * class_log_probs[0, 2], 0.0], atol=1e-4)

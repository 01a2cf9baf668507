"""GAN and VAE-GAN losses: closed forms on toy logits and features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gen_jax.objectives import adversarial

REAL = np.array([2.0, -0.5, 0.0, 7.0], np.float32)
FAKE = np.array([-3.0, 0.25, 1.5], np.float32)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_minimax_and_non_saturating_discriminator_loss_is_binary_cross_entropy():
  expected = -np.mean(np.log(sigmoid(REAL))) - np.mean(np.log(1.0 - sigmoid(FAKE)))
  for kind in ("minimax", "non_saturating"):
    np.testing.assert_allclose(adversarial.discriminator_loss(REAL, FAKE, kind), expected,
                               rtol=1e-5)
  # At D = 1/2 everywhere the loss is 2 ln 2 (the minimax equilibrium value).
  np.testing.assert_allclose(adversarial.discriminator_loss(np.zeros(3), np.zeros(5), "minimax"),
                             2 * np.log(2), rtol=1e-6)


def test_hinge_discriminator_loss():
  expected = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
  np.testing.assert_allclose(adversarial.discriminator_loss(REAL, FAKE, "hinge"), expected,
                             rtol=1e-6)
  # Correct with margin 1 on both sides: zero loss.
  assert adversarial.discriminator_loss(np.array([1.0, 3.0]), np.array([-1.0, -2.0]),
                                        "hinge") == 0.0


@pytest.mark.parametrize("kind,expected", [
    ("minimax", lambda f: np.mean(np.log(1.0 - sigmoid(f)))),
    ("non_saturating", lambda f: -np.mean(np.log(sigmoid(f)))),
    ("hinge", lambda f: -np.mean(f)),
])
def test_generator_losses(kind, expected):
  np.testing.assert_allclose(adversarial.generator_loss(FAKE, kind), expected(FAKE), rtol=1e-5)


def test_non_saturating_gradient_does_not_vanish_where_minimax_does():
  """Goodfellow et al. 2014's motivation: a confident D (l_f << 0) stalls the minimax G."""
  confident = jnp.array([-12.0])
  minimax = jax.grad(lambda l: adversarial.generator_loss(l, "minimax"))(confident)
  non_saturating = jax.grad(lambda l: adversarial.generator_loss(l, "non_saturating"))(confident)
  # d/dl log(1 - sigmoid(l)) = -sigmoid(l); d/dl -log sigmoid(l) = sigmoid(l) - 1.
  np.testing.assert_allclose(minimax, -sigmoid(-12.0), rtol=1e-4)
  np.testing.assert_allclose(non_saturating, sigmoid(-12.0) - 1.0, rtol=1e-6)
  assert abs(float(non_saturating[0])) > 1e4 * abs(float(minimax[0]))


def test_unknown_loss_is_an_error():
  with pytest.raises(ValueError, match="unknown GAN loss 'wasserstein'"):
    adversarial.generator_loss(FAKE, "wasserstein")


def test_r1_penalty_closed_forms():
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.normal(size=(3, 4, 4, 2)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(4, 4, 2)), jnp.float32)
  # Linear discriminator l(x) = <w, x> + b: grad = w for every example.
  linear = lambda x: jnp.sum(x * weights, axis=(1, 2, 3)) + 0.3  # noqa: E731
  np.testing.assert_allclose(adversarial.r1_penalty(linear, images),
                             0.5 * np.sum(np.square(weights)), rtol=1e-5)
  # Quadratic l(x) = 1/2 ||x||^2: grad = x, R1 = 1/2 mean_b ||x_b||^2.
  quadratic = lambda x: 0.5 * jnp.sum(x ** 2, axis=(1, 2, 3))  # noqa: E731
  np.testing.assert_allclose(adversarial.r1_penalty(quadratic, images),
                             0.5 * np.mean(np.sum(np.square(images), axis=(1, 2, 3))), rtol=1e-5)


def test_feature_reconstruction_error_is_a_unit_gaussian_nll_without_its_constant():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(2, 3, 3, 4))
  reconstructed = rng.normal(size=(2, 3, 3, 4))
  num_dims = 3 * 3 * 4
  nll = -stats.norm.logpdf(real, loc=reconstructed).reshape(2, -1).sum(-1)
  np.testing.assert_allclose(adversarial.feature_reconstruction_error(real, reconstructed),
                             nll - 0.5 * num_dims * np.log(2 * np.pi), rtol=1e-5)

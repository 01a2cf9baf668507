"""beta-VAE and capacity objectives: the schedule's closed form and the KL pressure's sign."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.objectives import beta_vae


def test_capacity_grows_linearly_then_stays():
  steps = jnp.array([0, 250, 500, 1000, 5000])
  np.testing.assert_allclose(beta_vae.capacity_schedule(steps, 25.0, 1000),
                             [0.0, 6.25, 12.5, 25.0, 25.0])
  assert float(beta_vae.capacity_schedule(jnp.array(7), 25.0, 0)) == 25.0


def test_capacity_loss_pulls_the_kl_towards_the_capacity():
  nll, kl = jnp.array([100.0, 100.0]), jnp.array([3.0, 12.0])
  loss = beta_vae.capacity_loss(nll, kl, 10.0, jnp.asarray(8.0))
  np.testing.assert_allclose(loss, [150.0, 140.0])
  # d loss / d KL = -gamma below the capacity (more information is rewarded), +gamma above.
  grad = jax.grad(lambda k: beta_vae.capacity_loss(nll, k, 10.0, jnp.asarray(8.0)).sum())(kl)
  np.testing.assert_allclose(grad, [-10.0, 10.0])


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_zero_capacity_is_the_beta_vae_loss(beta):
  nll = jnp.array([80.0, 95.0, 120.0])
  kl = jnp.array([0.0, 5.0, 30.0])  # a KL is never negative
  np.testing.assert_allclose(beta_vae.capacity_loss(nll, kl, beta, jnp.asarray(0.0)),
                             beta_vae.beta_vae_loss(nll, kl, beta))
  np.testing.assert_allclose(beta_vae.beta_vae_loss(nll, kl, 1.0), nll + kl)  # the negative ELBO

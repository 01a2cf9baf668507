"""The beta-VAE objective (Higgins et al. 2017) and its capacity-annealed form (Burgess et al. 2018).

Per example, in nats, with one z ~ q(z|x) and the analytic KL to N(0, I):

  beta-VAE      -log p(x|z) + beta KL(q(z|x) || p(z))
  capacity      -log p(x|z) + gamma |KL(q(z|x) || p(z)) - C(t)|,
                C(t) = C_max min(1, t / T) nats, growing linearly over T steps

beta > 1 presses every latent towards the prior, favouring factorised codes;
the capacity form instead lets the KL (the information the code carries) grow
to a target C at a pressure gamma, so latents switch on one by one.
"""

import jax
import jax.numpy as jnp

from gen_jax.objectives import elbo


def capacity_schedule(step: jax.Array, capacity_max: float, capacity_steps: int) -> jax.Array:
  """C(t) = C_max min(1, t / T) nats (C_max at once when T = 0)."""
  if capacity_steps <= 0:
    return jnp.asarray(capacity_max, jnp.float32)
  fraction = jnp.minimum(jnp.asarray(step, jnp.float32) / capacity_steps, 1.0)
  return capacity_max * fraction


def beta_vae_loss(negative_log_likelihood: jax.Array, kl: jax.Array, beta: float) -> jax.Array:
  """-ELBO_beta = -log p(x|z) + beta KL per example [B], nats (objectives/elbo.py)."""
  return -elbo.elbo(-negative_log_likelihood, kl, beta)


def capacity_loss(negative_log_likelihood: jax.Array, kl: jax.Array, gamma: float,
                  capacity: jax.Array) -> jax.Array:
  """-log p(x|z) + gamma |KL - C| per example [B], nats (C a scalar, the target KL)."""
  return negative_log_likelihood + gamma * jnp.abs(kl - capacity)

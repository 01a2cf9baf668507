"""Likelihoods of discrete data and their conversion to bits per dimension.

All functions are pure and per example: they take a batch and return one
value per example, so a trainer can reduce them exactly over a whole split.
"""

import math

import jax
import jax.numpy as jnp


def categorical_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Negative log-likelihood of integer data under per-dimension categoricals.

  -log p(x) = -sum_d log softmax(logits_d)[x_d], summed over every dimension
  of an example (pixels and channels), in nats.

  Args:
    logits: [B, ..., L] unnormalised log-probabilities over L levels.
    targets: [B, ...] integers in [0, L) (uint8 images work as they are).

  Returns:
    [B] nats per example.
  """
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [B, ..., L]
  picked = jnp.take_along_axis(
      log_probs, targets.astype(jnp.int32)[..., None], axis=-1)[..., 0]  # [B, ...]
  return -jnp.sum(picked.reshape(picked.shape[0], -1), axis=-1)


def bits_per_dim(nll_nats: jax.Array, num_dims: int) -> jax.Array:
  """bits/dim = nll / (D ln 2), D the number of dimensions of one example."""
  return nll_nats / (num_dims * math.log(2.0))

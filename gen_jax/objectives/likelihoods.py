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
  logits = logits.astype(jnp.float32)
  # -log softmax(l)[x] = logsumexp(l) - l[x]: the [B, ..., L] log-probs are never
  # materialised, and l[x] is a gather (not a one-hot select over all L levels).
  picked = jnp.take_along_axis(
      logits, targets.astype(jnp.int32)[..., None], axis=-1)[..., 0]  # [B, ...]
  nll = jax.nn.logsumexp(logits, axis=-1) - picked  # [B, ...]
  return jnp.sum(nll.reshape(nll.shape[0], -1), axis=-1)


def bits_per_dim(nll_nats: jax.Array, num_dims: int) -> jax.Array:
  """bits/dim = nll / (D ln 2), D the number of dimensions of one example."""
  return nll_nats / (num_dims * math.log(2.0))

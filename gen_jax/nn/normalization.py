"""Batch normalisation from the current batch's statistics (no running averages).

  y = scale * (x - mean_batch) / sqrt(var_batch + eps) + bias,

with the mean and variance over every axis but the last (examples and
positions). GANs run their networks on batches at sampling time too (as the
DCGAN reference code does), so no running statistics are kept: the module holds
parameters only and stays a pure function of (params, batch). Under a
data-parallel mesh the statistics are over the global batch.
"""

import jax
import jax.numpy as jnp
from flax import nnx


class BatchNorm(nnx.Module):
  """[B, ..., F] -> [B, ..., F], normalised over all axes but the features."""

  def __init__(self, num_features: int, *, epsilon: float = 1e-5, rngs: nnx.Rngs):
    del rngs  # deterministic init: scale 1, bias 0
    self.scale = nnx.Param(jnp.ones((num_features,)))
    self.bias = nnx.Param(jnp.zeros((num_features,)))
    self.epsilon = epsilon

  def __call__(self, x: jax.Array) -> jax.Array:
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)  # [F]
    variance = jnp.mean(jnp.square(x - mean), axis=axes)  # [F]
    return (x - mean) * jax.lax.rsqrt(variance + self.epsilon) * self.scale[...] + self.bias[...]

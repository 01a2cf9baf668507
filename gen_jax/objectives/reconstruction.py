"""Reconstruction losses and quality: squared error and PSNR, per example."""

import jax
import jax.numpy as jnp


def mean_squared_error(reference: jax.Array, estimate: jax.Array) -> jax.Array:
  """MSE = 1/D sum_d (x_d - x'_d)^2 per example: [B, ...] x2 -> [B]."""
  squared = jnp.square(reference.astype(jnp.float32) - estimate.astype(jnp.float32))
  return jnp.mean(squared.reshape(squared.shape[0], -1), axis=-1)


def psnr(reference: jax.Array, estimate: jax.Array, max_value: float = 255.0,
         max_db: float = 100.0) -> jax.Array:
  """Peak signal-to-noise ratio per example, in dB: min(10 log10(max_value^2 / MSE), max_db).

  The cap only touches (near-)exact copies (any error on an 8-bit image is below
  78 dB), so that a mean over images stays finite.

  Args:
    reference: [B, ...] the clean images (uint8 levels, or floats on the same scale).
    estimate: [B, ...] the reconstruction on the same scale.
    max_value: the largest possible value (255 for 8-bit images).
    max_db: the value of an exact copy.

  Returns:
    [B] dB.
  """
  ratio = max_value ** 2 / mean_squared_error(reference, estimate)
  return jnp.minimum(10.0 * jnp.log10(ratio), max_db)

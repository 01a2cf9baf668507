"""A Gaussian discretized to the L levels of 8-bit (or binary) data.

Level x in {0, .., L-1} sits at c(x) = 2x / (L - 1) - 1 in [-1, 1], with a bin
of half-width h = 1 / (L - 1). The probability of x under N(mu, sigma^2) is the
Gaussian mass of its bin, the end bins reaching to -inf and +inf:

  P(x) = Phi((c + h - mu) / sigma) - Phi((c - h - mu) / sigma)

so the probabilities of the L levels sum to exactly 1 and -log2 P counts bits
of the discrete data: a likelihood, not a density. An autoencoder whose
decoder gives mu (and a learned sigma) has a proper p(x | z) this way.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

# log sigma is clipped here: smaller scales put all mass in one bin anyway.
MIN_LOG_SCALE = -9.0


def log_bin_mass(lower: jax.Array, upper: jax.Array) -> jax.Array:
  """log(Phi(upper) - Phi(lower)) for lower < upper, stable in both tails.

  Bins right of the mean are mirrored (Phi(u) - Phi(l) = Phi(-l) - Phi(-u)) so
  the subtraction happens in the lower tail, where log_ndtr is accurate; a bin
  much narrower than the local scale uses its midpoint density times its width.
  """
  flip = lower + upper > 0
  a = jnp.where(flip, -upper, lower)
  b = jnp.where(flip, -lower, upper)
  log_b, log_a = log_ndtr(b), log_ndtr(a)
  gap = log_b - log_a  # >= 0
  exact = log_b + jnp.log(-jnp.expm1(-jnp.maximum(gap, 1e-30)))
  middle = 0.5 * (a + b)
  narrow = -0.5 * middle**2 - 0.5 * jnp.log(2 * jnp.pi) + jnp.log(b - a)
  return jnp.where(gap > 1e-3, exact, narrow)


def discretized_gaussian_log_prob(x: jax.Array, mean: jax.Array, log_scale: jax.Array,
                                  num_levels: int) -> jax.Array:
  """log P(x) per element; x integers [...], mean and log_scale broadcastable to x."""
  half_width = 1.0 / (num_levels - 1)
  centre = x.astype(jnp.float32) * (2.0 * half_width) - 1.0
  inverse_scale = jnp.exp(-jnp.maximum(log_scale, MIN_LOG_SCALE))
  upper = (centre + half_width - mean) * inverse_scale
  lower = (centre - half_width - mean) * inverse_scale
  first, last = x == 0, x == num_levels - 1
  interior = log_bin_mass(jnp.where(first | last, -1.0, lower), jnp.where(first | last, 1.0, upper))
  return jnp.where(first, log_ndtr(upper), jnp.where(last, log_ndtr(-lower), interior))


def discretized_gaussian_nll(images: jax.Array, mean: jax.Array, log_scale: jax.Array,
                             num_levels: int) -> jax.Array:
  """-log p(x) in nats per example, summed over pixels and channels.

  Args:
    images: [B, H, W, C] integers in [0, num_levels).
    mean: [B, H, W, C] in the [-1, 1] scale of the levels.
    log_scale: log sigma, broadcastable to images (e.g. one per channel, [C]).

  Returns:
    [B] nats.
  """
  log_prob = discretized_gaussian_log_prob(images, mean, log_scale, num_levels)
  return -jnp.sum(log_prob.reshape(log_prob.shape[0], -1), axis=-1)


def levels_to_unit(images: jax.Array, num_levels: int) -> jax.Array:
  """Integers {0, .., L-1} -> their bin centres in [-1, 1] (float32)."""
  return images.astype(jnp.float32) * (2.0 / (num_levels - 1)) - 1.0


def unit_to_levels(values: jax.Array, num_levels: int) -> jax.Array:
  """[-1, 1] values -> the nearest level (the mode of a discretized Gaussian at that mean)."""
  levels = jnp.round((values + 1.0) * (0.5 * (num_levels - 1)))
  return jnp.clip(levels, 0, num_levels - 1)

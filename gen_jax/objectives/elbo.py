"""Latent-variable objectives: diagonal Gaussians, the decoder likelihoods, the ELBO
and the IWAE bound.

Conventions. A diagonal Gaussian is (mean, log_variance), both [..., D];
densities and KLs sum over the last axis (the latent dimensions) and return
[...]. Likelihood terms log p(x|z) are per example, [B] in nats. The prior p(z)
is N(0, I).

  ELBO_beta(x) = E_q(z|x)[log p(x|z)] - beta KL(q(z|x) || p(z))        (beta = 1: <= log p(x))
  IWAE_k(x)    = E[log 1/k sum_i w_i],  w_i = p(x, z_i) / q(z_i|x),  z_i ~ q(z|x)

with IWAE_1 = ELBO_1 <= IWAE_k <= IWAE_{k+1} <= log p(x) (Burda et al. 2016).

The decoder p(x|z), named by config.model.likelihood, gives O numbers per
sub-pixel, outputs [B, H, W, C, O] (`decoder_nll`, from objectives/likelihoods.py):

  bernoulli      O = 1: a logit, on binarized data (2 levels)
  categorical    O = L: logits of an L-way softmax (256 on 8-bit data)
  gaussian       O = 2: (mean, log-scale) of y = (x + u) / L, u ~ U[0, 1) (uniform
                 dequantization): -log P(x) <= E_u[-log p(y)] + D log L, so bits/dim
                 counts the L-level data (likelihoods.dequantized_gaussian_nll)
  squared_error  O = 1: a logit whose sigmoid is the reconstruction (the plain
                 autoencoder's, no likelihood)

and E[x|z] / (L - 1), the mean intensity in [0, 1] (`decoder_mean`), is what the
applications decode (reconstructions, interpolations, traversals).
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.objectives import likelihoods

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(z: jax.Array, mean: jax.Array, log_variance: jax.Array) -> jax.Array:
  """log N(z; m, diag(v)) = -1/2 sum_d [log 2 pi + log v_d + (z_d - m_d)^2 / v_d].

  Args:
    z, mean, log_variance: [..., D] (broadcastable).

  Returns:
    [...] the log-density summed over the last axis.
  """
  squared = jnp.square(z - mean) * jnp.exp(-log_variance)  # [..., D]
  return -0.5 * jnp.sum(LOG_2PI + log_variance + squared, axis=-1)


def standard_normal_log_density(z: jax.Array) -> jax.Array:
  """log N(z; 0, I) = -1/2 sum_d [log 2 pi + z_d^2], over the last axis."""
  return -0.5 * jnp.sum(LOG_2PI + jnp.square(z), axis=-1)


def gaussian_kl(mean_q: jax.Array, log_variance_q: jax.Array, mean_p: jax.Array,
                log_variance_p: jax.Array) -> jax.Array:
  """KL(N(m_q, v_q) || N(m_p, v_p)) for diagonal Gaussians, summed over the last axis.

    KL = 1/2 sum_d [log v_p - log v_q + (v_q + (m_q - m_p)^2) / v_p - 1]

  Returns:
    [...] nats.
  """
  ratio = jnp.exp(log_variance_q - log_variance_p)  # v_q / v_p, [..., D]
  squared = jnp.square(mean_q - mean_p) * jnp.exp(-log_variance_p)
  return 0.5 * jnp.sum(ratio + squared - 1.0 - (log_variance_q - log_variance_p), axis=-1)


def gaussian_kl_to_standard_normal(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
  """KL(N(m, v) || N(0, I)) = 1/2 sum_d [v_d + m_d^2 - 1 - log v_d], over the last axis."""
  return 0.5 * jnp.sum(jnp.exp(log_variance) + jnp.square(mean) - 1.0 - log_variance, axis=-1)


def reparameterized_sample(rng: jax.Array, mean: jax.Array, log_variance: jax.Array) -> jax.Array:
  """z = m + exp(log v / 2) * eps, eps ~ N(0, I): a draw of N(m, v) differentiable in (m, v).

  Args:
    rng: a PRNG key.
    mean, log_variance: [..., D].

  Returns:
    [..., D].
  """
  noise = jax.random.normal(rng, mean.shape, mean.dtype)
  return mean + jnp.exp(0.5 * log_variance) * noise


# ----------------------------------------------------------------------------- decoders p(x|z)

LIKELIHOODS = ("bernoulli", "categorical", "gaussian")


def outputs_per_subpixel(likelihood: str, num_levels: int) -> int:
  """O, the decoder numbers per sub-pixel: a logit, L logits, or (mean, log_scale)."""
  return {"bernoulli": 1, "categorical": num_levels, "gaussian": 2, "squared_error": 1}[likelihood]


def decoder_nll(likelihood: str, outputs: jax.Array, images: jax.Array, rng: jax.Array,
                num_levels: int) -> jax.Array:
  """-log p(x|z) per example [B] in nats, from decoder outputs [B, H, W, C, O].

  For `gaussian` this is a one-draw estimate of an upper bound on the L-level NLL
  (the dequantization noise u is drawn from `rng`); the others are exact.
  """
  if likelihood == "bernoulli":
    return likelihoods.bernoulli_nll(outputs[..., 0], images)
  if likelihood == "categorical":
    return likelihoods.categorical_nll(outputs, images)
  if likelihood == "gaussian":
    return likelihoods.dequantized_gaussian_nll(rng, images, outputs[..., 0], outputs[..., 1],
                                                num_levels)
  raise ValueError(f"unknown likelihood {likelihood!r}")


def decoder_mean(likelihood: str, outputs: jax.Array, num_levels: int) -> jax.Array:
  """E[x|z] / (L - 1): mean intensities [B, H, W, C] in [0, 1] from outputs [B, H, W, C, O].

    bernoulli, squared_error   sigmoid(logit)
    categorical                sum_l l softmax(logits)_l / (L - 1)
    gaussian                   y = (x + u) / L  =>  E[x] = L E[y] - 1/2, clipped to [0, L - 1]
  """
  if likelihood in ("bernoulli", "squared_error"):
    return jax.nn.sigmoid(outputs[..., 0])
  if likelihood == "categorical":
    levels = jnp.arange(num_levels, dtype=jnp.float32)
    return jax.nn.softmax(outputs, axis=-1) @ levels / (num_levels - 1)
  if likelihood == "gaussian":
    return jnp.clip((outputs[..., 0] * num_levels - 0.5) / (num_levels - 1), 0.0, 1.0)
  raise ValueError(f"unknown likelihood {likelihood!r}")


# ----------------------------------------------------------------------------- bounds

def elbo(log_likelihood: jax.Array, kl: jax.Array, beta: float = 1.0) -> jax.Array:
  """ELBO_beta = log p(x|z) - beta KL(q(z|x) || p(z)) per example (z ~ q(z|x)).

  With beta = 1 its expectation over z bounds log p(x) from below, with equality
  when q(z|x) is the exact posterior; beta > 1 is the beta-VAE objective.

  Args:
    log_likelihood: [B] log p(x|z) in nats, for one z ~ q(z|x) (or its expectation).
    kl: [B] KL(q(z|x) || p(z)) in nats (analytic, gaussian_kl_to_standard_normal).
    beta: the weight of the KL term.

  Returns:
    [B] nats.
  """
  return log_likelihood - beta * kl


def log_importance_weights(log_likelihood: jax.Array, z: jax.Array, mean: jax.Array,
                           log_variance: jax.Array) -> jax.Array:
  """log w = log p(x|z) + log N(z; 0, I) - log q(z|x), q(z|x) = N(mean, diag(v)).

  Args:
    log_likelihood: [...] log p(x|z) in nats.
    z: [..., D] the latents the likelihood was computed at.
    mean, log_variance: [..., D] (broadcastable against z) the posterior q(z|x).

  Returns:
    [...] nats.
  """
  return (log_likelihood + standard_normal_log_density(z)
          - gaussian_log_density(z, mean, log_variance))


def iwae_bound(log_weights: jax.Array, axis: int = 0) -> jax.Array:
  """IWAE_k = log (1/k sum_i w_i) = logsumexp_i(log w_i) - log k, over `axis` (the k samples)."""
  num_samples = log_weights.shape[axis]
  return jax.nn.logsumexp(log_weights, axis=axis) - math.log(num_samples)


def chunked_iwae_bound(log_weights_fn: Callable[[jax.Array], jax.Array], rng: jax.Array,
                       num_samples: int, chunk_size: int) -> jax.Array:
  """`iwae_bound` of `num_samples` importance weights, drawn `chunk_size` at a time.

  Sample i always uses key i of jax.random.split(rng, num_samples), so the bound
  does not depend on chunk_size; only the memory does (one chunk of decoder
  activations is alive at a time, so k = 5000 fits).

  Args:
    log_weights_fn: keys [c] -> [c, ...] log importance weights, one row per key.
    rng: a PRNG key.
    num_samples: k.
    chunk_size: samples per chunk (capped at k); k need not be a multiple of it.

  Returns:
    [...] nats.
  """
  chunk_size = max(1, min(chunk_size, num_samples))
  num_chunks = -(-num_samples // chunk_size)
  keys = jax.random.split(rng, num_samples)
  padding = num_chunks * chunk_size - num_samples  # < chunk_size <= num_samples
  keys = jnp.concatenate([keys, keys[:padding]])  # the padded weights are dropped below
  chunks = keys.reshape(num_chunks, chunk_size, *keys.shape[1:])
  log_weights = jax.lax.map(log_weights_fn, chunks)  # [num_chunks, chunk_size, ...]
  log_weights = log_weights.reshape(num_chunks * chunk_size, *log_weights.shape[2:])
  return iwae_bound(log_weights[:num_samples], axis=0)

"""Likelihoods of discrete data (and of dequantized data under a density), bits/dim,
and `to_uint8`, the one conversion of model values to 8-bit pixels.

All likelihoods are pure and per example: they take a batch and return one
value per example, so a trainer can reduce them exactly over a whole split.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax


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


def bernoulli_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Negative log-likelihood of binary data under per-dimension Bernoullis.

  -log p(x) = sum_d [softplus(l_d) - x_d l_d], p(x_d = 1) = sigmoid(l_d), in nats.

  Args:
    logits: [B, ...] log-odds of a 1.
    targets: [B, ...] in {0, 1} (binarized uint8 images work as they are).

  Returns:
    [B] nats per example.
  """
  nll = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32),
                                           targets.astype(jnp.float32))  # [B, ...]
  return jnp.sum(nll.reshape(nll.shape[0], -1), axis=-1)


def gaussian_nll(targets: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
  """Negative log-density of continuous data under per-dimension Gaussians N(mean, scale^2).

  -log p(y) = sum_d [1/2 log 2 pi + log s_d + (y_d - m_d)^2 / (2 s_d^2)], in nats.

  Returns:
    [B] nats per example.
  """
  standardized = (targets - mean) * jnp.exp(-log_scale)  # [B, ...]
  nll = 0.5 * math.log(2.0 * math.pi) + log_scale + 0.5 * jnp.square(standardized)
  return jnp.sum(nll.reshape(nll.shape[0], -1), axis=-1)


def uniform_dequantize(rng: jax.Array, images: jax.Array, num_levels: int = 256) -> jax.Array:
  """y = (x + u) / L, u ~ U[0, 1)^D: L-level integers -> continuous values in [0, 1).

  Level x owns the bin [x/L, (x+1)/L); a density p on [0, 1)^D defines the discrete
  model P(x) = integral of p over x's bin, and by Jensen
    -log P(x) <= E_u[-log p(y)] + D log L,
  so a density's dequantized NLL plus D log L is an upper bound on the NLL of the
  L-level data itself (Theis et al. 2016): bits/dim counts the 8-bit data.
  """
  noise = jax.random.uniform(rng, images.shape, jnp.float32)
  return (images.astype(jnp.float32) + noise) / num_levels


def dequantized_gaussian_nll(rng: jax.Array, images: jax.Array, mean: jax.Array,
                             log_scale: jax.Array, num_levels: int = 256) -> jax.Array:
  """Upper bound (in expectation over u) on -log P(x) of L-level images under a Gaussian.

  -log P(x) <= E_u[gaussian_nll((x + u) / L; mean, scale)] + D log L, with mean and
  scale on the [0, 1) scale of `uniform_dequantize`. One draw of u per call.

  Args:
    rng: the dequantization noise key.
    images: [B, H, W, C] integers in [0, L).
    mean, log_scale: [B, H, W, C] the Gaussian of each sub-pixel.

  Returns:
    [B] nats per example (a one-sample estimate of the bound).
  """
  targets = uniform_dequantize(rng, images, num_levels)
  num_dims = math.prod(images.shape[1:])
  return gaussian_nll(targets, mean, log_scale) + num_dims * math.log(num_levels)


def to_uint8(values, low: float, high: float):
  """Values on [low, high] -> uint8 0..255, the one conversion to 8-bit pixels.

    uint8 = round(clip((values - low) * 255 / (high - low), 0, 255))

  so low -> 0, high -> 255, halfway values round to even (NumPy's and JAX's
  `round`) and values outside [low, high] clip. Callers: [0, 1] intensities
  (VAE decoder means: low=0, high=1), [-1, 1] generator outputs (low=-1),
  L-level pixels 0..L-1 (binarized data: high=1). A NumPy array (or list) in
  gives a NumPy array out; a jax.Array (traced under jit too) a jax.Array.
  """
  xp = jnp if isinstance(values, jax.Array) else np
  scaled = (xp.asarray(values, xp.float32) - low) * (255.0 / (high - low))
  return xp.round(xp.clip(scaled, 0.0, 255.0)).astype(xp.uint8)

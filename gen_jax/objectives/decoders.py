"""Decoder likelihoods p(x|z) of the VAE family, dispatched by config.model.likelihood.

A decoder gives O numbers per sub-pixel, outputs [B, H, W, C, O]:

  bernoulli      O = 1: a logit, on binarized data (2 levels)
  categorical    O = L: logits of an L-way softmax (256 on 8-bit data)
  gaussian       O = 2: (mean, log-scale) of y = (x + u) / L, u ~ U[0, 1) (uniform
                 dequantization): -log P(x) <= E_u[-log p(y)] + D log L, so bits/dim
                 counts the L-level data (likelihoods.dequantized_gaussian_nll)
  squared_error  O = 1: a logit whose sigmoid is the reconstruction (the plain
                 autoencoder's, no likelihood)

and E[x|z] / (L - 1), the mean intensity in [0, 1], is what the applications
decode (reconstructions, interpolations, traversals).
"""

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.objectives import likelihoods

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

"""Discretized logistic mixture likelihood (Salimans et al. 2017, "PixelCNN++", sec. 2.1-2.2).

A sub-pixel value v in {0, ..., L-1} (L = 256 for 8-bit data) is placed at
x_v = 2 v / (L-1) - 1 in [-1, 1]; its bin is [x_v - 1/(L-1), x_v + 1/(L-1)],
widened to -inf below v = 0 and to +inf above v = L-1. Under a logistic with
mean mu and scale s = exp(log_scale), with sigma the logistic sigmoid:

  P(v) = sigma((x_v + 1/(L-1) - mu) / s) - sigma((x_v - 1/(L-1) - mu) / s)   0 < v < L-1
  P(0) = sigma((x_0 + 1/(L-1) - mu) / s)
  P(L-1) = 1 - sigma((x_{L-1} - 1/(L-1) - mu) / s)

A pixel's C channels share K mixture components, and inside a component the
mean of channel c moves linearly with the (already known) earlier channels of
the same pixel, with coefficients squashed by tanh (for RGB: G on R, B on R
and G; section 2.2):

  p(x_1..x_C) = sum_k pi_k prod_c P(x_c | mu_ck + sum_{c'<c} a_{c,c',k} x_c', s_ck)

K = 1 without coupling is the plain discretized logistic that VAE decoders
use (`discretized_logistic_log_prob` on its own).

Parameter layout (the last axis of a network's output), P of them per pixel:
  [K mixture logits | C*K means | C*K log-scales | C(C-1)/2*K coefficients]
where the coefficients come only when coupled, in the order (1,0), (2,0),
(2,1), ... of (channel, earlier channel); C = 3, K components gives 10 K.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

MIN_LOG_SCALE = -7.0  # as in the paper's code: scales below e^-7 only hurt stability


class MixtureParams(NamedTuple):
  logits: jax.Array  # [..., K] unnormalised log mixture weights
  means: jax.Array  # [..., C, K] before coupling
  log_scales: jax.Array  # [..., C, K]
  coefficients: jax.Array | None  # [..., C(C-1)/2, K] in (-1, 1), or None (uncoupled)


def num_coefficients(num_channels: int) -> int:
  return num_channels * (num_channels - 1) // 2


def num_mixture_params(num_channels: int, num_mixtures: int, coupled: bool = True) -> int:
  """P = K (1 + 2C + C(C-1)/2 when coupled): 10 K for RGB, 3 K for grayscale."""
  per_component = 1 + 2 * num_channels + (num_coefficients(num_channels) if coupled else 0)
  return num_mixtures * per_component


def uniform_mixture_raw(num_channels: int, num_mixtures: int, coupled: bool = True) -> np.ndarray:
  """Raw parameters [P] of a mixture close to uniform over the levels of each channel.

  Equal weights; component k centred on the k-th of K equal slices of [-1, 1]
  with scale a fifth of a slice; no coupling. Each channel's marginal scores
  8.29 / 8.15 / 8.07 / 8.04 bits/dim on uniform 8-bit data for K = 1 / 2 / 5 / 10
  (the uniform distribution: exactly 8), so a network head starting here starts
  near uniform, as a softmax head with zero logits does. With several channels
  the shared components still correlate them (a dark R makes a dark G likely).
  """
  c, k = num_channels, num_mixtures
  centres = (np.arange(k) + 0.5) * 2.0 / k - 1.0  # [K]
  means = np.tile(centres, c)  # [C * K], channel-major like the layout
  log_scales = np.full(c * k, np.log(0.2 * 2.0 / k))
  coefficients = np.zeros(num_coefficients(c) * k if coupled else 0)
  return np.concatenate([np.zeros(k), means, log_scales, coefficients]).astype(np.float32)


def split_mixture_params(raw: jax.Array, num_channels: int, num_mixtures: int,
                         coupled: bool = True) -> MixtureParams:
  """Cuts a network output [..., P] into MixtureParams (see the module docstring).

  log-scales are clipped below at MIN_LOG_SCALE and coefficients pass through tanh.
  """
  c, k = num_channels, num_mixtures
  if raw.shape[-1] != num_mixture_params(c, k, coupled):
    raise ValueError(f"expected {num_mixture_params(c, k, coupled)} mixture parameters "
                     f"for C={c}, K={k} (coupled={coupled}), got {raw.shape[-1]}")
  batch = raw.shape[:-1]
  logits = raw[..., :k]
  means = raw[..., k:k + c * k].reshape(*batch, c, k)
  log_scales = raw[..., k + c * k:k + 2 * c * k].reshape(*batch, c, k)
  coefficients = None
  if coupled and c > 1:
    coefficients = jnp.tanh(raw[..., k + 2 * c * k:].reshape(*batch, num_coefficients(c), k))
  return MixtureParams(logits, means, jnp.maximum(log_scales, MIN_LOG_SCALE), coefficients)


def level_to_unit(values: jax.Array, num_levels: int) -> jax.Array:
  """x_v = 2 v / (L-1) - 1: levels {0..L-1} -> [-1, 1] (floats pass through, for Jacobians)."""
  return values.astype(jnp.float32) * (2.0 / (num_levels - 1)) - 1.0


def discretized_logistic_log_prob(values: jax.Array, means: jax.Array, log_scales: jax.Array,
                                  num_levels: int) -> jax.Array:
  """log P(v) of levels `values` under logistics (mean, log-scale) in [-1, 1] coordinates.

  With m = (x_v - mu) / s and d = 1 / ((L-1) s) (half a bin in scale units), the
  middle bins use the identity

    sigma(m + d) - sigma(m - d) = sinh(d) / (cosh(m) + cosh(d))
    log P(v) = d + log(1 - e^{-2d}) - logsumexp(m, -m, d, -d)

  which is exact in float32 wherever the bin is: far in a tail (where the
  subtraction of two sigmoids underflows to 0) and in a bin much narrower than
  the scale (where it cancels). The paper's code instead switches to the log
  density times the bin width when the difference falls below 1e-5; that
  approximation is the d -> 0 limit of this formula, and in the tail of the
  narrowest logistic (scale e^-7, a bin 4.3 scales wide) it is off by 2.1 nats
  per sub-pixel (measured against float64), where this one is not.

  Args:
    values: [...] levels in [0, L-1] (uint8, int, or float for derivatives).
    means, log_scales: broadcastable with `values`.
    num_levels: L.

  Returns:
    log-probabilities, the broadcast shape of the inputs.
  """
  inverse_scale = jnp.exp(-log_scales)
  centred = inverse_scale * (level_to_unit(values, num_levels) - means)  # m
  log_half_bin = -log_scales - math.log(num_levels - 1)  # log d, exact even where d underflows
  half_bin = jnp.exp(log_half_bin)  # d
  log_cdf_upper = jax.nn.log_sigmoid(centred + half_bin)  # v = 0: log sigma(m + d)
  log_survival_lower = jax.nn.log_sigmoid(-(centred - half_bin))  # v = L-1: log(1 - sigma(m - d))
  terms = jnp.stack(jnp.broadcast_arrays(centred, -centred, half_bin, -half_bin), axis=0)
  log_bin = half_bin + _log_one_minus_exp_minus_2(half_bin, log_half_bin) - jax.nn.logsumexp(
      terms, axis=0)
  values = jnp.broadcast_to(values, log_bin.shape)
  return jnp.where(values <= 0, log_cdf_upper,
                   jnp.where(values >= num_levels - 1, log_survival_lower, log_bin))


def _log_one_minus_exp_minus_2(d: jax.Array, log_d: jax.Array) -> jax.Array:
  """log(1 - e^{-2d}) for d > 0; below 1e-4 as log 2 + log d - d (error < d^2/6),
  so that a d that underflows to 0 (huge scales) still gives finite values and gradients."""
  small = d < 1e-4
  safe_d = jnp.where(small, 1.0, d)  # keeps log(0) out of the unused branch's gradient
  return jnp.where(small, math.log(2.0) + log_d - d, jnp.log(-jnp.expm1(-2.0 * safe_d)))


def coupled_means(params: MixtureParams, x: jax.Array) -> jax.Array:
  """mu_ck + sum_{c'<c} a_{c,c',k} x_c': [..., C, K], given x [..., C] in [-1, 1].

  Channel c's mean uses only channels before c of x, so x may hold anything
  (for instance not-yet-drawn values) at c and after.
  """
  if params.coefficients is None:
    return params.means
  num_channels = params.means.shape[-2]
  shifts, index = [jnp.zeros_like(params.means[..., 0, :])], 0
  for channel in range(1, num_channels):
    shift = 0.0
    for earlier in range(channel):
      shift = shift + params.coefficients[..., index, :] * x[..., earlier, None]
      index += 1
    shifts.append(shift)
  return params.means + jnp.stack(shifts, axis=-2)


def channel_log_probs(params: MixtureParams, values: jax.Array, num_levels: int) -> jax.Array:
  """log P(x_c | x_<c, component k) at the observed values: [..., C, K]; values [..., C]."""
  means = coupled_means(params, level_to_unit(values, num_levels))
  return discretized_logistic_log_prob(values[..., None], means, params.log_scales, num_levels)


def mixture_log_prob(params: MixtureParams, values: jax.Array, num_levels: int) -> jax.Array:
  """log p(x) of whole pixels: logsumexp_k (log pi_k + sum_c log P(x_c | x_<c, k)): [...]."""
  log_weights = jax.nn.log_softmax(params.logits, axis=-1)  # [..., K]
  per_component = log_weights + jnp.sum(channel_log_probs(params, values, num_levels), axis=-2)
  return jax.nn.logsumexp(per_component, axis=-1)


def mixture_nll(raw: jax.Array, images: jax.Array, *, num_mixtures: int, num_levels: int,
                coupled: bool = True) -> jax.Array:
  """-log p(image) in nats per example: images [B, H, W, C], raw [B, H, W, P] -> [B]."""
  params = split_mixture_params(raw, images.shape[-1], num_mixtures, coupled)
  log_prob = mixture_log_prob(params, images, num_levels)  # [B, H, W]
  return -jnp.sum(log_prob.reshape(log_prob.shape[0], -1), axis=-1)


def sub_pixel_log_probs(params: MixtureParams, values: jax.Array, num_levels: int) -> jax.Array:
  """log p(x_c = l | x_<c) for every level l: [..., C, L], given values [..., C].

  By Bayes within the pixel, the earlier channels reweight the components:

    p(x_c | x_<c) = sum_k w_ck P(x_c | x_<c, k),
    w_ck = pi_k prod_{c'<c} P(x_c' | x_<c', k) / sum_j (the same for j)

  so sum_c log p(x_c | x_<c) at the data is `mixture_log_prob` (the chain rule).
  Row c depends only on values[..., :c]: feed the pixel's already-drawn
  channels and anything in the rest.
  """
  observed = channel_log_probs(params, values, num_levels)  # [..., C, K]
  # Exclusive prefix sum over channels: sum_{c'<c} log P(x_c' | ..., k), never touching x_c.
  earlier = jnp.cumsum(observed[..., :-1, :], axis=-2)
  earlier = jnp.concatenate([jnp.zeros_like(observed[..., :1, :]), earlier], axis=-2)
  log_weights = jax.nn.log_softmax(jax.nn.log_softmax(params.logits, axis=-1)[..., None, :]
                                   + earlier, axis=-1)  # [..., C, K] posterior over components
  means = coupled_means(params, level_to_unit(values, num_levels))  # [..., C, K]
  levels = jnp.arange(num_levels)  # [L]
  per_level = discretized_logistic_log_prob(
      levels, means[..., None], params.log_scales[..., None], num_levels)  # [..., C, K, L]
  return jax.nn.logsumexp(log_weights[..., None] + per_level, axis=-2)  # [..., C, L]


def sample_mixture(params: MixtureParams, rng: jax.Array, num_levels: int) -> jax.Array:
  """Draws whole pixels [..., C] (int32 levels) directly from the mixture.

  One component per pixel (k ~ pi), then channel by channel a logistic draw
  mu + s (log u - log(1-u)) around the mean coupled to the earlier channels'
  drawn levels, clipped to [-1, 1] and rounded to the nearest level: exactly
  the discretized distribution above, since each level's bin is the set of
  reals that round to it.
  """
  component_rng, logistic_rng = jax.random.split(rng)
  num_channels = params.means.shape[-2]
  component = jax.random.categorical(component_rng, params.logits, axis=-1)  # [...]
  log_scales = _pick_component(params.log_scales, component)  # [..., C]
  noise = jax.random.logistic(logistic_rng, log_scales.shape)  # log u - log(1-u)
  values = jnp.zeros(log_scales.shape, jnp.int32)
  for channel in range(num_channels):  # channel c's mean needs the drawn levels before it
    means = coupled_means(params, level_to_unit(values, num_levels))  # [..., C, K]
    mean = _pick_component(means, component)[..., channel]
    x = jnp.clip(mean + jnp.exp(log_scales[..., channel]) * noise[..., channel], -1.0, 1.0)
    level = jnp.round((x + 1.0) * (num_levels - 1) / 2.0).astype(jnp.int32)
    values = values.at[..., channel].set(level)
  return values


def _pick_component(per_component: jax.Array, component: jax.Array) -> jax.Array:
  """[..., C, K] at component [...] -> [..., C]."""
  return jnp.take_along_axis(per_component, component[..., None, None], axis=-1)[..., 0]

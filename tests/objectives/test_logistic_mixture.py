"""Discretized logistic mixture: normalisation, by-hand numpy nll, chain rule, tails, sampling."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.objectives import likelihoods
from gen_jax.objectives import logistic_mixture as lm


def random_raw(seed, shape, num_channels, num_mixtures, coupled=True):
  """Network-like raw parameters [*shape, P] (float32): log-scales in [-4, 0]."""
  rng = np.random.default_rng(seed)
  raw = rng.normal(size=(*shape, lm.num_mixture_params(num_channels, num_mixtures, coupled)))
  k, c = num_mixtures, num_channels
  raw[..., k + c * k:k + 2 * c * k] = rng.uniform(-4.0, 0.0, (*shape, c * k))
  return raw.astype(np.float32)


def random_images(seed, shape):
  return np.random.default_rng(seed).integers(0, 256, shape)


def sigmoid64(x):
  return np.exp(-np.logaddexp(0.0, -x))  # float64, accurate in both tails


def log_bin_probability64(v, mean, log_scale, num_levels):
  """log P(v) in float64 from logistic CDF differences, taken on the side of the
  logistic where both CDF values are small (no cancellation)."""
  scale = np.exp(log_scale)
  x = 2.0 * v / (num_levels - 1) - 1.0
  upper = np.inf if v == num_levels - 1 else (x + 1.0 / (num_levels - 1) - mean) / scale
  lower = -np.inf if v == 0 else (x - 1.0 / (num_levels - 1) - mean) / scale
  with np.errstate(divide="ignore"):  # log 0: float64 underflows too, far enough out
    if upper + lower <= 0:  # lower tail: F(upper) - F(lower)
      return np.log(sigmoid64(upper) - sigmoid64(lower))
    return np.log(sigmoid64(-lower) - sigmoid64(-upper))  # upper tail: S(lower) - S(upper)


@pytest.mark.parametrize("num_channels,coupled", [(1, False), (3, True), (3, False)])
def test_sub_pixel_probabilities_sum_to_one(num_channels, coupled):
  raw = random_raw(0, (2, 3, 3), num_channels, num_mixtures=4, coupled=coupled)
  params = lm.split_mixture_params(raw, num_channels, 4, coupled)
  values = random_images(1, (2, 3, 3, num_channels))
  log_probs = jax.jit(lm.sub_pixel_log_probs, static_argnums=2)(params, values, 256)
  assert log_probs.shape == (2, 3, 3, num_channels, 256)
  np.testing.assert_allclose(jnp.exp(log_probs).sum(-1), 1.0, atol=2e-5)


def test_bits_per_dim_matches_numpy_by_hand():
  num_channels, num_mixtures, num_levels = 3, 2, 256
  raw = random_raw(2, (2, 2, 3), num_channels, num_mixtures)
  images = random_images(3, (2, 2, 3, 3))
  images[0, 0, 0] = [0, 255, 17]  # both edge bins
  nll = jax.jit(functools.partial(lm.mixture_nll, num_mixtures=num_mixtures,
                                  num_levels=num_levels))(raw, images)
  bpd = likelihoods.bits_per_dim(nll, 2 * 3 * 3)

  raw64, images64 = np.asarray(raw, np.float64), np.asarray(images)
  k = num_mixtures
  expected_nll = np.zeros(2)
  for b, i, j in np.ndindex(2, 2, 3):
    r = raw64[b, i, j]
    logits, means = r[:k], r[k:4 * k].reshape(3, k)
    log_scales = np.maximum(r[4 * k:7 * k].reshape(3, k), lm.MIN_LOG_SCALE)
    coefficients = np.tanh(r[7 * k:].reshape(3, k))  # (G<-R), (B<-R), (B<-G)
    red, green, blue = images64[b, i, j]
    x = 2.0 * images64[b, i, j] / 255.0 - 1.0
    pixel_probability = 0.0
    weights = np.exp(logits) / np.exp(logits).sum()
    for m in range(k):
      mean = [means[0, m], means[1, m] + coefficients[0, m] * x[0],
              means[2, m] + coefficients[1, m] * x[0] + coefficients[2, m] * x[1]]
      pixel_probability += weights[m] * math.prod(
          np.exp(log_bin_probability64(v, mean[c], log_scales[c, m], num_levels))
          for c, v in enumerate((red, green, blue)))
    expected_nll[b] -= np.log(pixel_probability)
  np.testing.assert_allclose(nll, expected_nll, rtol=1e-5)
  np.testing.assert_allclose(bpd, expected_nll / (18 * np.log(2.0)), rtol=1e-5)


@pytest.mark.parametrize("num_channels", [1, 3])
def test_fused_nll_is_minus_the_sum_of_picked_sub_pixel_log_probs(num_channels):
  raw = random_raw(4, (3, 4, 4), num_channels, num_mixtures=5)
  images = random_images(5, (3, 4, 4, num_channels))
  fused = jax.jit(functools.partial(lm.mixture_nll, num_mixtures=5, num_levels=256))(raw, images)
  log_probs = jax.jit(lambda raw, images: lm.sub_pixel_log_probs(
      lm.split_mixture_params(raw, num_channels, 5), images, 256))(raw, images)
  picked = np.take_along_axis(np.asarray(log_probs), images[..., None], axis=-1)[..., 0]
  np.testing.assert_allclose(fused, -picked.reshape(3, -1).sum(-1), rtol=1e-5)  # chain rule


# (mean, log-scale): a broad logistic, a narrow one (bins 4 scales wide) whose far
# tail underflows any float32 sigmoid difference, and a very broad one whose bins
# cancel in float32.
REGIMES = [(0.0, 0.0), (0.3, -7.0), (0.95, -7.0), (-0.5, -3.0), (0.1, 6.0), (0.0, 12.0)]


@pytest.mark.parametrize("mean,log_scale", REGIMES)
def test_bin_log_probability_matches_float64_everywhere(mean, log_scale):
  levels = jnp.arange(256)
  log_prob = jax.jit(lambda m, s: lm.discretized_logistic_log_prob(levels, m, s, 256))
  got = np.asarray(log_prob(mean, log_scale))
  expected = np.array([log_bin_probability64(v, mean, log_scale, 256) for v in range(256)])
  usable = np.isfinite(expected)  # float64 itself underflows beyond ~-745 nats
  np.testing.assert_allclose(got[usable], expected[usable], rtol=2e-4, atol=2e-5)
  assert np.all(np.isfinite(got))  # finite even where float64 underflows
  np.testing.assert_allclose(np.exp(got).sum(), 1.0, atol=1e-5)  # edge bins included
  grad = jax.jit(jax.grad(lambda m, s: log_prob(m, s).sum(), argnums=(0, 1)))(
      jnp.float32(mean), jnp.float32(log_scale))
  assert all(np.isfinite(g) for g in grad)


@pytest.mark.parametrize("log_scale", [30.0, 100.0, 200.0])
def test_huge_scales_stay_finite_and_match_their_limit(log_scale):
  """As s -> oo the middle bins tend to P = d / 2, d = 1 / ((L-1) s), and the edges to 1/2."""
  levels = jnp.arange(256)
  log_prob = jax.jit(lambda m, s: lm.discretized_logistic_log_prob(levels, m, s, 256))
  got = np.asarray(log_prob(0.2, log_scale))
  np.testing.assert_allclose(got[1:-1], -log_scale - np.log(2 * 255), rtol=1e-6)
  np.testing.assert_allclose(np.exp(got[[0, -1]]), 0.5, rtol=1e-6)
  grad = jax.jit(jax.grad(lambda m, s: log_prob(m, s).sum(), argnums=(0, 1)))(
      jnp.float32(0.2), jnp.float32(log_scale))
  assert all(np.isfinite(g) for g in grad)


def test_exact_formula_beats_the_float32_sigmoid_difference():
  """Where the naive float32 difference gives log 0 or cancels, this formula stays exact."""
  levels, mean, log_scale = np.arange(256), 0.3, -7.0
  x = (2.0 * levels / 255.0 - 1.0).astype(np.float32)
  inverse_scale = np.exp(-log_scale)
  naive = np.asarray(jax.jit(lambda x: jnp.log(
      jax.nn.sigmoid(inverse_scale * (x + 1 / 255 - mean))
      - jax.nn.sigmoid(inverse_scale * (x - 1 / 255 - mean))))(x))
  assert np.sum(~np.isfinite(naive)) > 10  # the hard regime: the naive form fails here ...
  got = np.asarray(jax.jit(lm.discretized_logistic_log_prob, static_argnums=3)(
      levels, mean, log_scale, 256))
  expected = np.array([log_bin_probability64(v, mean, log_scale, 256) for v in range(256)])
  hard = ~np.isfinite(naive) & np.isfinite(expected)
  np.testing.assert_allclose(got[hard], expected[hard], rtol=2e-4)  # ... and this one does not


def test_one_uncoupled_component_is_the_plain_discretized_logistic():
  rng = np.random.default_rng(6)
  means = (0.5 * rng.normal(size=(2, 3, 3, 3))).astype(np.float32)
  log_scales = rng.uniform(-5.0, 0.0, (2, 3, 3, 3)).astype(np.float32)
  images = random_images(7, (2, 3, 3, 3))
  raw = np.concatenate([np.full((2, 3, 3, 1), 0.7, np.float32), means, log_scales], axis=-1)

  @jax.jit
  def both(raw, images, means, log_scales):
    mixture = lm.mixture_nll(raw, images, num_mixtures=1, num_levels=256, coupled=False)
    return mixture, -lm.discretized_logistic_log_prob(images, means, log_scales, 256).sum((1, 2, 3))

  mixture, plain = both(raw, images, means, log_scales)
  np.testing.assert_allclose(mixture, plain, rtol=1e-6)


def test_direct_sampling_draws_the_joint_distribution():
  """4 levels, RGB, 2 coupled components: all 64 pixel values, exactly enumerated."""
  num_levels, num_channels, num_mixtures = 4, 3, 2
  raw = random_raw(9, (), num_channels, num_mixtures)
  raw[num_mixtures:num_mixtures + 6] *= 0.5  # means inside [-1, 1]
  params = lm.split_mixture_params(raw, num_channels, num_mixtures)
  grid = np.stack(np.meshgrid(*[np.arange(num_levels)] * 3, indexing="ij"), -1).reshape(-1, 3)
  probabilities = np.exp(np.asarray(jax.jit(lm.mixture_log_prob, static_argnums=2)(
      jax.tree.map(lambda a: jnp.broadcast_to(a, (len(grid), *a.shape)), params),
      jnp.asarray(grid), num_levels)))
  np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-5)
  num_draws = 200_000
  draws = jax.jit(lm.sample_mixture, static_argnums=2)(
      jax.tree.map(lambda a: jnp.broadcast_to(a, (num_draws, *a.shape)), params),
      jax.random.key(10), num_levels)  # [N, 3]
  index = np.asarray(draws) @ np.array([num_levels ** 2, num_levels, 1])
  frequencies = np.bincount(index, minlength=len(grid)) / num_draws
  # Every outcome within 5 binomial standard deviations (+ a little slack).
  tolerance = 5 * np.sqrt(probabilities * (1 - probabilities) / num_draws) + 1e-4
  assert np.all(np.abs(frequencies - probabilities) <= tolerance)


@pytest.mark.parametrize("num_mixtures,expected_bits",
                         [(1, 8.29), (2, 8.15), (5, 8.07), (10, 8.04)])
def test_uniform_start_scores_close_to_8_bits_on_uniform_data(num_mixtures, expected_bits):
  log_probs = {}
  for channels in (1, 3):
    params = lm.split_mixture_params(
        jnp.asarray(lm.uniform_mixture_raw(channels, num_mixtures)), channels, num_mixtures)
    log_probs[channels] = np.asarray(jax.jit(lm.sub_pixel_log_probs, static_argnums=2)(
        params, np.zeros(channels, np.int32), 256))  # [C, 256]
  cross_entropy_bits = -np.mean(log_probs[1][0]) / np.log(2.0)  # against uniform data
  assert 8.0 < cross_entropy_bits < expected_bits + 0.005
  np.testing.assert_allclose(log_probs[3][0], log_probs[1][0], atol=1e-5)  # R's marginal


def test_wrong_number_of_parameters_is_an_error():
  with pytest.raises(ValueError, match="expected 30 mixture parameters for C=3, K=3"):
    lm.split_mixture_params(jnp.zeros((2, 29)), 3, 3)

"""Decoder likelihoods for VAEs: Bernoulli, Gaussian and the dequantized Gaussian bound."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from jax.scipy.stats import norm

from gen_jax.objectives import elbo, likelihoods


def test_bernoulli_nll_matches_direct_computation():
  rng = np.random.default_rng(0)
  logits = rng.normal(scale=3.0, size=(3, 4, 4, 1)).astype(np.float32)
  targets = rng.integers(0, 2, size=(3, 4, 4, 1)).astype(np.uint8)
  p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  expected = -(targets * np.log(p) + (1 - targets) * np.log1p(-p)).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(likelihoods.bernoulli_nll(jnp.asarray(logits), targets), expected,
                             rtol=1e-5)
  # Confident and right costs ~0; confident and wrong costs |logit|; never inf.
  extreme = likelihoods.bernoulli_nll(jnp.array([[200.0, -200.0]]), jnp.array([[1, 1]]))
  np.testing.assert_allclose(extreme, [200.0], rtol=1e-6)


def test_gaussian_nll_matches_scipy():
  keys = jax.random.split(jax.random.key(0), 3)
  targets, mean = jax.random.uniform(keys[0], (2, 3, 3, 1)), jax.random.uniform(keys[1], (2, 3, 3, 1))
  log_scale = jax.random.normal(keys[2], (2, 3, 3, 1)) - 2.0
  expected = -norm.logpdf(targets, mean, jnp.exp(log_scale)).reshape(2, -1).sum(-1)
  np.testing.assert_allclose(likelihoods.gaussian_nll(targets, mean, log_scale), expected,
                             rtol=1e-5)


def test_uniform_dequantize_stays_in_each_levels_bin():
  images = jnp.arange(256, dtype=jnp.uint8).reshape(1, 16, 16, 1)
  for seed in range(3):
    y = likelihoods.uniform_dequantize(jax.random.key(seed), images)
    np.testing.assert_array_equal(jnp.floor(y * 256).astype(jnp.int32), images)
    assert float(y.min()) >= 0.0 and float(y.max()) < 1.0


def discretized_gaussian_nll(images, mean, scale, num_levels=256):
  """-log P(x) with P(x) = the Gaussian's mass on x's bin [x/L, (x+1)/L) (exact, no sampling)."""
  low, high = images / num_levels, (images + 1.0) / num_levels
  mass = scipy.stats.norm.cdf(high, mean, scale) - scipy.stats.norm.cdf(low, mean, scale)
  return -np.log(mass).reshape(len(images), -1).sum(-1)  # float64


def test_dequantized_gaussian_bounds_the_discrete_likelihood():
  """E_u[-log p((x+u)/L)] + D log L >= -log P(x) (Jensen), tight when the density is flat on a bin."""
  images = jnp.array([[0, 3, 128, 200, 255]], jnp.uint8).reshape(1, 5, 1, 1)
  keys = jax.random.split(jax.random.key(1), 20_000)
  centres = (np.asarray(images, np.float64) + 0.3) / 256
  for scale, slack in ((0.3, 1e-4), (0.002, None)):  # wide vs. bin width 1/256 = 0.0039
    # the narrow Gaussians sit near their pixel's bin (elsewhere the bin's mass underflows)
    mean_value = np.full(images.shape, 0.45) if slack else centres
    mean, log_scale = jnp.asarray(mean_value, jnp.float32), jnp.full(images.shape, math.log(scale))
    bound = jax.vmap(lambda k: likelihoods.dequantized_gaussian_nll(
        k, images, mean, log_scale))(keys).mean(0)  # [1] nats
    exact = discretized_gaussian_nll(np.asarray(images, np.float64), mean_value, scale)
    assert bound[0] >= exact[0] - 1e-3, (bound, exact)
    if slack is None:  # narrow: the density varies across a bin, so Jensen's gap is real
      assert bound[0] > exact[0] + 0.05, (bound, exact)
    else:
      np.testing.assert_allclose(bound, exact, atol=slack * images.size + 1e-4)
  # The bound is the density of the dequantized y plus D log L: 8 bits/dim for L = 256,
  # so a density that is uniform on [0, 1)^D would score exactly 8 bits/dim.
  y = likelihoods.uniform_dequantize(keys[0], images)
  offset = (likelihoods.dequantized_gaussian_nll(keys[0], images, mean, log_scale)
            - likelihoods.gaussian_nll(y, mean, log_scale))
  np.testing.assert_allclose(likelihoods.bits_per_dim(offset, images.size), 8.0, rtol=1e-4)


def test_decoder_means():
  outputs = jnp.array([[[[[0.0, 1.0, -2.0]]]]])  # [1, 1, 1, 1, 3]
  probs = jax.nn.softmax(outputs[0, 0, 0, 0])
  np.testing.assert_allclose(elbo.decoder_mean("categorical", outputs, 3)[0, 0, 0, 0],
                             (probs[1] + 2 * probs[2]) / 2, rtol=1e-6)
  np.testing.assert_allclose(elbo.decoder_mean("bernoulli", outputs, 2)[0, 0, 0, 0],
                             1 / 2, rtol=1e-6)
  # Gaussian on y = (x + u) / 256: a mean at the centre of level 200's bin is level 200.
  mean = jnp.full((1, 1, 1, 1, 2), (200 + 0.5) / 256)
  np.testing.assert_allclose(elbo.decoder_mean("gaussian", mean, 256), 200 / 255, rtol=1e-6)


def test_to_uint8_maps_low_to_0_high_to_255_rounds_and_clips():
  for low, high in ((0.0, 1.0), (-1.0, 1.0), (0, 1), (0, 255), (0, 3)):
    step = (high - low) / 255
    values = [low, high, low - 5.0, high + 5.0,  # the ends, then clipped beyond them
              low + 10.4 * step, low + 10.6 * step, low + 254.7 * step]  # rounded to nearest
    for array in (np.asarray(values, np.float32), jnp.asarray(values)):
      out = likelihoods.to_uint8(array, low, high)
      assert out.dtype == np.uint8 and type(out) is type(array)
      np.testing.assert_array_equal(out, [0, 255, 0, 255, 10, 11, 255])
  # L-level pixels: every level of a 4-level image lands on 0, 85, 170, 255.
  np.testing.assert_array_equal(likelihoods.to_uint8(np.arange(4), 0, 3), [0, 85, 170, 255])
  np.testing.assert_array_equal(likelihoods.to_uint8(np.arange(256), 0, 255), np.arange(256))
  # Under jit (a traced input) it is the same function.
  np.testing.assert_array_equal(
      jax.jit(lambda x: likelihoods.to_uint8(x, -1.0, 1.0))(jnp.array([-1.0, 0.0, 1.0])), [0, 128, 255])

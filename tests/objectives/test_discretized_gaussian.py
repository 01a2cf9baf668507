"""The discretized Gaussian: a proper distribution over the levels, against scipy in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gen_jax.objectives import discretized_gaussian as dgauss

LEVELS = np.arange(256)


def reference_log_prob(mean: float, sigma: float, num_levels: int = 256) -> np.ndarray:
  """log P(x) for every level, from scipy's float64 normal CDF (end bins open)."""
  edges = (np.arange(num_levels + 1) - 0.5) * (2.0 / (num_levels - 1)) - 1.0
  edges[0], edges[-1] = -np.inf, np.inf
  upper, lower = (edges[1:] - mean) / sigma, (edges[:-1] - mean) / sigma
  # Mirror bins right of the mean into the lower tail, where the CDF has full precision.
  right = lower + upper > 0
  mass = np.where(right, stats.norm.sf(lower) - stats.norm.sf(upper),
                  stats.norm.cdf(upper) - stats.norm.cdf(lower))
  with np.errstate(divide="ignore"):
    return np.log(mass)


def log_prob(mean: float, sigma: float) -> np.ndarray:
  return np.asarray(dgauss.discretized_gaussian_log_prob(
      jnp.asarray(LEVELS), jnp.float32(mean), jnp.float32(np.log(sigma)), 256), np.float64)


@pytest.mark.parametrize("mean,sigma", [(0.0, 1.0), (-0.3, 0.05), (0.9, 0.01), (-1.0, 0.002),
                                        (1.7, 0.3), (0.1, 20.0)])
def test_levels_form_a_distribution_matching_scipy(mean, sigma):
  ours = log_prob(mean, sigma)
  assert np.all(np.isfinite(ours))
  np.testing.assert_allclose(np.exp(ours).sum(), 1.0, rtol=2e-5)
  reference = reference_log_prob(mean, sigma)
  likely = reference > np.log(1e-30)  # where float64 has the bin's mass to full precision
  np.testing.assert_allclose(ours[likely], reference[likely], rtol=1e-4, atol=1e-4)


def test_far_tails_stay_finite_and_decrease():
  ours = log_prob(-1.0, 0.01)  # levels far above the mean: tens of standard deviations out
  assert np.all(np.isfinite(ours)) and np.all(np.diff(ours[1:]) < 0)
  assert ours[255] < -1e3  # the last bin, 200 sigmas away


def test_nll_sums_over_an_image_and_has_finite_gradients():
  images = jax.random.randint(jax.random.key(0), (2, 4, 4, 1), 0, 256)
  mean = jax.random.uniform(jax.random.key(1), (2, 4, 4, 1), minval=-1.5, maxval=1.5)
  nll = jax.jit(dgauss.discretized_gaussian_nll, static_argnums=3)(
      images, mean, jnp.log(jnp.array([0.1])), 256)
  direct = -np.array([sum(reference_log_prob(float(m), 0.1)[int(x)]
                          for x, m in zip(np.ravel(images[b]), np.ravel(mean[b])))
                      for b in range(2)])
  np.testing.assert_allclose(nll, direct, rtol=1e-4)
  grads = jax.jit(jax.grad(lambda m, s: dgauss.discretized_gaussian_nll(images, m, s, 256).sum(),
                           argnums=(0, 1)))(mean, jnp.log(jnp.array([1e-3])))
  assert all(np.all(np.isfinite(g)) for g in grads)


def test_unit_scale_round_trip():
  levels = jnp.arange(256)
  round_trip = dgauss.unit_to_levels(dgauss.levels_to_unit(levels, 256), 256)
  np.testing.assert_array_equal(round_trip, levels)
  np.testing.assert_array_equal(dgauss.unit_to_levels(jnp.array([-3.0, 3.0]), 256), [0, 255])

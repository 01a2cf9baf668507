"""AR(p) maths: nll vs scipy-style direct formula, OLS is the MLE, forecasts vs closed form and MC."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from gen_jax.data.timeseries import generate_ar_process
from gen_jax.objectives import time_series


def test_lagged_and_nll_equal_a_direct_computation():
  rng = np.random.default_rng(0)
  windows = rng.normal(size=(3, 7)).astype(np.float32)
  intercept, coefficients, noise_std = 0.3, np.array([0.5, -0.2, 0.1], np.float32), 0.7
  nll = time_series.ar_nll(jnp.asarray(windows), intercept, jnp.asarray(coefficients), noise_std)
  assert nll.shape == (3, 4)
  for b in range(3):
    for t in range(3, 7):
      mean = intercept + sum(coefficients[i] * windows[b, t - 1 - i] for i in range(3))
      expected = -norm.logpdf(windows[b, t], mean, noise_std)
      np.testing.assert_allclose(nll[b, t - 3], expected, rtol=1e-5)


def test_ols_is_the_conditional_mle_and_recovers_the_truth():
  truth = np.array([0.75, -0.5])
  series = generate_ar_process(truth, 1.0, 0.5, 20000, seed=3)
  fit = time_series.ols_fit(series, 2)
  # Standard errors are about sqrt((1 - phi_2^2) / n) ~ 0.006 here: 5 of them.
  np.testing.assert_allclose(fit["coefficients"], truth, atol=0.03)
  np.testing.assert_allclose(fit["intercept"], 1.0, atol=0.05)
  np.testing.assert_allclose(fit["noise_std"], 0.5, atol=0.01)
  # The MLE: the gradient of the mean conditional nll vanishes at the OLS fit.
  def mean_nll(params):
    return time_series.ar_nll(jnp.asarray(series[None], jnp.float32), params[0], params[1:3],
                              params[3]).mean()
  params = jnp.array([fit["intercept"], *fit["coefficients"], fit["noise_std"]], jnp.float32)
  np.testing.assert_allclose(jax.grad(mean_nll)(params), 0.0, atol=2e-3)
  assert mean_nll(params) < mean_nll(params.at[1].add(0.01))


def test_spectral_radius():
  assert time_series.spectral_radius([0.5]) == pytest.approx(0.5)
  assert time_series.spectral_radius([0.75, -0.5]) == pytest.approx(math.sqrt(0.5))  # complex roots
  assert time_series.spectral_radius([0.5, 0.5]) == pytest.approx(1.0)  # a unit root


def test_ar1_forecast_matches_the_closed_form():
  phi, c, sigma, x, horizon = 0.8, 0.5, 0.3, 2.0, 12
  k = np.arange(1, horizon + 1)
  mean = time_series.forecast_mean(jnp.array([7.0, x]), c, jnp.array([phi]), horizon)
  variance = time_series.forecast_variance(jnp.array([phi]), sigma, horizon)
  np.testing.assert_allclose(mean, c * (1 - phi ** k) / (1 - phi) + phi ** k * x, rtol=1e-5)
  np.testing.assert_allclose(variance, sigma ** 2 * (1 - phi ** (2 * k)) / (1 - phi ** 2),
                             rtol=1e-5)
  lower, upper = time_series.forecast_interval(mean, variance, 0.95)
  np.testing.assert_allclose((upper - mean) / np.sqrt(variance), 1.959964, rtol=1e-5)
  np.testing.assert_allclose(upper - mean, mean - lower, rtol=1e-5)


def test_ar3_forecast_matches_monte_carlo():
  coefficients, c, sigma, horizon = jnp.array([0.5, 0.3, -0.4]), 0.2, 0.6, 10
  history = jnp.array([1.0, -0.5, 0.8, 1.5])  # oldest first; only the last 3 matter
  mean = time_series.forecast_mean(history, c, coefficients, horizon)
  variance = time_series.forecast_variance(coefficients, sigma, horizon)
  paths = time_series.sample_paths(jax.random.key(0), history, c, coefficients, sigma, horizon,
                                   40000)
  assert paths.shape == (40000, horizon)
  assert np.all(np.abs(paths.mean(0) - mean) < 4 * np.sqrt(variance / 40000))  # 4 std errors
  np.testing.assert_allclose(paths.var(0), variance, rtol=0.03)
  # The first step is exactly c + phi . lags, and the 90% band holds ~90% of paths at every k.
  np.testing.assert_allclose(mean[0], 0.2 + 0.5 * 1.5 + 0.3 * 0.8 - 0.4 * -0.5, rtol=1e-6)
  lower, upper = time_series.forecast_interval(mean, variance, 0.9)
  coverage = np.mean((paths >= lower) & (paths <= upper), axis=0)
  np.testing.assert_allclose(coverage, 0.9, atol=0.01)

"""Gaussian KL, reparameterization, ELBO and IWAE: closed forms and known inequalities.

The toy with a closed form is the linear-Gaussian model
  z ~ N(0, 1),  x | z ~ N(a z + b, s^2)   =>   x ~ N(b, a^2 + s^2),
  p(z | x) = N(v a (x - b) / s^2, v),  v = 1 / (1 + a^2 / s^2),
with a batch of x values and one latent dimension.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from gen_jax.objectives import elbo

A, B, S = 1.7, -0.4, 0.6
X = jnp.array([-2.0, -0.3, 0.5, 1.9])  # [4] observations


def toy_log_likelihood(z):  # z [..., 4, 1] -> log p(x|z) [..., 4]
  return norm.logpdf(X, A * z[..., 0] + B, S)


def toy_log_evidence():  # [4] log p(x)
  return norm.logpdf(X, B, math.sqrt(A * A + S * S))


def toy_posterior():  # exact q(z|x): ([4, 1] mean, [4, 1] log-variance)
  variance = 1.0 / (1.0 + A * A / (S * S))
  mean = variance * A * (X - B) / (S * S)
  return mean[:, None], jnp.full((4, 1), math.log(variance))


def toy_expected_log_likelihood(mean, log_variance):
  """E_{z ~ N(m, v)}[log N(x; a z + b, s^2)] = log N(x; a m + b, s^2) - a^2 v / (2 s^2)."""
  return (norm.logpdf(X, A * mean[:, 0] + B, S)
          - A * A * jnp.exp(log_variance[:, 0]) / (2 * S * S))


def toy_log_weights(rng, mean, log_variance, num_samples):  # -> [k, 4]
  z = jax.vmap(lambda key: elbo.reparameterized_sample(key, mean, log_variance))(
      jax.random.split(rng, num_samples))  # [k, 4, 1]
  return elbo.log_importance_weights(toy_log_likelihood(z), z, mean, log_variance)


def test_gaussian_log_density_matches_scipy():
  z, mean = jax.random.normal(jax.random.key(0), (2, 3, 5))
  log_variance = jax.random.normal(jax.random.key(1), (3, 5))
  expected = norm.logpdf(z, mean, jnp.exp(0.5 * log_variance)).sum(-1)
  np.testing.assert_allclose(elbo.gaussian_log_density(z, mean, log_variance), expected, rtol=1e-5)
  np.testing.assert_allclose(elbo.standard_normal_log_density(z), norm.logpdf(z).sum(-1),
                             rtol=1e-5)


def monte_carlo_kl(rng, mean_q, log_variance_q, log_p_fn, num_samples):
  """(mean, standard error) of log q(z) - log p(z) over z ~ q."""
  z = mean_q + jnp.exp(0.5 * log_variance_q) * jax.random.normal(
      rng, (num_samples, *mean_q.shape))
  values = elbo.gaussian_log_density(z, mean_q, log_variance_q) - log_p_fn(z)  # [n, ...]
  return values.mean(0), values.std(0) / math.sqrt(num_samples)


def test_kl_to_standard_normal_matches_monte_carlo():
  mean = jnp.array([[0.0, 0.0], [1.5, -0.7], [0.3, 2.0]])
  log_variance = jnp.array([[0.0, 0.0], [-1.0, 0.5], [-2.5, 0.2]])
  analytic = elbo.gaussian_kl_to_standard_normal(mean, log_variance)  # [3]
  estimate, error = monte_carlo_kl(jax.random.key(2), mean, log_variance,
                                   elbo.standard_normal_log_density, 200_000)
  np.testing.assert_allclose(analytic[0], 0.0, atol=1e-7)  # q = p
  assert np.all(np.abs(analytic - estimate) < 5 * error + 1e-6), (analytic, estimate, error)
  assert np.all(analytic[1:] > 0.5)  # not a trivially small quantity


def test_kl_between_gaussians_matches_monte_carlo():
  keys = jax.random.split(jax.random.key(3), 4)
  mean_q, mean_p = (jax.random.normal(k, (3, 4)) for k in keys[:2])
  log_variance_q, log_variance_p = (0.7 * jax.random.normal(k, (3, 4)) for k in keys[2:])
  analytic = elbo.gaussian_kl(mean_q, log_variance_q, mean_p, log_variance_p)
  estimate, error = monte_carlo_kl(
      jax.random.key(4), mean_q, log_variance_q,
      lambda z: elbo.gaussian_log_density(z, mean_p, log_variance_p), 200_000)
  assert np.all(np.abs(analytic - estimate) < 5 * error), (analytic, estimate, error)
  # KL to N(0, I) is the special case; KL(q || q) = 0.
  np.testing.assert_allclose(elbo.gaussian_kl(mean_q, log_variance_q, 0.0, 0.0),
                             elbo.gaussian_kl_to_standard_normal(mean_q, log_variance_q),
                             rtol=1e-6)
  np.testing.assert_allclose(elbo.gaussian_kl(mean_q, log_variance_q, mean_q, log_variance_q),
                             0.0, atol=1e-6)


def test_reparameterized_sample_has_the_right_moments():
  mean, log_variance = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
  z = jax.vmap(lambda k: elbo.reparameterized_sample(k, mean, log_variance))(
      jax.random.split(jax.random.key(5), 100_000))
  np.testing.assert_allclose(z.mean(0), mean, atol=0.02)
  np.testing.assert_allclose(z.var(0), jnp.exp(log_variance), rtol=0.02)


def test_elbo_with_exact_posterior_equals_log_evidence():
  mean, log_variance = toy_posterior()
  kl = elbo.gaussian_kl_to_standard_normal(mean, log_variance)
  exact = elbo.elbo(toy_expected_log_likelihood(mean, log_variance), kl)
  np.testing.assert_allclose(exact, toy_log_evidence(), rtol=1e-5)
  # Any other q is strictly worse, and beta > 1 lowers the bound by (beta - 1) KL.
  worse = elbo.elbo(toy_expected_log_likelihood(mean + 0.3, log_variance), kl=
                    elbo.gaussian_kl_to_standard_normal(mean + 0.3, log_variance))
  assert np.all(worse < toy_log_evidence() - 1e-3)
  np.testing.assert_allclose(
      elbo.elbo(toy_expected_log_likelihood(mean, log_variance), kl, beta=3.0),
      toy_log_evidence() - 2.0 * kl, rtol=1e-5)
  # With the exact posterior every importance weight is p(x): zero variance.
  log_weights = toy_log_weights(jax.random.key(6), mean, log_variance, 16)  # [16, 4]
  np.testing.assert_allclose(log_weights, jnp.broadcast_to(toy_log_evidence(), (16, 4)),
                             rtol=1e-5)
  np.testing.assert_allclose(elbo.iwae_bound(log_weights), toy_log_evidence(), rtol=1e-5)


def non_exact_posterior():
  mean, log_variance = toy_posterior()
  return mean + 0.4, log_variance + 0.8  # shifted and too wide


def test_iwae_with_one_sample_is_the_elbo():
  mean, log_variance = non_exact_posterior()
  log_weights = toy_log_weights(jax.random.key(7), mean, log_variance, 100_000)  # [n, 4]
  # k = 1: the bound is the log weight itself, i.e. the single-sample ELBO estimate...
  np.testing.assert_allclose(elbo.iwae_bound(log_weights[:1]), log_weights[0], rtol=1e-6)
  # ... whose expectation is the analytic-KL ELBO.
  analytic = elbo.elbo(toy_expected_log_likelihood(mean, log_variance),
                       elbo.gaussian_kl_to_standard_normal(mean, log_variance))
  error = log_weights.std(0) / math.sqrt(len(log_weights))
  assert np.all(np.abs(log_weights.mean(0) - analytic) < 5 * error), (log_weights.mean(0), analytic)


def test_iwae_beats_the_elbo_and_increases_with_k():
  """E[IWAE_1] < E[IWAE_4] < E[IWAE_32] <= log p(x) for a fixed non-exact q (paired replicates:
  IWAE_k of replicate r uses the first k of its 32 weights)."""
  mean, log_variance = non_exact_posterior()
  analytic_elbo = elbo.elbo(toy_expected_log_likelihood(mean, log_variance),
                            elbo.gaussian_kl_to_standard_normal(mean, log_variance))
  replicates = 3000
  log_weights = jax.vmap(lambda key: toy_log_weights(key, mean, log_variance, 32))(
      jax.random.split(jax.random.key(8), replicates))  # [R, 32, 4]
  bounds = {k: elbo.iwae_bound(log_weights[:, :k], axis=1) for k in (1, 4, 32)}  # [R, 4] each
  log_evidence = toy_log_evidence()
  np.testing.assert_array_less(analytic_elbo, log_evidence - 0.05)  # q is far from exact
  for lower, upper in ((1, 4), (4, 32)):
    gain = bounds[upper] - bounds[lower]  # [R, 4]
    assert np.all(gain.mean(0) > 5 * gain.std(0) / math.sqrt(replicates)), (lower, upper)
  assert np.all(bounds[4].mean(0) > analytic_elbo)
  best, error = bounds[32].mean(0), bounds[32].std(0) / math.sqrt(replicates)
  assert np.all(best < log_evidence + 4 * error)  # still a lower bound
  assert np.all(log_evidence - best < 0.25 * (log_evidence - analytic_elbo))


def test_chunked_iwae_equals_unchunked():
  mean, log_variance = non_exact_posterior()

  def log_weights_fn(keys):  # [c] keys -> [c, 4]
    z = jax.vmap(lambda key: elbo.reparameterized_sample(key, mean, log_variance))(keys)
    return elbo.log_importance_weights(toy_log_likelihood(z), z, mean, log_variance)

  rng, num_samples = jax.random.key(9), 50
  unchunked = elbo.iwae_bound(log_weights_fn(jax.random.split(rng, num_samples)))
  for chunk_size in (7, 64):  # 7 does not divide 50; 64 > k
    chunked = jax.jit(elbo.chunked_iwae_bound, static_argnums=(0, 2, 3))(
        log_weights_fn, rng, num_samples, chunk_size)
    np.testing.assert_allclose(chunked, unchunked, rtol=1e-6, err_msg=f"chunk_size={chunk_size}")


def test_reparameterized_gradient_matches_score_function_estimate():
  """d/d(m, log v) E_{z ~ N(m, v)}[sum cos z]: pathwise vs REINFORCE vs closed form.

  E[cos z] = cos(m) exp(-v/2), so d/dm = -sin(m) exp(-v/2) and
  d/d(log v) = -cos(m) v exp(-v/2) / 2.
  """
  mean, log_variance = jnp.array([0.3, -1.2, 2.0]), jnp.array([-0.5, 0.4, -1.5])
  num_samples = 400_000
  keys = jax.random.split(jax.random.key(10))

  def pathwise(params):
    m, lv = params
    z = elbo.reparameterized_sample(keys[0], jnp.broadcast_to(m, (num_samples, 3)),
                                    jnp.broadcast_to(lv, (num_samples, 3)))
    return jnp.cos(z).sum(-1).mean()

  z = jax.lax.stop_gradient(
      elbo.reparameterized_sample(keys[1], jnp.broadcast_to(mean, (num_samples, 3)),
                                  jnp.broadcast_to(log_variance, (num_samples, 3))))
  f = jnp.cos(z)  # [n, 3]; each coordinate's f only depends on its own parameters

  def score_terms(params):  # per-sample f(z) * grad log q(z), baseline E[f] subtracted
    m, lv = params
    return jax.vmap(jax.grad(
        lambda p, zi, fi: jnp.sum((fi - f.mean(0)) * norm.logpdf(zi, p[0], jnp.exp(0.5 * p[1])))),
        in_axes=(None, 0, 0))((m, lv), z, f)

  path_m, path_lv = jax.grad(pathwise)((mean, log_variance))
  score_m, score_lv = score_terms((mean, log_variance))  # [n, 3] each
  variance = jnp.exp(log_variance)
  exact_m = -jnp.sin(mean) * jnp.exp(-variance / 2)
  exact_lv = -jnp.cos(mean) * variance * jnp.exp(-variance / 2) / 2
  for path, score, exact in ((path_m, score_m, exact_m), (path_lv, score_lv, exact_lv)):
    error = score.std(0) / math.sqrt(num_samples)
    assert np.all(np.abs(score.mean(0) - path) < 5 * error + 2e-3), (score.mean(0), path)
    np.testing.assert_allclose(path, exact, atol=5e-3)

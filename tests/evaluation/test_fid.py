"""FID and KID: closed forms, exact unbiasedness, and the batched feature plumbing."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from gen_jax.evaluation import fid


def random_spd(rng, dim, rank=None):
  factor = rng.normal(size=(dim, rank or dim))
  return factor @ factor.T + (0 if rank else 0.1 * np.eye(dim))


def test_fid_of_a_set_with_itself_is_zero():
  features = np.random.default_rng(0).normal(size=(300, 6)) ** 3  # non-Gaussian
  mean, covariance = fid.feature_statistics(features)
  assert fid.frechet_distance(mean, covariance, mean, covariance) < 1e-9


def test_fid_of_diagonal_gaussians_is_mean_gap_plus_std_gaps():
  """Commuting covariances: tr(C_a + C_b - 2 (C_a C_b)^1/2) = sum_i (s_a,i - s_b,i)^2."""
  rng = np.random.default_rng(1)
  mean_a, mean_b = rng.normal(size=5), rng.normal(size=5)
  std_a = np.array([0.5, 2.0, 0.0, 1.0, 3.0])  # one zero variance: a singular covariance
  std_b = np.array([1.5, 0.1, 0.7, 1.0, 0.0])
  expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
  np.testing.assert_allclose(
      fid.frechet_distance(mean_a, np.diag(std_a ** 2), mean_b, np.diag(std_b ** 2)),
      expected, rtol=1e-10)


def test_fid_of_general_gaussians_matches_scipy_sqrtm():
  rng = np.random.default_rng(2)
  for dim, rank in ((4, None), (7, None), (6, 3)):  # the last pair is rank-deficient
    cov_a, cov_b = random_spd(rng, dim, rank), random_spd(rng, dim)
    mean_a, mean_b = rng.normal(size=dim), rng.normal(size=dim)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b)
    expected = (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                - 2 * np.trace(cross).real)
    np.testing.assert_allclose(fid.frechet_distance(mean_a, cov_a, mean_b, cov_b), expected,
                               rtol=1e-7)


def test_fid_from_samples_converges_to_the_population_value():
  rng = np.random.default_rng(3)
  cov_a, cov_b = random_spd(rng, 3), random_spd(rng, 3)
  mean_b = np.array([1.0, -1.0, 0.5])
  a = rng.multivariate_normal(np.zeros(3), cov_a, size=200_000)
  b = rng.multivariate_normal(mean_b, cov_b, size=200_000)
  population = fid.frechet_distance(np.zeros(3), cov_a, mean_b, cov_b)
  estimate = fid.frechet_distance(*fid.feature_statistics(a), *fid.feature_statistics(b))
  np.testing.assert_allclose(estimate, population, rtol=0.02)


def population_mmd(support_x, support_y, kernel):
  """E k(x, x') + E k(y, y') - 2 E k(x, y) for uniform distributions on finite supports."""
  return (kernel(support_x, support_x).mean() + kernel(support_y, support_y).mean()
          - 2 * kernel(support_x, support_y).mean())


def test_mmd_estimate_is_exactly_unbiased_by_enumeration():
  """Averaging over every equally likely sample of size 2 gives the population MMD^2."""
  support_x = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
  support_y = np.array([[1.0, 1.0], [-1.0, 0.0], [3.0, 2.0]])
  samples = list(itertools.product(range(3), repeat=2))  # i.i.d. draws, with repeats
  estimates, biased = [], []
  for ix, iy in itertools.product(samples, samples):
    x, y = support_x[list(ix)], support_y[list(iy)]
    estimates.append(fid.mmd_squared_unbiased(x, y))
    k = fid.polynomial_kernel
    biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
  population = population_mmd(support_x, support_y, fid.polynomial_kernel)
  np.testing.assert_allclose(np.mean(estimates), population, rtol=1e-12)
  # The plug-in (V-statistic) estimate, which keeps the i = j terms, is biased here.
  assert abs(np.mean(biased) - population) > 0.1 * abs(population)


def test_kid_of_one_full_subset_is_the_mmd_estimate_and_near_zero_for_equal_laws():
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 0.7
  # One subset of size >= both sets: a permutation of each set, the same estimate.
  np.testing.assert_allclose(fid.kernel_inception_distance(x, y, num_subsets=1, subset_size=1000),
                             fid.mmd_squared_unbiased(x, y), rtol=1e-10)
  same = [fid.kernel_inception_distance(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)),
                                        num_subsets=5, subset_size=100, seed=s) for s in range(20)]
  shifted = fid.kernel_inception_distance(rng.normal(size=(200, 3)),
                                          rng.normal(size=(200, 3)) + 0.7,
                                          num_subsets=5, subset_size=100)
  assert abs(np.mean(same)) < 4 * np.std(same) / np.sqrt(len(same))  # unbiased: mean 0
  assert shifted > 10 * np.std(same)


def test_class_histogram():
  metrics = fid.class_histogram(np.array([0, 0, 1, 3]), num_classes=4)
  assert [metrics[f"class_fraction_{k}"] for k in range(4)] == [0.5, 0.25, 0.0, 0.25]
  np.testing.assert_allclose(metrics["class_entropy"],
                             -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25)))
  uniform = fid.class_histogram(np.arange(100) % 10, num_classes=10)
  np.testing.assert_allclose(uniform["class_entropy"], np.log(10))
  assert fid.class_histogram(np.zeros(7, int), num_classes=3)["class_entropy"] == 0.0


def test_batched_features_match_one_pass_and_compile_once():
  images = np.random.default_rng(5).integers(0, 256, (7, 4, 4, 1), dtype=np.uint8)

  def apply(batch):  # features: two pixel statistics; logits: favour class (sum mod 3)
    x = batch.reshape(len(batch), -1).astype(jnp.float32)
    features = jnp.stack([x.mean(-1), x.max(-1)], axis=-1)
    return features, jax.nn.one_hot(x.sum(-1).astype(jnp.int32) % 3, 3)

  network = fid.FeatureNetwork(jax.jit(chex.assert_max_traces(apply, n=1)))
  features, predicted = fid.image_features(network, images, batch_size=3)  # 3 + 3 + 1 (padded)
  expected_features, expected_logits = apply(jnp.asarray(images))
  np.testing.assert_allclose(features, expected_features, rtol=1e-6)
  np.testing.assert_array_equal(predicted, np.argmax(expected_logits, -1))
  reference = fid.ReferenceSet.from_features(features)
  eval_config = type("EvalConfig", (), {"kid_subsets": 2, "kid_subset_size": 5})
  metrics = fid.compare_to_reference(network, reference, images, eval_config, 3, num_classes=3)
  assert metrics["fid"] < 1e-9  # the same images as the reference
  np.testing.assert_allclose([metrics[f"class_fraction_{k}"] for k in range(3)],
                             np.bincount(predicted, minlength=3) / 7)

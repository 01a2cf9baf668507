"""MIG: 1 for the ground-truth factors, near 0 for noise and shared factors; estimators checked."""

import numpy as np
import pytest

from gen_jax.errors import UserError
from gen_jax.evaluation import disentanglement

FACTOR_SIZES = (3, 6, 10, 16, 16)  # the sprites' factors


def random_factors(num, seed=0):
  rng = np.random.default_rng(seed)
  return np.stack([rng.integers(0, size, num) for size in FACTOR_SIZES], axis=-1)


def test_entropy_and_mutual_information_agree_with_an_independent_computation():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 4, 5000)
  b = (a + rng.integers(0, 2, 5000)) % 5  # dependent on a
  # I(A; B) = H(A) + H(B) - H(A, B), the joint entropy over pairs coded as one integer.
  joint = disentanglement.entropy(a * 10 + b)
  expected = disentanglement.entropy(a) + disentanglement.entropy(b) - joint
  assert disentanglement.mutual_information(a, b) == pytest.approx(expected, abs=1e-10)
  # Closed forms: a uniform 4-valued variable has entropy log 4 and I(A; A) = H(A).
  assert disentanglement.entropy(np.arange(4000) % 4) == pytest.approx(np.log(4))
  assert disentanglement.mutual_information(a, a) == pytest.approx(disentanglement.entropy(a))
  assert disentanglement.mutual_information(a, 7 * a + 3) == pytest.approx(disentanglement.entropy(a))


def test_discretize_uses_equal_width_bins_per_column():
  values = np.array([[0.0, 5.0], [0.49, 5.0], [0.5, 5.0], [1.0, 5.0]])
  np.testing.assert_array_equal(disentanglement.discretize(values, 2), [[0, 0], [0, 0], [1, 0], [1, 0]])


def test_mig_of_the_ground_truth_factors_is_one():
  factors = random_factors(20_000)
  latents = factors + 0.1 * np.random.default_rng(1).standard_normal(factors.shape)
  mig, gaps = disentanglement.mutual_information_gap(latents, factors)
  assert mig > 0.98 and gaps.min() > 0.97
  # Invariant to a monotone rescaling of each latent and to their order.
  permuted = (3.0 * latents - 1.0)[:, ::-1]
  assert disentanglement.mutual_information_gap(permuted, factors)[0] == pytest.approx(mig)


def test_mig_of_a_random_encoder_is_near_zero():
  factors = random_factors(20_000)
  rng = np.random.default_rng(2)
  noise_encoder = rng.standard_normal((len(factors), 10))
  assert disentanglement.mutual_information_gap(noise_encoder, factors)[0] < 0.02
  # A random rotation of the factors into 10 latents keeps the information but
  # spreads each factor over many latents: a far smaller gap.
  mixing = rng.standard_normal((5, 10))
  entangled = ((factors - factors.mean(0)) / factors.std(0)) @ mixing
  assert disentanglement.mutual_information_gap(entangled, factors)[0] < 0.3


def test_a_factor_shared_by_two_latents_has_no_gap():
  factors = random_factors(20_000)
  latents = np.concatenate([factors, factors[:, 3:4]], axis=1).astype(np.float64)  # x twice
  mig, gaps = disentanglement.mutual_information_gap(latents, factors)
  assert gaps[3] == pytest.approx(0.0, abs=1e-12)
  assert gaps[[0, 1, 2, 4]].min() > 0.97 and mig == pytest.approx(gaps.mean())


def test_constant_factor_is_a_user_error():
  factors = random_factors(100)
  factors[:, 2] = 4
  with pytest.raises(UserError, match=r"factors \[2\] take a single value"):
    disentanglement.mutual_information_gap(factors.astype(float), factors)


def test_traversal_changes_one_latent_per_row():
  base = np.array([0.5, -1.0, 2.0])
  values = np.linspace(-2, 2, 5)
  dims = np.array([2, 0])
  grid = disentanglement.traversal_latents(base, dims, values)  # [2, 5, 3]
  assert grid.shape == (2, 5, 3)
  for row, dim in enumerate(dims):
    np.testing.assert_array_equal(grid[row, :, dim], values)
    others = np.delete(grid[row], dim, axis=1)
    np.testing.assert_array_equal(others, np.broadcast_to(np.delete(base, dim), others.shape))

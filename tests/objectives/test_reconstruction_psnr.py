"""Squared error and PSNR against a direct computation."""

import math

import jax.numpy as jnp
import numpy as np

from gen_jax.objectives import reconstruction


def test_psnr_matches_direct_computation():
  rng = np.random.default_rng(0)
  reference = rng.integers(0, 256, (3, 5, 4, 1)).astype(np.uint8)
  estimate = np.clip(reference + rng.normal(0, 20, reference.shape), 0, 255)
  expected = [10 * math.log10(255.0 ** 2 / np.mean((r.astype(np.float64) - e) ** 2))
              for r, e in zip(reference, estimate)]
  np.testing.assert_allclose(reconstruction.psnr(reference, estimate), expected, rtol=1e-5)
  # On [0, 1] intensities with max_value 1 it is the same number.
  np.testing.assert_allclose(reconstruction.psnr(reference / 255.0, estimate / 255.0, 1.0),
                             expected, rtol=1e-4)


def test_psnr_of_a_known_error():
  reference = jnp.zeros((1, 10, 10, 1))
  estimate = jnp.full((1, 10, 10, 1), 25.5)  # MSE = 25.5^2 -> 20 log10(255 / 25.5) = 20 dB
  np.testing.assert_allclose(reconstruction.psnr(reference, estimate), [20.0], rtol=1e-6)
  np.testing.assert_allclose(reconstruction.mean_squared_error(reference, estimate), [650.25])


def test_exact_copy_is_capped():
  images = jnp.full((2, 3, 3, 1), 7.0)
  np.testing.assert_allclose(reconstruction.psnr(images, images), [100.0, 100.0])
  off_by_one = images.at[0, 0, 0, 0].add(1.0)  # MSE = 1/9: 10 log10(255^2 * 9) = 57.7 dB
  np.testing.assert_allclose(reconstruction.psnr(images, off_by_one)[0],
                             10 * math.log10(255.0 ** 2 * 9), rtol=1e-6)

"""Restoration corruptions: the fraction, size and strength they promise, seeded."""

import numpy as np
import pytest

from gen_jax.data import corruptions
from gen_jax.errors import UserError

GREY = np.full((20, 28, 28, 1), 128, np.uint8)


def test_gaussian_noise_has_the_requested_std_and_stays_8bit():
  noisy = corruptions.gaussian_noise(GREY, 0.1, np.random.default_rng(0))
  assert noisy.dtype == np.uint8
  difference = noisy.astype(np.float64) - 128
  np.testing.assert_allclose(difference.std(), 25.5, rtol=0.03)
  np.testing.assert_allclose(difference.mean(), 0.0, atol=0.5)


def test_salt_and_pepper_hits_the_requested_fraction_with_extremes():
  corrupted = corruptions.salt_and_pepper(GREY, 0.2, np.random.default_rng(1))
  changed = corrupted != 128
  np.testing.assert_allclose(changed.mean(), 0.2, atol=0.01)
  assert set(np.unique(corrupted[changed])) == {0, 255}
  np.testing.assert_allclose((corrupted == 255).mean(), 0.1, atol=0.01)


def test_masked_block_zeros_one_square_near_the_centre():
  corrupted = corruptions.masked_block(GREY, 8, np.random.default_rng(2))
  tops = set()
  for image in corrupted[..., 0]:
    rows, columns = np.nonzero(image == 0)
    assert len(rows) == 64
    assert rows.max() - rows.min() == 7 and columns.max() - columns.min() == 7
    assert abs(rows.min() - 10) <= 2 and abs(columns.min() - 10) <= 2  # centred: 10 +- 8 // 4
    tops.add(rows.min())
  assert len(tops) > 1  # the position varies
  with pytest.raises(UserError, match=r"eval.block_size=29 must be in \[1, 28\]"):
    corruptions.masked_block(GREY, 29, np.random.default_rng(0))


def test_corruptions_are_functions_of_the_seed():
  for name, value in (("gaussian_noise", 0.2), ("salt_and_pepper", 0.1), ("masked_block", 5)):
    fn = corruptions.CORRUPTIONS[name]
    first, again = (fn(GREY, value, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, fn(GREY, value, np.random.default_rng(8)))

"""Image corruptions for restoration experiments: uint8 [N, H, W, C] -> uint8, seeded.

Each takes a numpy Generator so a corruption is a function of its seed.
"""

import numpy as np


def gaussian_noise(images: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
  """x + 255 * std * n, n ~ N(0, 1) per sub-pixel, rounded and clipped to [0, 255]."""
  noisy = images.astype(np.float32) + 255.0 * std * rng.standard_normal(images.shape)
  return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def salt_and_pepper(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
  """Sets a `fraction` of pixels (all channels) to 0 or 255, each with probability 1/2."""
  num, height, width, _ = images.shape
  hit = rng.random((num, height, width, 1)) < fraction
  salt = rng.random((num, height, width, 1)) < 0.5
  return np.where(hit, np.where(salt, 255, 0), images).astype(np.uint8)


def masked_block(images: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  """Sets one size x size square per image, at a uniformly drawn position, to 0."""
  num, height, width, _ = images.shape
  if not 0 < size <= min(height, width):
    raise ValueError(f"block size {size} does not fit {height}x{width} images")
  tops = rng.integers(0, height - size + 1, num)
  lefts = rng.integers(0, width - size + 1, num)
  rows, columns = np.arange(height), np.arange(width)
  inside = ((rows[None, :, None] >= tops[:, None, None]) & (rows[None, :, None] < tops[:, None, None] + size)
            & (columns[None, None, :] >= lefts[:, None, None])
            & (columns[None, None, :] < lefts[:, None, None] + size))  # [N, H, W]
  return np.where(inside[..., None], 0, images).astype(np.uint8)


CORRUPTIONS = {"gaussian_noise": gaussian_noise, "salt_and_pepper": salt_and_pepper,
               "masked_block": masked_block}

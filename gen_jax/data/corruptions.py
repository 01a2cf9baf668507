"""Image corruptions for restoration experiments: uint8 [N, H, W, C] -> uint8, seeded.

Each takes a numpy Generator so a corruption is a function of its seed.
"""

import numpy as np

from gen_jax.errors import UserError


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
  """Sets one size x size square per image to 0, centred up to size // 4 pixels off centre.

  Near the centre, where centred datasets (MNIST, Fashion-MNIST) have their object: a
  block on the black background would leave the image unchanged.
  """
  num, height, width, _ = images.shape
  if not 0 < size <= min(height, width):
    raise UserError(f"eval.block_size={size} must be in [1, {min(height, width)}] for "
                    f"{height}x{width} images")
  jitter = size // 4
  tops = np.clip((height - size) // 2 + rng.integers(-jitter, jitter + 1, num), 0, height - size)
  lefts = np.clip((width - size) // 2 + rng.integers(-jitter, jitter + 1, num), 0, width - size)
  rows = np.arange(height)[None, :, None]  # [1, H, 1]
  columns = np.arange(width)[None, None, :]  # [1, 1, W]
  inside = ((rows >= tops[:, None, None]) & (rows < tops[:, None, None] + size)
            & (columns >= lefts[:, None, None]) & (columns < lefts[:, None, None] + size))
  return np.where(inside[..., None], 0, images).astype(np.uint8)  # inside: [N, H, W]


CORRUPTIONS = {"gaussian_noise": gaussian_noise, "salt_and_pepper": salt_and_pepper,
               "masked_block": masked_block}

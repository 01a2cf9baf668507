"""Ancestral sampling of autoregressive image models, and sample grids.

Naive sampling reruns the whole network once per sub-pixel, in raster order
(rows, then columns, then R -> G -> B). The sub-pixel at flat position
p = (i * W + j) * C + c is drawn with the key `fold_in(rng, p)`, so any other
sampler that draws the same position with the same key (a cached one, a
completion) gives the same image.
"""

import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


def sample_autoregressive(logits_fn: Callable[[jax.Array], jax.Array], rng: jax.Array,
                          images: jax.Array, *, start: int = 0) -> jax.Array:
  """Fills sub-pixels start.. of `images` in raster order by ancestral sampling.

  Args:
    logits_fn: uint8 [N, H, W, C] -> logits [N, H, W, C, L], raster-causal.
    rng: the sampling key; position p uses fold_in(rng, p).
    images: [N, H, W, C] uint8; positions < start are kept (completion),
      the rest are overwritten.
    start: the first flat position to sample.

  Returns:
    [N, H, W, C] uint8.
  """
  _, height, width, channels = images.shape

  def draw(position, images):
    row, rest = jnp.divmod(position, width * channels)
    column, channel = jnp.divmod(rest, channels)
    logits = logits_fn(images)[:, row, column, channel]  # [N, L]
    values = jax.random.categorical(jax.random.fold_in(rng, position), logits)  # [N]
    return images.at[:, row, column, channel].set(values.astype(images.dtype))

  return jax.lax.fori_loop(start, height * width * channels, draw, images)


def sample_autoregressive_cached(init_cache: Callable, logits_at: Callable, rng: jax.Array,
                                 images: jax.Array, *, start: int = 0,
                                 begin_row: Callable | None = None,
                                 begin_pixel: Callable | None = None) -> jax.Array:
  """`sample_autoregressive`, recomputing only the current pixel of every layer.

  Args:
    init_cache: images [N, H, W, C] -> the model's empty activation cache.
    logits_at: (cache, images, row, column) -> (logits [N, C, L] at that pixel, cache),
      called once per sub-pixel.
    rng, images, start: as for `sample_autoregressive`; position p draws with
      fold_in(rng, p), so both samplers give the same images for the same key.
    begin_row: optional (cache, images, row) -> cache, called before the row's
      first sub-pixel (the rows above it drawn): work a model does once per row.
    begin_pixel: optional (cache, images, row, column) -> cache, called before the
      pixel's first channel: work a model does once per pixel.
  With either hook the sampler runs as nested loops (rows, pixels, channels), so
  that a model's once-per-row or once-per-pixel work needs no `cond` in the step
  (XLA copies the buffers a `cond` passes through).
  """
  _, height, width, channels = images.shape

  def draw(position, carry):
    images, cache = carry
    row, rest = jnp.divmod(position, width * channels)
    column, channel = jnp.divmod(rest, channels)
    logits, cache = logits_at(cache, images, row, column)  # [N, C, L]
    values = jax.random.categorical(jax.random.fold_in(rng, position), logits[:, channel])
    observed = images[:, row, column, channel]
    values = jnp.where(position >= start, values.astype(images.dtype), observed)
    return images.at[:, row, column, channel].set(values), cache

  def units(first, count, body, carry):  # body over first .. first + count - 1
    if count == 1:
      return body(first, carry)
    return jax.lax.fori_loop(first, first + count, body, carry)

  body, per_unit = draw, 1  # the loop body, and the sub-pixels it draws
  if begin_pixel is not None:
    def pixel(index, carry):  # index = row * W + column
      images, cache = carry
      row, column = jnp.divmod(index, width)
      return units(index * channels, channels, draw,
                   (images, begin_pixel(cache, images, row, column)))

    body, per_unit = pixel, channels
  if begin_row is not None:
    inner, count = body, width * channels // per_unit

    def row_step(row, carry):
      images, cache = carry
      return units(row * count, count, inner, (images, begin_row(cache, images, row)))

    body, per_unit = row_step, width * channels
  images, _ = jax.lax.fori_loop(0, height * width * channels // per_unit, body,
                                (images, init_cache(images)))
  return images


def image_grid(images: np.ndarray, num_columns: int | None = None, padding: int = 1) -> np.ndarray:
  """[N, H, W, C] uint8 -> one [rows*(H+p)+p, cols*(W+p)+p, C] uint8 mosaic."""
  images = np.asarray(images)
  num, height, width, channels = images.shape
  num_columns = num_columns or int(np.ceil(np.sqrt(num)))
  num_rows = int(np.ceil(num / num_columns))
  grid = np.full((num_rows * (height + padding) + padding,
                  num_columns * (width + padding) + padding, channels), 255, np.uint8)
  for index in range(num):
    row, column = divmod(index, num_columns)
    top, left = padding + row * (height + padding), padding + column * (width + padding)
    grid[top:top + height, left:left + width] = images[index]
  return grid


def save_image_grid(path: str, images: np.ndarray, num_columns: int | None = None) -> None:
  """Writes a PNG mosaic of uint8 NHWC images (grayscale or RGB)."""
  grid = image_grid(images, num_columns)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)

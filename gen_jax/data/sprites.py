"""Procedural sprites with known generative factors (dSprites-like), from a seed.

Each image is one white sprite on black, binary ({0, 1} uint8, [S, S, 1]),
rendered from five independent factors, stored beside it as integer indices
('factors' [N, 5] int32, in FACTOR_NAMES order):

  shape     square, ellipse, heart                     (3 values)
  scale     linspace(0.5, 1, num_scales)                of the largest radius
  rotation  linspace(0, rotation_range, num_rotations)  degrees, endpoint excluded
  x, y      linspace(r + 1, S - r - 1, num_positions)   centre in pixels, r the
                                                        largest radius: every
                                                        sprite is whole, and
                                                        clear of the border

Every shape fits in the unit disk of its own frame, scaled by
scale * 0.2 * S pixels. A pixel is on when at least half of its 2 x 2
sub-pixel samples fall inside the shape. configs/beta_vae.py's rotation range
is 90 degrees, where no two rotations of the square give the same image
(dSprites' full turn makes square and ellipse rotations ambiguous).

Examples are distinct factor combinations drawn without replacement from the
whole product (so train and eval never share an image), deterministic from
`generator_seed`.
"""

import functools

import ml_collections
import numpy as np

from gen_jax.data.sources import DatasetSpec, Factors
from gen_jax.errors import UserError

FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")
SHAPE_NAMES = ("square", "ellipse", "heart")
MAX_RADIUS_FRACTION = 0.2  # largest sprite radius, as a fraction of the image side
SUPERSAMPLING = 2  # sub-pixel samples per side when rendering
# The keys of config.data.sprites (configs/beta_vae.py holds the values).
SETTINGS_KEYS = ("image_size", "num_scales", "num_rotations", "rotation_range", "num_positions",
                 "num_train_examples", "num_eval_examples", "generator_seed")


def factor_sizes(settings) -> tuple[int, ...]:
  """The number of values of each factor, in FACTOR_NAMES order."""
  return (len(SHAPE_NAMES), settings.num_scales, settings.num_rotations,
          settings.num_positions, settings.num_positions)


def check_settings(settings) -> None:
  if settings.image_size < 8:
    raise UserError(f"data.sprites.image_size={settings.image_size}: use at least 8 pixels")
  for key in ("num_scales", "num_rotations", "num_positions", "num_train_examples",
              "num_eval_examples"):
    if settings[key] < 1:
      raise UserError(f"data.sprites.{key}={settings[key]} must be at least 1")
  if not 0 < settings.rotation_range <= 360:
    raise UserError(f"data.sprites.rotation_range={settings.rotation_range}: use (0, 360] degrees")
  total = int(np.prod(factor_sizes(settings)))
  wanted = settings.num_train_examples + settings.num_eval_examples
  if wanted > total:
    raise UserError(f"data.sprites asks for {wanted} train + eval examples but its factors "
                    f"give only {total} distinct images; lower the counts or add factor values")


def factor_values(settings) -> dict[str, np.ndarray]:
  """Index -> physical value of each continuous factor (scale, degrees, pixels)."""
  max_radius = MAX_RADIUS_FRACTION * settings.image_size
  positions = np.linspace(max_radius + 1, settings.image_size - max_radius - 1,
                          settings.num_positions)
  return {
      "scale": np.linspace(0.5, 1.0, settings.num_scales),
      "rotation": np.linspace(0.0, settings.rotation_range, settings.num_rotations,
                              endpoint=False),
      "x": positions,
      "y": positions,
  }


def inside_shape(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Whether points (u, v) of a sprite's own frame (v up, unit disk) are inside.

    square (0)   max(|u|, |v|) <= 0.7
    ellipse (1)  u^2 + (v / 0.5)^2 <= 1
    heart (2)    (a^2 + b^2 - 1)^3 <= a^2 b^3,  a = 1.25 u, b = 1.25 v + 0.25

  (the heart curve spans a in [-1.14, 1.14], b in [-1, 1.24]: shifted and
  shrunk to lie in the unit disk).
  """
  if shape == 0:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.7
  if shape == 1:
    return u ** 2 + (v / 0.5) ** 2 <= 1.0
  a, b = 1.25 * u, 1.25 * v + 0.25
  return (a ** 2 + b ** 2 - 1.0) ** 3 <= a ** 2 * b ** 3


def render(factors: np.ndarray, settings) -> np.ndarray:
  """[N, 5] factor indices -> [N, S, S, 1] uint8 binary images."""
  size, values, k = settings.image_size, factor_values(settings), SUPERSAMPLING
  coords = (np.arange(size)[:, None] + (np.arange(k) + 0.5) / k).reshape(-1)  # [S*k] sample points
  radius = values["scale"][factors[:, 1]] * MAX_RADIUS_FRACTION * size  # [N] pixels
  angle = np.deg2rad(values["rotation"][factors[:, 2]])  # [N]
  cos, sin = (np.float32(np.cos(angle) / radius)[:, None, None],
              np.float32(np.sin(angle) / radius)[:, None, None])
  dx = np.float32(coords[None, None, :] - values["x"][factors[:, 3], None, None])  # [N, 1, S*k]
  dy = np.float32(values["y"][factors[:, 4], None, None] - coords[None, :, None])  # [N, S*k, 1] up
  u = cos * dx + sin * dy  # rotated by -angle, in units of the radius: [N, S*k, S*k]
  v = cos * dy - sin * dx
  hits = np.zeros(u.shape, bool)
  for shape in range(len(SHAPE_NAMES)):
    rows = factors[:, 0] == shape
    hits[rows] = inside_shape(shape, u[rows], v[rows])
  coverage = hits.reshape(len(factors), size, k, size, k).mean(axis=(2, 4))  # [N, S, S]
  return (coverage >= 0.5).astype(np.uint8)[..., None]


def draw_factors(settings) -> tuple[np.ndarray, np.ndarray]:
  """(train, eval) [N, 5] int32 factor indices: distinct combinations, from the seed."""
  sizes = factor_sizes(settings)
  rng = np.random.default_rng([settings.generator_seed, 0x5971])
  num_train, num_eval = settings.num_train_examples, settings.num_eval_examples
  flat = rng.choice(int(np.prod(sizes)), num_train + num_eval, replace=False)
  factors = np.stack(np.unravel_index(flat, sizes), axis=-1).astype(np.int32)
  return factors[:num_train], factors[num_train:]


def render_in_chunks(factors: np.ndarray, settings, chunk: int = 512) -> np.ndarray:
  return np.concatenate([render(factors[i:i + chunk], settings)
                         for i in range(0, len(factors), chunk)] or
                        [np.zeros((0, settings.image_size, settings.image_size, 1), np.uint8)])


@functools.lru_cache(maxsize=4)
def _generate(key: tuple) -> tuple[dict, dict]:
  settings = ml_collections.ConfigDict(dict(key))
  splits = tuple({"image": render_in_chunks(factors, settings), "factors": factors}
                 for factors in draw_factors(settings))
  for split in splits:  # shared by every caller: read-only
    for array in split.values():
      array.setflags(write=False)
  return splits


def sprites_settings(data_config):
  """config.data.sprites, checked."""
  settings = data_config.get("sprites", None)
  if not settings:
    raise UserError("data.name=sprites needs a data.sprites block (configs/beta_vae.py has one)")
  missing = [key for key in SETTINGS_KEYS if key not in settings]
  if missing:
    raise UserError(f"data.sprites lacks {', '.join(missing)} (configs/beta_vae.py sets them)")
  check_settings(settings)
  return settings


def load(data_config) -> tuple[dict, dict]:
  """(train, eval) feature dicts {'image' [N, S, S, 1] uint8, 'factors' [N, 5] int32}."""
  settings = sprites_settings(data_config)
  train, evaluation = _generate(tuple(sorted(settings.to_dict().items())))
  return dict(train), dict(evaluation)  # fresh dicts over the cached arrays


def sprites_spec(data_config) -> DatasetSpec:
  settings = sprites_settings(data_config)
  size = settings.image_size
  return DatasetSpec(
      image_shape=(size, size, 1), num_levels=2, num_classes=0,
      features={"image": ((size, size, 1), "uint8"), "factors": ((len(FACTOR_NAMES),), "int32")},
      load=load,
      factors=Factors(FACTOR_NAMES, factor_sizes(settings)))

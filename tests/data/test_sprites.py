"""Sprites: deterministic from the seed, and every factor can be read back from the pixels."""

import ml_collections
import numpy as np
import pytest

from conftest import load_config
from gen_jax import data
from gen_jax.data import sprites
from gen_jax.errors import UserError


def small_settings(**overrides):
  """configs/beta_vae.py's data.sprites with smaller splits."""
  settings = ml_collections.ConfigDict(load_config("beta_vae.py").data.sprites.to_dict())
  settings.num_train_examples, settings.num_eval_examples = 600, 200
  settings.update(overrides)
  return settings


def test_generation_is_a_function_of_the_seed():
  settings = small_settings()
  train_a, eval_a = sprites.draw_factors(settings)
  train_b, eval_b = sprites.draw_factors(settings)
  np.testing.assert_array_equal(train_a, train_b)
  np.testing.assert_array_equal(sprites.render(eval_a[:50], settings),
                                sprites.render(eval_b[:50], settings))
  other, _ = sprites.draw_factors(small_settings(generator_seed=1))
  assert not np.array_equal(train_a, other)
  # Distinct combinations, within range, and no image shared by train and eval.
  both = np.concatenate([train_a, eval_a])
  assert len(np.unique(both, axis=0)) == len(both)
  assert np.all(both >= 0) and np.all(both < np.array(sprites.factor_sizes(settings)))


def test_every_factor_is_recoverable_from_the_image():
  settings = small_settings()
  factors, _ = sprites.draw_factors(settings)
  images = sprites.render(factors, settings)[..., 0].astype(np.float64)  # [N, S, S]
  assert set(np.unique(images)) == {0.0, 1.0}
  values = sprites.factor_values(settings)
  rows, columns = np.mgrid[:settings.image_size, :settings.image_size] + 0.5  # pixel centres
  mass = images.sum(axis=(1, 2))
  assert mass.min() > 0
  centre_x = (images * columns).sum(axis=(1, 2)) / mass
  centre_y = (images * rows).sum(axis=(1, 2)) / mass
  # The centre of mass follows x and y (each shape is near-centred in its frame) ...
  assert np.abs(centre_x - values["x"][factors[:, 3]]).max() < 1.0
  assert np.abs(centre_y - values["y"][factors[:, 4]]).max() < 1.0
  # ... and never touches the border: every sprite is whole.
  assert images[:, [0, -1], :].sum() == 0 and images[:, :, [0, -1]].sum() == 0
  # The area grows as scale^2: area / scale^2 is the same for every scale of one shape.
  for shape in range(3):
    pick = factors[:, 0] == shape
    normalised = mass[pick] / values["scale"][factors[pick, 1]] ** 2
    assert normalised.std() / normalised.mean() < 0.1
  assert np.mean(mass[factors[:, 0] == 0]) > np.mean(mass[factors[:, 0] == 1])  # square > ellipse
  # The rotation: the principal axis of the largest ellipses (from second moments,
  # y pointing up) is nearest to their own rotation angle.
  pick = (factors[:, 0] == 1) & (factors[:, 1] == settings.num_scales - 1)
  dx = columns[None] - centre_x[pick, None, None]
  dy = -(rows[None] - centre_y[pick, None, None])
  weights = images[pick]
  mu20, mu02 = (weights * dx ** 2).sum(axis=(1, 2)), (weights * dy ** 2).sum(axis=(1, 2))
  mu11 = (weights * dx * dy).sum(axis=(1, 2))
  orientation = np.rad2deg(0.5 * np.arctan2(2 * mu11, mu20 - mu02))
  error = (orientation - values["rotation"][factors[pick, 2]] + 90) % 180 - 90
  step = settings.rotation_range / settings.num_rotations
  assert pick.sum() > 10 and np.abs(error).max() < step / 2, np.abs(error).max()


def test_registered_dataset_loads_through_the_data_layer():
  config = ml_collections.ConfigDict({"name": "sprites", "max_train_examples": 0,
                                      "max_eval_examples": 50,
                                      "sprites": small_settings(image_size=16)})
  spec = data.get_spec(config)
  assert spec.image_shape == (16, 16, 1) and spec.num_levels == 2
  assert spec.example_features() == {"image": ((16, 16, 1), "uint8"), "factors": ((5,), "int32")}
  assert spec.factors.sizes == (3, 6, 10, 16, 16)
  train, evaluation = data.load_splits(config)
  assert len(train) == 600 and len(evaluation) == 50
  assert train.images.dtype == np.uint8 and train.features["factors"].dtype == np.int32
  batch = data.TrainBatches(train, global_batch_size=8, seed=0)(3)
  np.testing.assert_array_equal(
      batch["image"], sprites.render(batch["factors"], config.sprites))


@pytest.mark.parametrize("overrides,message", [
    (dict(num_train_examples=50_000), "only 46080 distinct images"),
    (dict(rotation_range=0.0), "rotation_range"),
    (dict(num_positions=0), "num_positions"),
    (dict(image_size=4), "image_size"),
])
def test_bad_settings_are_user_errors(overrides, message):
  with pytest.raises(UserError, match=message):
    sprites.check_settings(small_settings(**overrides))


def test_a_missing_block_or_key_is_a_user_error_naming_it():
  config = ml_collections.ConfigDict({"name": "sprites", "max_train_examples": 0,
                                      "max_eval_examples": 0})
  with pytest.raises(UserError, match="needs a data.sprites block"):
    data.get_spec(config)
  settings = small_settings().to_dict()
  del settings["generator_seed"]
  config.sprites = settings
  with pytest.raises(UserError, match="data.sprites lacks generator_seed"):
    data.get_spec(config)

"""The labelled subset: exactly N examples, balanced, from the seed; hidden labels stay hidden."""

import ml_collections
import numpy as np
import pytest

from gen_jax import config_defaults, data
from gen_jax.data import semi_supervised
from gen_jax.errors import UserError


def toy_split(num=300, num_classes=10, seed=0):
  """Images that encode their own index (so they can be traced), random labels."""
  labels = np.random.default_rng(seed).integers(0, num_classes, num)
  images = np.zeros((num, 2, 2, 1), np.uint8)
  images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(num) // 256, np.arange(num) % 256
  return images, labels


def index_of(images):
  return images[:, 0, 0, 0].astype(int) * 256 + images[:, 0, 1, 0]


@pytest.mark.parametrize("num_labelled", [10, 50])
def test_labelled_subset_is_exactly_n_balanced_and_seeded(num_labelled):
  _, labels = toy_split()
  chosen = semi_supervised.select_labelled(labels, num_labelled, 10, seed=3)
  assert len(chosen) == num_labelled == len(np.unique(chosen))
  np.testing.assert_array_equal(np.bincount(labels[chosen], minlength=10),
                                np.full(10, num_labelled // 10))
  np.testing.assert_array_equal(chosen, semi_supervised.select_labelled(labels, num_labelled, 10, 3))
  assert not np.array_equal(chosen, semi_supervised.select_labelled(labels, num_labelled, 10, 4))


def test_training_split_hides_every_other_label_and_mixes_the_fraction():
  images, labels = toy_split()
  chosen = semi_supervised.select_labelled(labels, 20, 10, seed=0)
  features = semi_supervised.training_features(images, labels, chosen, 0.5, seed=0)
  index, is_labelled = index_of(features["image"]), features["labelled"] > 0
  # Labelled rows are exactly the chosen images, each with its own label ...
  assert set(index[is_labelled]) == set(chosen)
  np.testing.assert_array_equal(features["label"][is_labelled], labels[index[is_labelled]])
  # ... every other image appears once, unlabelled, with its label hidden.
  np.testing.assert_array_equal(np.sort(index[~is_labelled]), np.setdiff1d(np.arange(300), chosen))
  assert np.all(features["label"][~is_labelled] == -1)
  # 280 unlabelled, 20 labelled repeated round(280 / 20) = 14 times: half labelled.
  assert is_labelled.sum() == 280 and is_labelled.mean() == 0.5
  assert 0.3 < is_labelled[:100].mean() < 0.7  # shuffled, not two blocks


def test_registered_dataset_reads_the_base_dataset(tiny_idx):
  idx_dir, data_dir, arrays = tiny_idx
  config = config_defaults.base_config().data
  config.update(dict(name="semi_supervised", base_name="fashion_mnist", num_labelled=10,
                     labelled_fraction=0.5, label_seed=0))
  config.idx_dir, config.data_dir = idx_dir, data_dir
  spec = data.get_spec(config)
  assert spec.num_classes == 10 and spec.example_features()["labelled"] == ((), "float32")
  train, evaluation = data.load_splits(config)
  is_labelled = train.features["labelled"] > 0
  assert len(np.unique(train.images[is_labelled], axis=0)) == 10
  counts = np.bincount(train.labels[is_labelled], minlength=10)  # one image a class, repeated
  assert len(counts) == 10 and np.all(counts == counts[0])
  assert (~is_labelled).sum() == len(arrays["train"][0]) - 10
  assert len(evaluation) == len(arrays["test"][0]) and evaluation.labels.min() >= 0


@pytest.mark.parametrize("overrides,message", [
    (dict(num_labelled=15), "multiple of the 10 classes"),
    (dict(num_labelled=400), "needs 40 examples of class"),
    (dict(labelled_fraction=1.0), "labelled_fraction"),
    (dict(base_name=""), "needs data.base_name"),
])
def test_bad_settings_are_user_errors(overrides, message):
  images, labels = toy_split()
  config = ml_collections.ConfigDict({"name": "semi_supervised", "base_name": "fashion_mnist",
                                      "num_labelled": 20, "labelled_fraction": 0.5,
                                      "label_seed": 0})
  config.update(overrides)
  with pytest.raises(UserError, match=message):
    semi_supervised.check_settings(config)
    semi_supervised.base_config(config)
    semi_supervised.select_labelled(labels, config.num_labelled, 10, 0)


@pytest.mark.parametrize("key", ["base_name", "num_labelled", "labelled_fraction", "label_seed"])
def test_a_missing_key_is_a_user_error_naming_it(key):
  settings = {"name": "semi_supervised", "base_name": "fashion_mnist", "num_labelled": 20,
              "labelled_fraction": 0.5, "label_seed": 0}
  del settings[key]
  with pytest.raises(UserError, match=f"needs data.{key} "):
    data.get_spec(ml_collections.ConfigDict(settings))


@pytest.mark.parametrize("num_labelled", [10, 20])
def test_an_epoch_of_the_sampler_adds_up_to_kingma_j_alpha(num_labelled):
  """Over one epoch of the trainer's batches, the M2 loss's rows sum to -J^alpha:
  each labelled image's bound once, alpha times the labelled set's mean
  cross-entropy, each unlabelled bound once (Kingma et al. 2014, eq. 9)."""
  import jax.numpy as jnp
  from gen_jax.data import pipeline
  from gen_jax.objectives import semi_supervised as objective
  images, labels = toy_split()
  chosen = semi_supervised.select_labelled(labels, num_labelled, 10, seed=0)
  features = semi_supervised.training_features(images, labels, chosen, 0.5, seed=0)
  split = pipeline.Split(features)
  batch_size = 20
  assert len(split) % batch_size == 0  # the drop-remainder epoch sees every row once
  batches = pipeline.TrainBatches(split, global_batch_size=batch_size, seed=5)
  alpha, k = 30.0, 10
  # Tag each image's terms so one epoch's sum can be read per image: L(x, y) = -1 at
  # the true class; log q(y|x) = -(1 + index / 1000) at it; unlabelled q(y|x)
  # one-hot so U = L = -2.
  bound_total = cross_entropy_total = unlabelled_total = 0.0
  per_image_cross_entropy = np.zeros(len(images))
  for step in range(batches.steps_per_epoch):
    batch = batches(step)
    index = index_of(batch["image"])
    known = np.clip(batch["label"], 0, k - 1)
    is_labelled = batch["labelled"] > 0
    target = jnp.asarray(np.where(is_labelled, 1.0 + index / 1000.0, 0.0))  # q one-hot if not
    class_log_probs = jnp.log(jnp.full((batch_size, k), 1e-9)).at[
        jnp.arange(batch_size), known].set(-target)
    bounds = jnp.where(jnp.asarray(is_labelled)[:, None], -1.0, -2.0) * jnp.ones((1, k))
    with_alpha = objective.semi_supervised_loss(bounds, class_log_probs, batch["label"],
                                                batch["labelled_weight"], alpha, num_labelled)
    no_alpha = objective.semi_supervised_loss(bounds, class_log_probs, batch["label"],
                                              batch["labelled_weight"], 0.0, num_labelled)
    bound_total += float(jnp.sum(jnp.where(is_labelled, no_alpha, 0.0)))
    unlabelled_total += float(jnp.sum(jnp.where(is_labelled, 0.0, no_alpha)))
    extra = np.asarray(with_alpha - no_alpha)
    cross_entropy_total += extra.sum()
    np.add.at(per_image_cross_entropy, index[is_labelled], extra[is_labelled])
  assert np.isclose(bound_total, num_labelled)  # sum_labelled -L = N_l x 1
  assert np.isclose(unlabelled_total, 2.0 * (len(images) - num_labelled), rtol=1e-4)
  # alpha E_labelled[-log q(y|x)]: each labelled image's cross-entropy weighs alpha / N_l.
  expected = alpha / num_labelled * (1.0 + chosen / 1000.0)
  np.testing.assert_allclose(per_image_cross_entropy[chosen], expected, rtol=1e-4)
  assert np.isclose(cross_entropy_total, alpha * np.mean(1.0 + chosen / 1000.0), rtol=1e-4)


def test_a_truncated_split_weighs_each_kept_labelled_image_once():
  images, labels = toy_split()
  chosen = semi_supervised.select_labelled(labels, 20, 10, seed=0)
  features = semi_supervised.training_features(images, labels, chosen, 0.5, seed=0, limit=97)
  assert len(features["labelled"]) == 97
  labelled = features["labelled"] > 0
  per_image = np.bincount(index_of(features["image"])[labelled],
                          weights=features["labelled_weight"][labelled])
  np.testing.assert_allclose(per_image[per_image > 0], 1.0, rtol=1e-6)
  assert np.all(features["labelled_weight"][~labelled] == 0)

"""Classification Accuracy Score: train on generated (x, y), test on real data."""

import json
import os

import jax
import numpy as np
import pytest

from gen_jax import config_defaults, data, runs, train
from gen_jax.applications import cas
from gen_jax.errors import UserError
from tests.conftest import smoke_config

# (config file, variant) of every class-conditional family's smoke run
CONDITIONAL_SMOKE_RUNS = [("dcgan.py", "conditional_smoke"), ("cvae.py", "smoke"),
                          ("gated_pixelcnn.py", "conditional_smoke"),
                          ("semi_supervised_vae.py", "smoke")]
NUM_CLASSES = 10


def test_the_generated_set_is_balanced_and_labelled_by_the_conditioning_labels():
  calls = []

  def generate(rng, labels):  # image i = its conditioning label, written into every pixel
    calls.append(labels.copy())
    return np.broadcast_to(labels[:, None, None, None], (len(labels), 2, 2, 1)).astype(np.uint8)

  labels = cas.balanced_labels(7, 3)
  images = cas.generate_labelled_set(generate, jax.random.key(0), labels, batch_size=4)
  np.testing.assert_array_equal(np.bincount(labels), [7, 7, 7])
  np.testing.assert_array_equal(images[:, 0, 0, 0], labels)  # every image is of its label
  assert all(len(call) == 4 for call in calls)  # one shape for every call (padded)
  np.testing.assert_array_equal(np.concatenate(calls)[:len(labels)], labels)


def test_balanced_subset_takes_n_of_each_class_without_replacement():
  labels = np.repeat(np.arange(4), [5, 9, 2, 6])
  chosen = cas.balanced_subset(labels, 3, 4, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[chosen]), [3, 3, 2, 3])  # class 2 has 2
  assert len(np.unique(chosen)) == len(chosen)


def bar_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """uint8 [N, 28, 28, 1]: class k is a bright bar on rows 2k+2..2k+3 over noise."""
  images = rng.integers(0, 80, (len(labels), 28, 28, 1))
  for i, label in enumerate(labels):
    images[i, 2 * label + 2:2 * label + 4] = 255
  return images.astype(np.uint8)


@pytest.fixture(scope="module")
def bar_data():
  rng = np.random.default_rng(0)
  train_labels, test_labels = (cas.balanced_labels(n, NUM_CLASSES) for n in (30, 20))
  return (data.image_split(bar_images(train_labels, rng), train_labels),
          data.image_split(bar_images(test_labels, rng), test_labels))


def tiny_trainer(num_steps: int = 60):
  config = cas.classifier_config(config_defaults.cas_config(), seed=0)
  with config.unlocked():
    config.model.features, config.model.feature_dim = 4, 16
    config.train.update(num_steps=num_steps, batch_size=32, eval_batch_size=100)
    config.train.warmup_steps, config.train.learning_rate = 2, 3e-3  # a seconds-long budget
  return cas.ClassifierTrainer(config, data.DatasetSpec(
      image_shape=(28, 28, 1), num_levels=256, num_classes=NUM_CLASSES))


def test_real_images_as_generated_data_score_like_real_data_and_noise_scores_chance(bar_data):
  train_split, test_split = bar_data
  trainer = tiny_trainer()

  def real_images_of_class(rng, labels):  # a "generator" that returns training images
    rows = np.random.default_rng(np.asarray(jax.random.key_data(rng))).integers(0, 30, len(labels))
    return train_split.images[labels * 30 + rows]  # train split is class-major, 30 each

  def noise(rng, labels):
    seed = np.asarray(jax.random.key_data(rng))
    return np.random.default_rng(seed).integers(0, 256, (len(labels), 28, 28, 1)).astype(np.uint8)

  settings = dict(num_per_class=20, sample_batch_size=64, augment_real_per_class=(2,))
  real_like, _ = cas.evaluate_generated_data(real_images_of_class, jax.random.key(1), train_split,
                                             test_split, trainer, **settings)
  noisy, _ = cas.evaluate_generated_data(noise, jax.random.key(1), train_split, test_split,
                                         trainer, **settings)
  assert real_like["real_accuracy"] > 0.9  # the task is learnable on this budget
  assert abs(real_like["cas_accuracy"] - real_like["real_accuracy"]) < 0.05
  assert noisy["cas_accuracy"] < 0.2  # chance is 0.1
  assert noisy["real_accuracy"] == real_like["real_accuracy"]  # same real set, same seed
  assert len(real_like["cas_per_class"]) == NUM_CLASSES
  (augment,) = real_like["augmentation"]
  assert augment["num_real"] == 2 * NUM_CLASSES
  assert augment["augmented_accuracy"] >= augment["real_accuracy"] - 0.05


def test_per_class_accuracy_counts_each_class_on_its_own_examples():
  labels = np.array([0, 0, 1, 1, 1, 2])
  predicted = np.array([0, 1, 1, 1, 0, 0])
  accuracy, per_class = cas.class_accuracies(predicted, labels, 4)
  assert accuracy == pytest.approx(3 / 6)
  np.testing.assert_allclose(per_class[:3], [0.5, 2 / 3, 0.0])
  assert np.isnan(per_class[3])


@pytest.mark.parametrize("filename,arg", CONDITIONAL_SMOKE_RUNS)
def test_conditional_families_sample_the_requested_labels(filename, arg, smoke_run):
  run = runs.load(smoke_run(filename, arg)[0])
  assert run.task.num_classes == NUM_CLASSES
  sample = jax.jit(run.task.sample, static_argnums=2)
  # Parameters moved away from a 4-step run: its zero-initialised likelihood heads (which
  # start at the uniform distribution) would pass the labels' effect on only faintly.
  leaves, treedef = jax.tree.flatten(run.state)
  noise = iter(jax.random.split(jax.random.key(7), len(leaves)))
  state = jax.tree.unflatten(treedef, [
      leaf + 0.3 * jax.random.normal(next(noise), leaf.shape, leaf.dtype)
      if jax.numpy.issubdtype(leaf.dtype, jax.numpy.floating) else leaf for leaf in leaves])
  key, num = jax.random.key(3), 4
  shirts, bags = (np.asarray(sample(state, key, num, np.full(num, k, np.int32)))
                  for k in (0, 8))
  assert shirts.shape == (num, *run.spec.image_shape) and shirts.dtype == np.uint8
  again = np.asarray(sample(state, key, num, np.full(num, 0, np.int32)))
  np.testing.assert_array_equal(shirts, again)
  # the same key with other labels: every image changes (the generator is fed the labels)
  assert all(np.any(a != b) for a, b in zip(shirts, bags))


def cas_config(filename: str, arg: str, tiny_idx, **cas_overrides):
  config = smoke_config(filename, arg, tiny_idx)
  with config.unlocked():
    config.cas.update(num_per_class=2, num_steps=3, batch_size=8, sample_batch_size=20,
                      augment_real_per_class=(1,), **cas_overrides)
  return config


@pytest.mark.slow
@pytest.mark.parametrize("filename,arg", CONDITIONAL_SMOKE_RUNS)
def test_mode_cas_end_to_end_on_smoke_runs(filename, arg, smoke_run, tiny_idx, tmp_path):
  workdir, _ = smoke_run(filename, arg)
  config = cas_config(filename, arg, tiny_idx, output_dir=str(tmp_path))
  metrics = train.run(config, workdir, mode="cas")["cas"]
  with open(tmp_path / "cas.json") as f:
    report = json.load(f)
  assert report["num_generated"] == 2 * NUM_CLASSES and report["num_per_class"] == 2
  assert 0 <= report["cas_accuracy"] <= 1 and 0 <= report["real_accuracy"] <= 1
  assert metrics["cas_accuracy"] == report["cas_accuracy"]
  assert len(report["cas_per_class"]) == NUM_CLASSES
  assert [a["real_per_class"] for a in report["augmentation"]] == [1]
  assert report["classifier"] == {"num_steps": 3, "batch_size": 8}
  assert os.path.isfile(os.path.join(workdir, "samples", f"cas_{report['step']}.png"))


@pytest.mark.parametrize("filename,key", [("dcgan.py", "model.class_conditional"),
                                          ("pixelcnn.py", "model.class_conditional")])
def test_an_unconditional_run_is_a_one_line_error_naming_the_key(filename, key, smoke_run,
                                                                 tiny_idx):
  workdir, _ = smoke_run(filename)
  with pytest.raises(UserError, match=key) as error:
    train.run(cas_config(filename, "smoke", tiny_idx), workdir, mode="cas")
  assert "\n" not in str(error.value)


def test_the_cas_classifier_is_configs_fmnist_classifier_with_the_cas_budget():
  from tests.conftest import load_config
  reference = load_config("fmnist_classifier.py")
  budget = load_config("cvae.py").cas
  config = cas.classifier_config(budget, seed=0)
  assert config.model.to_dict() == reference.model.to_dict()
  recipe = ("learning_rate", "lr_schedule", "warmup_steps", "final_lr_fraction", "adam_b1",
            "adam_b2", "weight_decay", "grad_clip_norm", "ema_decay", "compute_dtype",
            "grad_accum_steps")
  assert {k: config.train[k] for k in recipe} == {k: reference.train[k] for k in recipe}
  assert (config.train.num_steps, config.train.batch_size) == (budget.num_steps,
                                                               budget.batch_size)

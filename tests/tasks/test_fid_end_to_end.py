"""The FID classifier through the trainer: accuracy, the real-data floor, a DCGAN's FID/KID,
and the errors for a missing, foreign or untrained classifier."""

import json
import math
import os

import numpy as np
import pytest

from conftest import load_config
from gen_jax import train
from gen_jax.data import sources
from gen_jax.errors import UserError
from gen_jax.evaluation import fid
from gen_jax.tasks import classifier


def on_tiny_data(config, tiny_idx, num_steps=2):
  idx_dir, data_dir, _ = tiny_idx
  with config.unlocked():
    config.data.idx_dir, config.data.data_dir = idx_dir, data_dir
    config.train.num_steps, config.train.checkpoint_every = num_steps, num_steps
    config.train.eval_batch_size, config.train.progress_bar = 16, False
  return config


@pytest.fixture(scope="module")
def classifier_run(tiny_idx, tmp_path_factory):
  config = on_tiny_data(load_config("fmnist_classifier.py", "smoke"), tiny_idx)
  workdir = str(tmp_path_factory.mktemp("classifier"))
  return config, workdir, train.run(config, workdir)


def test_classifier_accuracy_and_the_real_data_floor(classifier_run, tiny_idx):
  config, workdir, results = classifier_run
  # The reported test accuracy is the fraction of test images the restored network
  # classifies right (40 images in eval batches of 16: the last one padded).
  network, num_classes = classifier.load_feature_network(workdir, min_accuracy=0.0,
                                                         image_shape=(28, 28, 1))
  images, labels = sources.read_split("fashion_mnist", "test", data_dir=config.data.data_dir,
                                      idx_dir=config.data.idx_dir)
  _, predicted = fid.image_features(network, images, batch_size=7)
  assert num_classes == 10
  np.testing.assert_allclose(results["eval"]["accuracy"], np.mean(predicted == labels), rtol=1e-6)

  floor = train.run(config, workdir, mode="fid_floor")["fid_floor"]
  assert floor["fid"] > 0 and math.isfinite(floor["kid"])
  fractions = [floor[f"class_fraction_{k}"] for k in range(10)]
  np.testing.assert_allclose(sum(fractions), 1.0)
  assert 0 <= floor["class_entropy"] <= math.log(10) + 1e-9
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert any(json.loads(line)["split"] == "fid_floor" for line in f)


def dcgan_config(tiny_idx, classifier_workdir, **eval_overrides):
  config = on_tiny_data(load_config("dcgan.py", "smoke"), tiny_idx)
  with config.unlocked():
    config.eval.classifier_workdir = classifier_workdir
    config.eval.min_classifier_accuracy = 0.0  # a 2-step classifier on random images
    config.eval.num_fid_samples, config.eval.kid_subsets, config.eval.kid_subset_size = 24, 3, 10
    for key, value in eval_overrides.items():
      config.eval[key] = value
  return config


def test_dcgan_eval_reports_fid_kid_and_the_class_histogram(classifier_run, tiny_idx, tmp_path):
  _, classifier_workdir, _ = classifier_run
  results = train.run(dcgan_config(tiny_idx, classifier_workdir), str(tmp_path / "dcgan"))
  metrics = results["eval"]
  assert metrics["fid"] > 0 and math.isfinite(metrics["kid"])
  np.testing.assert_allclose(sum(metrics[f"class_fraction_{k}"] for k in range(10)), 1.0)
  assert 0 <= metrics["class_entropy"] <= math.log(10) + 1e-9
  assert 0 <= metrics["real_accuracy"] <= 1 and 0 <= metrics["fake_accuracy"] <= 1


def test_missing_foreign_or_untrained_classifier_fails_before_training(
    classifier_run, tiny_idx, tmp_path):
  _, classifier_workdir, _ = classifier_run
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "config.json").write_text(json.dumps({"model": {"name": "dcgan"}}))
  cases = [
      (dict(classifier_workdir=str(tmp_path / "missing")), r"holds no classifier run"),
      (dict(classifier_workdir=str(foreign)), r"is a 'dcgan' run, not a 'classifier'"),
      (dict(classifier_workdir=classifier_workdir, min_classifier_accuracy=0.99),
       r"untrained or too weak .*eval.min_classifier_accuracy=0.99"),
  ]
  for overrides, message in cases:
    workdir = tmp_path / "gan"
    with pytest.raises(UserError, match=message):
      train.run(dcgan_config(tiny_idx, **overrides), str(workdir))
    assert not workdir.exists()  # no step was taken, nothing was written


@pytest.mark.parametrize("config_name", ["vae_mlp.py", "ae.py"])
def test_vae_and_autoencoder_samples_get_fid_only_with_a_classifier(
    config_name, classifier_run, tiny_idx, tmp_path):
  _, classifier_workdir, _ = classifier_run
  config = on_tiny_data(load_config(config_name, "smoke"), tiny_idx)
  assert not train.run(config, str(tmp_path / "plain"))["eval"].keys() & {"fid", "kid"}
  with config.unlocked():
    config.eval.classifier_workdir = classifier_workdir
    config.eval.min_classifier_accuracy = 0.0
    config.eval.num_fid_samples, config.eval.kid_subsets, config.eval.kid_subset_size = 24, 3, 10
  metrics = train.run(config, str(tmp_path / "scored"))["eval"]
  assert metrics["fid"] > 0 and math.isfinite(metrics["kid"])
  np.testing.assert_allclose(sum(metrics[f"class_fraction_{k}"] for k in range(10)), 1.0)

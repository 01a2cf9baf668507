"""M1+M2: M2 over a trained VAE's posterior (data.m1_workdir, tasks/m1_features.py)."""

import functools
import glob
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from conftest import load_config, provide_prerequisites, smoke_config
from gen_jax import data, parallel, runs, tasks, train
from gen_jax.data import semi_supervised, sources
from gen_jax.errors import UserError
from gen_jax.models.semi_supervised_vae import SemiSupervisedVAE
from gen_jax.tasks import m1_features
from gen_jax.tasks import semi_supervised_vae as task_module
from gen_jax.tasks.common import TrainState, module_functions

K, Z, D = 3, 2, 4


@pytest.fixture(scope="module", params=["m1m2_smoke", "m1m2_conv_smoke"])
def m1m2_config(request, smoke_run, tiny_idx):
  """configs/semi_supervised_vae.py:m1m2_smoke on the tiny data over vae_mlp's smoke run,
  and m1m2_conv_smoke over vae_conv's (a convolutional M1)."""
  config = smoke_config("semi_supervised_vae.py", request.param, tiny_idx)
  with config.unlocked():
    provide_prerequisites(config, smoke_run)
  return config


def test_features_are_the_restored_m1_encoders_posterior(m1m2_config):
  data_config = m1m2_config.data
  m1_config = runs.read_config(data_config.m1_workdir)
  task = tasks.create_task(m1_config, runs.dataset_spec(m1_config.data))
  state, _ = runs.restore_state(m1_config, data_config.m1_workdir, task=task)
  train_split, eval_split = data.load_splits(m1_config.data)
  expected = []  # the M1 encoder on its eval preprocessing of the same images
  for split in (train_split, eval_split):
    parts = [jax.device_get(task.posterior(state, batch["image"]))
             for batch in data.eval_batches(split, global_batch_size=m1_config.train.eval_batch_size,
                                            binarization=m1_config.data.binarization,
                                            seed=m1_config.seed)]
    expected.append([np.concatenate([p[i] for p in parts])[:len(split)] for i in (0, 1)])
  encoded = m1_features.encoded_splits(data_config)
  for (mean, log_variance), split in zip(expected, encoded):
    np.testing.assert_allclose(split["z1_mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split["z1_log_variance"], log_variance, rtol=1e-5, atol=1e-6)
  # The dataset: the eval split is the active units' posterior; training rows are images'.
  active = m1_features.selected_units(data_config)
  training, evaluation = m1_features.load_features(data_config)
  np.testing.assert_array_equal(evaluation["z1_mean"], encoded[1]["z1_mean"][:, active])
  np.testing.assert_array_equal(evaluation["z1_log_variance"],
                                encoded[1]["z1_log_variance"][:, active])
  rows = {row.tobytes() for row in encoded[0]["z1_mean"][:, active]}
  assert all(row.tobytes() in rows for row in training["z1_mean"])
  spec = train.dataset_spec(data_config)
  assert spec.m1.active_units == tuple(active) and spec.image_shape is None
  assert m1_config.model.architecture == data_config.m1_config[len("vae_"):-len(".py")]
  assert spec.example_features()["z1_mean"] == ((len(active),), "float32")


def test_active_units_are_the_means_that_vary_over_the_training_images():
  rng = np.random.default_rng(0)
  means = np.stack([np.full(1000, 3.0),                 # constant: inactive
                    0.05 * rng.standard_normal(1000),   # std 0.05: inactive
                    0.5 * rng.standard_normal(1000),    # std 0.5: active
                    rng.standard_normal(1000)], axis=1)
  np.testing.assert_array_equal(m1_features.active_units(means, 0.1), [2, 3])
  np.testing.assert_array_equal(m1_features.active_units(means, 0.0), [1, 2, 3])
  np.testing.assert_array_equal(m1_features.active_units(means[::-1], 0.1), [2, 3])  # order-free


def test_gaussian_feature_bound_matches_the_closed_form():
  """-U(z1) = -sum_y q(y|z1) (log N(z1; mu_y, var_y) - log K - KL_y - log q(y|z1)),
  class by class with the same noise, at the features' means."""
  create = lambda rngs: SemiSupervisedVAE(num_inputs=D, num_classes=K, latent_dim=Z, hidden=8,
                                          num_layers=2, rngs=rngs, gaussian_decoder=True)
  create_params, apply_fn = module_functions(create)
  params = jax.jit(create_params)(jax.random.key(0))
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(3), p.shape),
                        params)  # off the uniform start: a decoder that depends on y and z
  x = jax.random.normal(jax.random.key(1), (5, D))
  rng = jax.random.key(2)
  bounds_fn = functools.partial(task_module.every_class_bounds, apply_fn=apply_fn,
                                num_classes=K, gaussian=True)
  batch = {"z1_mean": x, "z1_log_variance": jnp.full((5, D), 7.0),  # eval ignores variances
           "label": jnp.array([0, 1, 2, 0, 1]), "mask": jnp.array([1.0, 1, 1, 1, 0])}
  class_means = jnp.stack([x[3], x[1], x[0] + 0.01])  # class 0 at row 3, 1 at row 1, 2 by row 0
  metrics = jax.jit(functools.partial(task_module.semi_supervised_vae_eval_step,
                                      bounds_fn=bounds_fn, class_means=class_means))(
      TrainState(jnp.zeros((), jnp.int32), params, None), batch, rng)
  assert set(metrics) == {"accuracy", "class_mean_accuracy", "z1_negative_elbo_nats",
                          "num_examples"}
  nearest = np.argmin(np.sum((np.asarray(x)[:, None] - np.asarray(class_means)) ** 2, -1), -1)
  assert list(nearest[:2]) == [2, 1] and nearest[3] == 0  # row 0 wrong, rows 1 and 3 right
  np.testing.assert_allclose(metrics["class_mean_accuracy"],
                             np.sum((nearest == np.asarray(batch["label"])) * batch["mask"]))
  log_q = jax.nn.log_softmax(apply_fn(params, x, method="classify"))  # [B, K]
  eps = jax.random.normal(rng, (5, K, Z))
  total = jnp.zeros(5)
  for y in range(K):
    labels = jnp.full((5,), y)
    mean, log_variance = apply_fn(params, x, labels, method="encode")
    z = mean + jnp.exp(0.5 * log_variance) * eps[:, y]
    mu, log_var = jnp.split(apply_fn(params, z, labels, method="decode"), 2, axis=-1)
    log_density = jnp.sum(norm.logpdf(x, mu, jnp.exp(0.5 * log_var)), -1)
    kl = 0.5 * jnp.sum(jnp.exp(log_variance) + mean ** 2 - 1 - log_variance, -1)
    total += jnp.exp(log_q[:, y]) * (log_density - math.log(K) - kl - log_q[:, y])
  mask = batch["mask"]
  np.testing.assert_allclose(metrics["z1_negative_elbo_nats"], -jnp.sum(total * mask), rtol=1e-5)
  np.testing.assert_allclose(metrics["accuracy"],
                             jnp.sum((jnp.argmax(log_q, -1) == batch["label"]) * mask))
  np.testing.assert_allclose(metrics["num_examples"], 4.0)


def test_class_means_are_the_labelled_images_features(m1m2_config):
  """The reference classifier's class means: per class, the mean of M1's posterior means
  over exactly the training images whose labels M2 sees, on the active units."""
  data_config = m1m2_config.data
  train_split, _ = m1_features.encoded_splits(data_config)
  active = m1_features.selected_units(data_config)
  training, _ = m1_features.load_features(data_config)
  labelled = training["labelled"] > 0
  expected = np.stack([training["z1_mean"][labelled & (training["label"] == k)].mean(0)
                       for k in range(10)])  # repeated copies of an image: the same mean
  means = m1_features.labelled_class_means(data_config)
  assert means.shape == (10, len(active))
  np.testing.assert_allclose(means, expected, rtol=1e-5, atol=1e-6)
  assert not np.allclose(means, train_split["z1_mean"][:, active].mean(0), atol=1e-3)


def test_fresh_gaussian_decoder_is_the_standard_normal():
  """Zeroed output layer: p(z1|y, z2) = N(0, I), log density -(|z1|^2 + D log 2 pi) / 2."""
  create_params, apply_fn = module_functions(
      lambda rngs: SemiSupervisedVAE(num_inputs=D, num_classes=K, latent_dim=Z, hidden=8,
                                     num_layers=1, rngs=rngs, gaussian_decoder=True),
      uniform_heads=("decoder.output", "classifier.output"))
  params = create_params(jax.random.key(0))
  x = jax.random.normal(jax.random.key(1), (3, D))
  bounds, class_log_probs = task_module.every_class_bounds(
      params, x, jax.random.key(2), apply_fn=apply_fn, num_classes=K, gaussian=True)
  mean, log_variance = apply_fn(params, x, method="encode_every_class")
  kl = 0.5 * jnp.sum(jnp.exp(log_variance) + mean ** 2 - 1 - log_variance, -1)  # [B, K]
  log_density = -0.5 * jnp.sum(x ** 2 + math.log(2 * math.pi), -1)[:, None]
  np.testing.assert_allclose(bounds, log_density - math.log(K) - kl, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(class_log_probs, -math.log(K), rtol=1e-6)


def test_an_m1m2_variant_without_m1_workdir_is_a_user_error():
  config = load_config("semi_supervised_vae.py", "m1m2_labels100")
  with pytest.raises(UserError, match=r"data\.m1_workdir is not set"):
    tasks.create_task(config, train.dataset_spec(config.data))


def test_m1_workdir_must_hold_a_vae_mlp_run(tmp_path):
  config = load_config("semi_supervised_vae.py", "m1m2_labels100")
  with config.unlocked():
    config.data.m1_workdir = str(tmp_path / "missing")
  with pytest.raises(UserError, match=r"data\.m1_workdir=.*holds no run"):
    train.dataset_spec(config.data)
  autoencoder = load_config("vae_mlp.py")
  with autoencoder.unlocked():
    autoencoder.model.name = "autoencoder"
  (tmp_path / "config.json").write_text(autoencoder.to_json())
  with config.unlocked():
    config.data.m1_workdir = str(tmp_path)
  with pytest.raises(UserError, match=r"data\.m1_workdir=.*'autoencoder' run, not an "
                                      r"unconditional VAE \(configs/vae_mlp\.py or"):
    train.dataset_spec(config.data)


@pytest.mark.parametrize("variant", ["m1m2_smoke", "m1m2_conv_smoke"])
def test_m1m2_smoke_run_reports_accuracy_and_a_feature_bound(smoke_run, variant):
  workdir, results = smoke_run("semi_supervised_vae.py", variant)
  metrics = results["eval"]
  assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["class_mean_accuracy"] <= 1
  assert math.isfinite(metrics["z1_negative_elbo_nats"])
  assert "bits_per_dim" not in metrics and "negative_elbo_nats" not in metrics
  stored = runs.read_config(workdir)
  assert stored.data.m1_workdir and stored.data.binarization == "none"
  assert glob.glob(os.path.join(workdir, "samples", "step_4.*"))  # the class grid
  run = runs.load(workdir)
  images = run.sample(10, jax.random.key(0))  # M1's decoder means, one column per class
  assert images.shape == (10, 28, 28, 1) and images.dtype == np.uint8


def test_m1m2_validation_is_the_encoded_tail_with_every_label_and_picks_a_step(
    m1m2_config, tmp_path, monkeypatch):
  """data.validation_fraction over M1's features: the validation split is M1's posterior of
  the training images' tail with all their labels, M2 trains on none of it, the test split
  is unchanged, M1 encodes each image once, and a run picking its step on validation
  accuracy on 2 devices keeps that state, which --mode eval reads."""
  whole_train, whole_test = m1_features.encoded_splits(m1m2_config.data)
  boundary = len(whole_train["label"]) - len(whole_train["label"]) // 4
  base = semi_supervised.base_config(m1m2_config.data)
  tail = sources.read_features(base, base.train_split)["image"][boundary:]
  m1 = m1_features.m1_run(m1m2_config.data.m1_workdir)
  tail_mean, _ = m1.posterior(tail)  # M1 on the tail alone
  encoded = []  # the number of images of each M1 encoding from here on
  monkeypatch.setattr(m1, "posterior", lambda images, encode=m1.posterior: (
      encoded.append(len(images)) or encode(images)))
  config = m1m2_config.copy_and_resolve_references()
  with config.unlocked():
    config.data.validation_fraction = 0.25
    config.train.select_metric, config.train.select_mode = "accuracy", "max"
  active = m1_features.selected_units(config.data)
  training, validation = m1_features.load_features(config.data, "validation")
  assert sorted(encoded) == sorted([boundary, len(tail)])  # the test split is not needed
  _, test = m1_features.load_features(config.data, "test")
  assert encoded[2:] == [len(whole_test["label"])]  # it is now, once
  np.testing.assert_array_equal(validation["z1_mean"], np.asarray(tail_mean)[:, active])
  np.testing.assert_array_equal(validation["label"], whole_train["label"][boundary:])
  np.testing.assert_array_equal(test["z1_mean"], whole_test["z1_mean"][:, active])
  held_out = {row.tobytes() for row in validation["z1_mean"]}
  kept = {row.tobytes() for row in whole_train["z1_mean"][:boundary][:, active]}
  trained = {row.tobytes() for row in training["z1_mean"]}
  assert trained <= kept and not held_out & trained
  labelled = {row.tobytes() for row in training["z1_mean"][training["label"] >= 0]}
  assert len(labelled) == config.data.num_labelled  # chosen among the kept images
  workdir = str(tmp_path / "picked")
  assert jax.device_count() >= 2, "conftest asks for 2 CPU devices"
  train.run(config, workdir, mesh=parallel.create_mesh(jax.devices()[:2]))
  accuracies = {r["step"]: r["accuracy"] for r in runs.read_metrics(workdir, "validation")}
  assert accuracies and not runs.read_metrics(workdir, "eval")
  best = max(accuracies, key=lambda step: (accuracies[step], -step))
  assert os.listdir(os.path.join(workdir, "best")) == [str(best)]
  output = str(tmp_path / "eval")
  train.run(config, workdir, mode="eval", output_dir=output)
  (record,) = runs.read_metrics(output, "eval")
  assert record["step"] == best  # the test split, scored at the picked step

"""The AR(p) task: gradient training recovers the OLS fit and the truth; forecast mode."""

import gzip
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gen_jax import tasks, train
from gen_jax.data import load_splits
from gen_jax.errors import UserError
from gen_jax.objectives import time_series


def ar_config(**train_overrides):
  config = load_config("ar_p.py")
  with config.unlocked():
    config.train.progress_bar = False
    for key, value in train_overrides.items():
      config.train[key] = value
  return config


def test_adam_recovers_the_ols_fit_and_the_truth():
  config = ar_config(num_steps=600, learning_rate=0.05, warmup_steps=10)
  with config.unlocked():
    config.data.window_length = 3  # p + 1: each window scores one step, each step once
  spec = train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  train_split, eval_split = load_splits(config.data)
  batch = {name: jnp.asarray(values) for name, values in train_split.features.items()}
  state = jax.jit(task.init)(jax.random.key(0), batch)
  step = jax.jit(task.train_step)
  for _ in range(config.train.num_steps):  # full batch: the exact conditional likelihood
    state, metrics = step(state, batch, jax.random.key(1))
  fitted = task.split_metrics(state, None, eval_split, None)
  ols = time_series.ols_fit(spec.series.values[:spec.series.boundary], 2)
  np.testing.assert_allclose([fitted["coefficient_1"], fitted["coefficient_2"]],
                             ols["coefficients"], atol=3e-3)
  np.testing.assert_allclose(fitted["intercept"], ols["intercept"], atol=5e-3)
  np.testing.assert_allclose(fitted["noise_std"], ols["noise_std"], atol=2e-3)
  assert fitted["max_coefficient_gap_true"] < 0.05  # 4000 steps: standard errors ~0.014
  # Held-out nll: the fit is as good as OLS, and both within 0.03 nats of the truth.
  sums = jax.jit(task.eval_step)(state, {**{k: jnp.asarray(v) for k, v in
                                            eval_split.features.items()},
                                         "mask": jnp.ones(len(eval_split))}, None)
  nll, ols_nll, true_nll = (float(sums[k] / sums["num_examples"])
                            for k in ("nll", "ols_nll", "true_nll"))
  np.testing.assert_allclose(nll, ols_nll, atol=1e-3)
  np.testing.assert_allclose(ols_nll, true_nll, atol=0.03)
  assert float(metrics["loss"]) > 0


def test_run_eval_samples_and_forecast_mode(tmp_path):
  workdir = str(tmp_path / "run")
  config = ar_config(num_steps=300, learning_rate=0.05, warmup_steps=10, log_every=100,
                     eval_every=0, checkpoint_every=300)
  results = train.run(config, workdir)
  assert abs(results["eval"]["nll"] - results["eval"]["true_nll"]) < 0.01
  assert results["eval"]["max_coefficient_gap_true"] < 0.03
  for suffix in ("png", "csv"):
    assert os.path.isfile(os.path.join(workdir, "samples", f"step_300.{suffix}"))
  forecast = train.run(config, workdir, mode="forecast")["forecast"]
  # The true model's k-step errors: sigma at k = 1, the stationary std at k = 40
  # (AR(2): gamma_0 = sigma^2 (1 - phi_2) / ((1 + phi_2)((1 - phi_2)^2 - phi_1^2))).
  stationary_std = np.sqrt(0.25 * 1.5 / (0.5 * (1.5 ** 2 - 0.75 ** 2)))
  np.testing.assert_allclose(forecast["true_rmse_step_1"], 0.5, atol=0.02)
  np.testing.assert_allclose(forecast["true_rmse_step_40"], stationary_std, atol=0.03)
  for prefix in ("", "true_", "ols_"):  # 90% intervals hold ~90% of 1000 held-out values
    assert abs(forecast[f"{prefix}coverage_step_1"] - 0.9) < 0.03
    assert abs(forecast[f"{prefix}mean_coverage"] - 0.9) < 0.03
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert any(json.loads(line)["split"] == "forecast" for line in f)
  with open(os.path.join(workdir, "samples", "forecast_300.csv")) as f:
    rows = f.read().splitlines()
  assert rows[0] == "k,mean,lower,upper,observed" and len(rows) == 41


FASHION_MNIST_TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def fit_full_batch(config, num_steps):
  """(task, state, eval split) after num_steps full-batch Adam steps on the training windows."""
  spec = train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  train_split, eval_split = load_splits(config.data)
  batch = {name: jnp.asarray(values) for name, values in train_split.features.items()}
  state = jax.jit(task.init)(jax.random.key(0), batch)
  step = jax.jit(task.train_step)
  for _ in range(num_steps):
    state, _ = step(state, batch, jax.random.key(1))
  return task, state, eval_split


@pytest.mark.skipif(not os.path.isfile(FASHION_MNIST_TEST_IMAGES),
                    reason="needs the dataset-fashion-mnist package's IDX files")
def test_the_fit_on_a_short_real_series_is_the_least_squares_fit(tmp_path):
  """250 real values (pixels 200..449 of the first Fashion-MNIST test image, raster
  order), the default 16-value windows: training scores each step once, so Adam's
  optimum is OLS (overlapping windows that score every position weigh the middle
  of the series up to 14x its ends: a weighted least squares 0.011 nats off here)."""
  with gzip.open(FASHION_MNIST_TEST_IMAGES) as f:
    pixels = np.frombuffer(f.read()[16:16 + 784], np.uint8)
  path = tmp_path / "series.csv"
  np.savetxt(path, pixels[200:450].astype(np.float64), fmt="%d")
  config = ar_config(num_steps=1500, learning_rate=0.05, warmup_steps=10)
  with config.unlocked():
    config.data.name, config.data.csv_file = "csv_series", str(path)
  task, state, eval_split = fit_full_batch(config, config.train.num_steps)
  sums = jax.jit(task.eval_step)(state, {**{k: jnp.asarray(v) for k, v in
                                            eval_split.features.items()},
                                         "mask": jnp.ones(len(eval_split))}, None)
  nll, ols_nll = (float(sums[k] / sums["num_examples"]) for k in ("nll", "ols_nll"))
  assert abs(nll - ols_nll) < 0.005, (nll, ols_nll)


def test_a_series_with_fewer_training_windows_than_the_batch_is_a_user_error(tmp_path):
  """250 values, 200 for training: 185 windows of 16, fewer than the default batch of 256."""
  path = tmp_path / "series.csv"
  np.savetxt(path, np.sin(np.arange(250) / 5.0))
  config = ar_config()
  with config.unlocked():
    config.data.name, config.data.csv_file = "csv_series", str(path)
  with pytest.raises(UserError, match=r"^train.batch_size=256 exceeds the 185 training "
                                      r".*at most 185$"):
    train.run(config, str(tmp_path / "run"))

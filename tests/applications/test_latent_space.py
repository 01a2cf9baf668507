"""The applications of latent-variable models (gen_jax/applications/): every --mode of
RUN_MODES on a VAE and a VQ-VAE smoke run, grids and PSNRs computed directly, the
traversal order, and the eval preprocessing they share."""

import dataclasses
import glob
import math
import os

import numpy as np
import pytest

from conftest import ImageRecorder, load_config
from gen_jax import applications, data, runs, train
from gen_jax.applications import latent_space
from gen_jax.data import corruptions
from gen_jax.errors import UserError
from gen_jax.objectives.likelihoods import to_uint8
from gen_jax.writers import MetricWriter

# (config, mode) -> the UserError a family without the mode's hooks or data gets
REFUSED = {
    ("vae_mlp.py", "forecast"): "needs an AR\\(p\\) run",
    ("vae_mlp.py", "fid_floor"): "needs a 'classifier' run",
    ("vae_mlp.py", "cas"): "class_conditional",
    ("vae_mlp.py", "complete"): "completion needs a model with complete",
    ("vqvae.py", "traverse"): "needs a model with posterior; vqvae has no posterior",
    ("vqvae.py", "forecast"): "needs an AR\\(p\\) run",
    ("vqvae.py", "fid_floor"): "needs a 'classifier' run",
    ("vqvae.py", "cas"): "class_conditional|conditional",
    ("vqvae.py", "complete"): "completion needs a model with complete",
}


@pytest.mark.parametrize("filename", ["vae_mlp.py", "vqvae.py"])
def test_every_run_mode_runs_or_refuses_in_one_line(filename, smoke_run, tmp_path):
  workdir, _ = smoke_run(filename)
  run = runs.load(workdir)
  run = dataclasses.replace(run, workdir=str(tmp_path))  # ood.json etc. go to tmp_path
  with run.config.unlocked():
    run.config.ood.sets, run.config.ood.num_examples = "noise,constant", 16
    run.config.ood.num_train_examples = 16
    if "attribute_from" in run.config.get("eval", {}):
      labels = run.eval_split().labels
      run.config.eval.attribute_from, run.config.eval.attribute_to = int(labels[0]), int(labels[1])
  writer = MetricWriter(str(tmp_path))
  for mode, application in applications.RUN_MODES.items():
    if (filename, mode) in REFUSED:
      with pytest.raises(UserError, match=REFUSED[filename, mode]):
        application(run, None, writer)
      continue
    metrics = application(run, None, writer)
    assert all(math.isfinite(value) for value in metrics.values()), (mode, metrics)
  writer.close()
  names = {os.path.basename(p) for p in glob.glob(str(tmp_path / "samples" / "*.png"))}
  step = run.step
  assert {f"reconstruct_{step}.png", f"interpolate_{step}.png", f"restore_{step}.png"} <= names


@pytest.mark.parametrize("filename", ["vqvae.py", "vqvae2.py"])
def test_vq_configs_write_out_the_settings_their_applications_had_by_default(filename):
  # Every latent-space and restore setting a VQ-VAE reads is in its config, at the value
  # it read from APPLICATION_DEFAULTS before (no traverse: VQ-VAE has no posterior).
  eval_config = load_config(filename).eval
  names = set(latent_space.APPLICATION_DEFAULTS) - {"traversal_limit", "traversal_steps"}
  assert set(eval_config) == names
  assert {name: eval_config[name] for name in names} == {
      name: latent_space.APPLICATION_DEFAULTS[name] for name in names}


def test_vq_reconstruct_reports_evals_psnr(smoke_run, tmp_path):
  """VQ-VAE's reconstruct grid and PSNR are eval's reconstructions (8-bit data)."""
  workdir, results = smoke_run("vqvae.py")
  run = runs.load(workdir)
  writer = MetricWriter(str(tmp_path))
  metrics = latent_space.reconstruct_mode(run, None, writer)
  writer.close()
  images = run.eval_split().images
  columns = latent_space.setting(run, "num_images")
  # reconstruct_mode reads the first eval.num_examples images (vqvae.py: 1000)
  assert run.config.eval.num_examples == 1000 and len(images) <= 1000
  assert metrics["psnr"] == pytest.approx(results["eval"]["psnr"], rel=1e-4)
  assert os.path.isfile(tmp_path / "samples" / f"reconstruct_{run.step}.png")
  np.testing.assert_array_equal(run.reconstruct(images[:columns]),
                                run.decode(run.encode(images[:columns])))


@pytest.mark.parametrize("filename", ["vae_mlp.py", "vqvae.py"])
def test_interpolation_rows_start_and_end_at_the_reconstructions(filename, smoke_run):
  """t = 0 and t = 1 decode z_a and z_b themselves: the reconstructions of a and b (up to
  one level: decode_latents and reconstruct are compiled apart), between the inputs."""
  run = runs.load(smoke_run(filename)[0])
  writer = ImageRecorder()
  latent_space.interpolate_mode(run, None, writer)
  steps = latent_space.setting(run, "interpolation_steps")
  pairs = latent_space.setting(run, "num_images")
  images = run.eval_split().images[:2 * pairs]
  grid = writer.images["interpolate"].reshape(pairs, steps + 2, *images.shape[1:])
  inputs = to_uint8(run.model_inputs(images), 0, run.image_levels - 1)
  np.testing.assert_array_equal(grid[:, 0], inputs[:pairs])
  np.testing.assert_array_equal(grid[:, -1], inputs[pairs:])
  reconstructions = run.reconstruct(images).astype(int)
  assert np.abs(grid[:, 1].astype(int) - reconstructions[:pairs]).max() <= 1
  assert np.abs(grid[:, -2].astype(int) - reconstructions[pairs:]).max() <= 1


def test_traversal_rows_vary_one_latent_each_in_kl_order():
  kl_order = [2, 0, 1]  # latent 2 carries the most information, latent 1 none
  means = np.broadcast_to(np.array([0.5, 0.0, -1.0]), (20, 3))
  log_variances = np.broadcast_to(np.log(np.array([0.5, 1.0, 0.1])), (20, 3))

  def decode(index, z):  # a 1 x 3 image whose pixel d shows z_d
    del index
    return np.round(np.clip((z + 2.5) / 5.0, 0.0, 1.0) * 255)[:, None, :, None].astype(np.uint8)

  grids, kl_per_latent = latent_space.traversal_grids(means, log_variances, decode, limit=2.5,
                                                      steps=5, num=2)
  assert len(grids) == 2 and grids[0].shape == (15, 1, 3, 1)
  pixels = grids[0][:, 0, :, 0].reshape(3, 5, 3).astype(int)  # [row, step, latent]
  expected_values = np.round(np.linspace(0, 1, 5) * 255)
  base = np.round(np.array([3.0, 2.5, 1.5]) / 5.0 * 255)
  for row, latent in enumerate(kl_order):
    np.testing.assert_array_equal(pixels[row, :, latent], expected_values)
    others = [d for d in range(3) if d != latent]
    np.testing.assert_array_equal(pixels[row][:, others], np.broadcast_to(base[others], (5, 2)))
  assert np.sum(kl_per_latent > 0.1) == 2
  np.testing.assert_allclose(kl_per_latent[1], 0.0, atol=1e-6)
def run_modes(config, workdir, modes):
  train.run(config, workdir)
  return {mode: train.run(config, workdir, mode=mode)[mode] for mode in modes}


def tiny_config(filename, tiny_idx, **model):
  """(config, first 16 eval images) of a :smoke config on the tiny data, 2 steps."""
  config = load_config(filename, "smoke")
  idx_dir, data_dir, _ = tiny_idx
  with config.unlocked():
    config.data.idx_dir, config.data.data_dir = idx_dir, data_dir
    config.train.num_steps, config.train.checkpoint_every = 2, 2
    config.train.eval_batch_size, config.train.progress_bar = 8, False
    config.eval.iwae_samples = 0
    for key, value in model.items():
      config.model[key] = value
  _, eval_split = data.load_splits(config.data)  # the trainer's order (not the IDX files')
  with config.unlocked():
    config.eval.attribute_from, config.eval.attribute_to = (int(v) for v in eval_split.labels[:2])
  return config, eval_split.images[:16]


def test_modes_write_grids_and_restore_reports_direct_psnr(tiny_idx, tmp_path):
  config, clean = tiny_config("cvae.py", tiny_idx)
  results = run_modes(config, str(tmp_path / "cvae"),
                      ("reconstruct", "interpolate", "attributes", "restore"))
  names = {os.path.basename(p) for p in glob.glob(str(tmp_path / "cvae" / "samples" / "*.png"))}
  source, target = config.eval.attribute_from, config.eval.attribute_to
  assert {"reconstruct_2.png", "interpolate_2.png", f"attributes_{source}_to_{target}_2.png",
          "restore_2.png"} <= names
  assert math.isfinite(results["reconstruct"]["psnr"])
  assert results["attributes"]["attribute_vector_norm"] >= 0
  # The corrupted-input PSNRs are those of the corruptions themselves, computed directly.
  direct = {
      "gaussian_noise": corruptions.gaussian_noise(clean, 0.2, np.random.default_rng([0, 0])),
      "salt_and_pepper": corruptions.salt_and_pepper(clean, 0.1, np.random.default_rng([0, 1])),
      "masked_block": corruptions.masked_block(clean, 10, np.random.default_rng([0, 2]))}
  for name, corrupted in direct.items():
    mse = ((clean.astype(np.float64) - corrupted) ** 2).reshape(16, -1).mean(1)
    np.testing.assert_allclose(results["restore"][f"{name}_psnr_corrupted"],
                               np.mean(10 * np.log10(255.0 ** 2 / mse)), rtol=1e-5)
    assert math.isfinite(results["restore"][f"{name}_psnr_restored"])


def test_autoencoder_modes_and_psnr(tiny_idx, tmp_path):
  config, _ = tiny_config("ae.py", tiny_idx, architecture="mlp")
  results = run_modes(config, str(tmp_path / "ae"), ("reconstruct", "attributes"))
  # reconstruct's PSNR covers the same images as eval (max_eval_examples 16 = num_examples).
  with config.unlocked():
    config.data.max_eval_examples = 16
  evaluated = train.run(config, str(tmp_path / "ae"), mode="eval")["eval"]
  np.testing.assert_allclose(results["reconstruct"]["psnr"], evaluated["psnr"], rtol=1e-4)
  assert 0 < evaluated["psnr"] < 40

"""beta-VAE task: MIG wired to the eval split's factors, the capacity schedule in training,
--mode traverse end to end (the traversal order: tests/applications/)."""

import glob
import math
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from conftest import load_config
from gen_jax import data, train
from gen_jax.data import sprites
from gen_jax.errors import UserError
from gen_jax.tasks import beta_vae


def sprite_split(num=300):
  settings = ml_collections.ConfigDict(load_config("beta_vae.py").data.sprites.to_dict())
  settings.image_size, settings.num_train_examples, settings.num_eval_examples = 16, 10, num
  config = ml_collections.ConfigDict({"name": "sprites", "max_train_examples": 0,
                                      "max_eval_examples": 0, "sprites": settings})
  return data.load_splits(config)[1]


def centre_of_mass_encoder(state, images, labels=None):
  """A 'posterior' whose means are the sprite's centre of mass (x, y) and a constant."""
  del state, labels
  images = images[..., 0].astype(jnp.float32)  # [B, S, S]
  grid = jnp.arange(images.shape[1], dtype=jnp.float32) + 0.5
  mass = images.sum((1, 2))
  x = (images * grid[None, None, :]).sum((1, 2)) / mass
  y = (images * grid[None, :, None]).sum((1, 2)) / mass
  means = jnp.stack([x, jnp.zeros_like(x), y], axis=-1)  # [B, 3]
  return means, jnp.zeros_like(means)


def test_mig_reads_the_factors_of_the_images_it_encodes():
  split = sprite_split()
  # Batches of 64 over 300 images: the padded last batch must not shift the rows.
  metrics = beta_vae.mig_metrics(None, None, split, None, posterior=centre_of_mass_encoder,
                                 batch_size=64, num_bins=20, num_examples=0,
                                 factor_names=sprites.FACTOR_NAMES, binarization="none", seed=0)
  assert metrics["mig_x"] > 0.7 and metrics["mig_y"] > 0.7
  assert max(metrics[f"mig_{name}"] for name in ("shape", "scale", "rotation")) < 0.15
  assert math.isclose(metrics["mig"], np.mean([metrics[f"mig_{n}"] for n in sprites.FACTOR_NAMES]))


def test_mig_at_every_eval_traces_the_posterior_once():
  """The task's posterior is compiled once, not once per eval (a new jit each call would
  retrace it every time)."""
  split, traces = sprite_split(), []

  def counting_posterior(state, images, labels=None):
    traces.append(images.shape)
    return centre_of_mass_encoder(state, images, labels)

  for _ in range(2):
    beta_vae.mig_metrics(None, None, split, None, posterior=counting_posterior, batch_size=64,
                         num_bins=20, num_examples=0, factor_names=sprites.FACTOR_NAMES,
                         binarization="none", seed=0)
  assert len(traces) == 1, traces


def test_capacity_run_trains_evaluates_mig_and_traverses(tmp_path):
  config = load_config("beta_vae.py", "capacity_smoke")
  with config.unlocked():
    config.train.num_steps, config.train.checkpoint_every, config.train.log_every = 4, 4, 4
    config.train.eval_batch_size, config.train.progress_bar = 16, False
  workdir = str(tmp_path / "run")
  results = train.run(config, workdir)
  # C(t) = 25 t / 10 at steps t = 0..3: the logged mean is 3.75 nats.
  assert math.isclose(results["train"]["capacity_nats"], 3.75, rel_tol=1e-6)
  assert 0 <= results["eval"]["mig"] <= 1 and "mig_rotation" in results["eval"]
  traversal = train.run(config, workdir, mode="traverse")["traverse"]
  assert 0 <= traversal["active_latents"] <= config.model.latent_dim
  paths = sorted(glob.glob(os.path.join(workdir, "samples", "traversal*_4.png")))
  assert len(paths) == config.eval.num_images
  size = config.data.sprites.image_size + 1  # one pixel of padding per image
  width, height = Image.open(paths[0]).size
  assert (height, width) == (config.model.latent_dim * size + 1,
                             config.eval.traversal_steps * size + 1)


def test_fid_settings_are_refused_not_dropped():
  # The beta-VAE's eval metric is MIG; a FID setting it would ignore is an error.
  config = load_config("beta_vae.py", "smoke")
  with config.unlocked():
    config.eval.classifier_workdir = "runs/clf"
  with pytest.raises(UserError, match="reports MIG at eval, not FID/KID"):
    beta_vae.check_beta_vae_config(config)

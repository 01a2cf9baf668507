"""beta-VAE (Higgins et al. 2017) on procedural sprites with known factors; MIG at eval.

  python -m gen_jax.main --config configs/beta_vae.py --workdir DIR           # beta = 4
  python -m gen_jax.main --config configs/beta_vae.py:beta1 --workdir DIR     # a plain VAE
  python -m gen_jax.main --config configs/beta_vae.py:capacity --workdir DIR  # Burgess et al.
  python -m gen_jax.main --config configs/beta_vae.py --workdir DIR --mode traverse

Sprites (gen_jax/data/sprites.py): 32x32 binary images of a square, ellipse or
heart with 6 scales, 10 rotations and 16 x 16 positions; the eval split's
factors give the Mutual Information Gap of the posterior means (`mig`).
"""

import ml_collections

from gen_jax import config_defaults

SMOKE = {  # a tiny model on small sprites
    "model.latent_dim": 4, "model.hidden_sizes": (32,), "model.features": 4,
    "model.capacity_steps": 10, "eval.iwae_chunk_size": 2, "eval.num_images": 4,
    "eval.num_examples": 16, "eval.interpolation_steps": 3,
    "data.sprites.image_size": 16, "data.sprites.num_train_examples": 256,
    "data.sprites.num_eval_examples": 64}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.data.name = "sprites"
  config.data.binarization = "none"  # the sprites are binary already
  config.data.sprites = ml_collections.ConfigDict()  # the generator's factors and splits
  config.data.sprites.image_size = 32
  config.data.sprites.num_scales = 6
  config.data.sprites.num_rotations = 10
  config.data.sprites.rotation_range = 90.0  # degrees
  config.data.sprites.num_positions = 16  # per axis
  config.data.sprites.num_train_examples = 20_000
  config.data.sprites.num_eval_examples = 2_000
  config.data.sprites.generator_seed = 0

  config.model.name = "beta_vae"
  config.model.architecture = "mlp"  # mlp | conv
  config.model.latent_dim = 10
  config.model.hidden_sizes = (512, 256)  # MLP layers (decoder: reversed)
  config.model.features = 32  # (conv only)
  config.model.likelihood = "bernoulli"  # the sprites are binary
  config.model.beta = 4.0  # with capacity_max > 0: gamma, the pressure towards C(t)
  config.model.capacity_max = 0.0  # nats; > 0: loss -log p(x|z) + beta |KL - C(t)|
  config.model.capacity_steps = 10_000  # C(t) grows linearly to capacity_max over these
  config.model.class_conditional = False
  config.model.code_ema_decay = 0.99  # (autoencoder only)

  # FID/KID of the samples (decoder means) at each eval; no classifier by default.
  config.eval = config_defaults.fid_config(classifier_workdir="")
  config.eval.iwae_samples = 0
  config.eval.iwae_chunk_size = 50
  config.eval.num_images = 3  # traversal grids written by --mode traverse
  config.eval.num_examples = 2000  # eval images behind the traversal order and the modes
  config.eval.interpolation_steps = 8
  config.eval.attribute_from = 0
  config.eval.attribute_to = 2
  config.eval.noise_std = 0.2  # restore: Gaussian noise std on [0, 1] intensities
  config.eval.salt_and_pepper_fraction = 0.1
  config.eval.block_size = 10  # restore: side of the zeroed square
  config.eval.mig_bins = 20  # equal-width bins per latent mean (Locatello et al. 2019)
  config.eval.mig_examples = 0  # eval images behind the MIG (0 = the whole eval split)
  config.eval.traversal_limit = 2.5  # latent values from -limit to +limit
  config.eval.traversal_steps = 9

  config.train.num_steps = 20_000
  config.train.batch_size = 64
  config.train.eval_batch_size = 500
  config.train.learning_rate = 5e-4
  config.train.eval_every = 2000
  config.train.sample_every = 5000
  return config_defaults.finalize(config, arg, {
      "smoke": config_defaults.smoke_variant(SMOKE), "beta1": beta1, "capacity": capacity,
      "capacity_smoke": config_defaults.smoke_variant(SMOKE, capacity)})


def beta1(config):
  config.model.beta = 1.0


def capacity(config):
  """Burgess et al. 2018: gamma = 1000, C from 0 to 25 nats."""
  config.model.beta = 1000.0
  config.model.capacity_max = 25.0

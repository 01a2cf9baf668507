"""Stage 2 of VQ-VAE: a Gated PixelCNN prior over the 7x7 codes of a trained configs/vqvae.py run.

  python -m gen_jax.main --config configs/vqvae.py --workdir workdirs/vqvae
  python -m gen_jax.main --config configs/vqvae_prior.py --workdir workdirs/vqvae_prior \
      --config.vqvae_workdir=workdirs/vqvae

The codes of the training and eval images are extracted once and cached in the
stage-1 workdir (codes/). Eval reports `bits_per_dim`, an upper bound on the
8-bit data's -log2 p(x) per dimension: (-log p(codes) - log p(x | codes)) / (D ln 2),
with its two parts `prior_bits_per_dim` and `decoder_bits_per_dim`. Samples are
codes drawn from the prior (cached sampler) and decoded by the stage-1 decoder.
configs/vqvae2_prior.py is the same with a prior per VQ-VAE-2 level.
"""

import ml_collections

from gen_jax import config_defaults

SMOKE = {
    "data.max_train_examples": 2000,  # extract the codes of a slice only
    "model.priors.latent.features": 16, "model.priors.latent.skip_features": 16,
    "model.priors.latent.head_features": 16, "model.priors.latent.embed_features": 8,
    "model.priors.latent.num_layers": 2, "model.priors.latent.first_kernel_size": 3}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.vqvae_workdir = ""  # the trained stage-1 run (required)
  config.vqvae_config = "vqvae.py"  # the config it should have been trained with (messages, tests)
  config.data.name = "vq_codes"  # the codes of the stage-1 run's data, extracted once
  config.data.vqvae_workdir = config.get_ref("vqvae_workdir")

  config.model.name = "vqvae_prior"
  # One Gated PixelCNN per level of codes (VQ-VAE has one).
  config.model.priors = ml_collections.ConfigDict()
  config.model.priors.latent = prior = ml_collections.ConfigDict()
  prior.features = 64
  prior.num_layers = 8
  prior.kernel_size = 3
  prior.first_kernel_size = 5
  prior.skip_features = 64
  prior.head_features = 128
  prior.embed_features = 32  # codes are embedded (categories, not intensities)
  prior.condition_features = 0  # the map of the coarser level's codes (0 = none)
  prior.condition_residual = 1

  config.train.num_steps = 2000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 50
  config.train.ema_decay = 0.995
  config.train.eval_every = 0
  config.train.sample_every = 0
  config.train.checkpoint_every = 500
  config.train.num_samples = 36
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

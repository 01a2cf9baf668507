"""Stage 2 of VQ-VAE-2: a prior over the 7x7 top codes and a prior over the 14x14 bottom
codes conditioned on the top ones, for a trained configs/vqvae2.py run.

  python -m gen_jax.main --config configs/vqvae2.py --workdir workdirs/vqvae2
  python -m gen_jax.main --config configs/vqvae2_prior.py --workdir workdirs/vqvae2_prior \
      --config.vqvae_workdir=workdirs/vqvae2

Both priors train together (disjoint parameters, summed NLL). Sampling draws
the top codes, then the bottom codes given them, and decodes both. Eval as in
configs/vqvae_prior.py, plus `top_bits_per_code` and `bottom_bits_per_code`.
"""

import ml_collections

from gen_jax import config_defaults

SMOKE = {
    "data.max_train_examples": 2000,  # extract the codes of a slice only
    "model.priors.top.features": 16, "model.priors.top.skip_features": 16,
    "model.priors.top.head_features": 16, "model.priors.top.embed_features": 8,
    "model.priors.top.num_layers": 2, "model.priors.top.first_kernel_size": 3,
    "model.priors.bottom.features": 16, "model.priors.bottom.skip_features": 16,
    "model.priors.bottom.head_features": 16, "model.priors.bottom.embed_features": 8,
    "model.priors.bottom.num_layers": 2, "model.priors.bottom.first_kernel_size": 3,
    "model.priors.bottom.condition_features": 8}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.vqvae_workdir = ""  # the trained stage-1 run (required)
  config.vqvae_config = "vqvae2.py"  # the config it should have been trained with (messages, tests)
  config.data.name = "vq_codes"  # the codes of the stage-1 run's data, extracted once
  config.data.vqvae_workdir = config.get_ref("vqvae_workdir")

  config.model.name = "vqvae2_prior"
  # One Gated PixelCNN per level of codes, coarsest first; the bottom one is
  # conditioned on the top codes.
  config.model.priors = ml_collections.ConfigDict()
  config.model.priors.top = top = ml_collections.ConfigDict()
  top.features = 64
  top.num_layers = 8
  top.kernel_size = 3
  top.first_kernel_size = 5
  top.skip_features = 64
  top.head_features = 128
  top.embed_features = 32  # codes are embedded (categories, not intensities)
  top.condition_features = 0  # the map of the coarser level's codes (0 = none)
  top.condition_residual = 1
  # 4x the positions of the top grid: a narrower, shallower bottom prior keeps a step
  # within about twice the top prior's cost on a CPU.
  config.model.priors.bottom = bottom = ml_collections.ConfigDict()
  bottom.features = 32
  bottom.num_layers = 6
  bottom.kernel_size = 3
  bottom.first_kernel_size = 5
  bottom.skip_features = 32
  bottom.head_features = 64
  bottom.embed_features = 32
  bottom.condition_features = 32  # the map of the top codes
  bottom.condition_residual = 1

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

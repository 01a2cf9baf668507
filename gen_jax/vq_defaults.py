"""Config keys the VQ experiments share (configs/vqvae*.py), next to config_defaults.

Kept out of config_defaults so that module stays what every family shares; this
one imports nothing heavier than ml_collections, like a config file.
"""

import ml_collections


def add_autoencoder_keys(config: ml_collections.ConfigDict) -> None:
  """Stage 1 (VQ-VAE and VQ-VAE-2): the autoencoder, the codebook and its training."""
  config.model.features = 64  # encoder / decoder width
  config.model.residual_hidden = 32
  config.model.num_residual = 2  # residual blocks per stack
  config.model.num_downsamples = 2  # 28 -> 7 (VQ-VAE-2: the bottom grid; the top is 2x coarser)
  config.model.embedding_dim = 32  # D
  config.model.codebook_size = 128  # K (every level)
  config.model.commitment_cost = 0.25  # beta
  config.model.codebook_update = "ema"  # ema | loss (||sg(z_e) - e||^2 by gradient)
  config.model.codebook_decay = 0.99  # EMA decay of the codebook's running counts and sums
  config.model.codebook_epsilon = 1e-5  # Laplace smoothing of the EMA counts
  config.model.kmeans_init = True  # codebook <- k-means of the first batch's encoder outputs
  config.model.kmeans_iterations = 10
  config.model.restart_dead_codes = True
  # A code is dead (and moved onto a random encoder output of the batch) when its
  # running count falls below this fraction of its share under uniform use.
  config.model.dead_code_fraction = 0.2

  config.train.num_steps = 2000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 50
  config.train.grad_clip_norm = 0.0
  config.train.eval_every = 0
  config.train.sample_every = 0
  config.train.checkpoint_every = 500
  config.train.num_samples = 16


def shrink_autoencoder_for_smoke(config: ml_collections.ConfigDict) -> None:
  config.model.features = 16
  config.model.residual_hidden = 8
  config.model.num_residual = 1
  config.model.embedding_dim = 8
  config.model.codebook_size = 16
  config.model.kmeans_iterations = 2


def add_prior_keys(config: ml_collections.ConfigDict, levels: tuple[str, ...],
                   vqvae_config: str) -> None:
  """Stage 2: Gated PixelCNN priors over the codes of a trained stage-1 run.

  `vqvae_workdir` (required) is the stage-1 run; `vqvae_config` names the
  config file it should have been trained with (for messages, and the smoke
  test trains that config first). Each level after the first is conditioned on
  the codes of the level before it (VQ-VAE-2: the bottom on the top).
  """
  config.vqvae_workdir = ""
  config.vqvae_config = vqvae_config
  config.data.name = "vq_codes"  # the codes of the stage-1 run's data, extracted once
  config.data.vqvae_workdir = config.get_ref("vqvae_workdir")
  config.model.priors = ml_collections.ConfigDict()
  for index, level in enumerate(levels):
    prior = ml_collections.ConfigDict()
    prior.features = 64
    prior.num_layers = 8
    prior.kernel_size = 3
    prior.first_kernel_size = 5
    prior.skip_features = 64
    prior.head_features = 128
    prior.embed_features = 32  # codes are embedded (categories, not intensities)
    prior.condition_features = 32 if index else 0  # the map of the coarser level's codes
    prior.condition_residual = 1
    config.model.priors[level] = prior

  config.train.num_steps = 2000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 50
  config.train.ema_decay = 0.995
  config.train.eval_every = 0
  config.train.sample_every = 0
  config.train.checkpoint_every = 500
  config.train.num_samples = 36


def shrink_prior_for_smoke(config: ml_collections.ConfigDict) -> None:
  config.data.max_train_examples = 2000  # extract the codes of a slice only
  for prior in config.model.priors.values():
    prior.features = prior.skip_features = prior.head_features = 16
    prior.embed_features = 8
    prior.num_layers = 2
    prior.first_kernel_size = 3
    if prior.condition_features:
      prior.condition_features = 8

"""VQ-VAE (van den Oord et al. 2017) on Fashion-MNIST: one 7x7 grid of codes.

Stage 1 of 2: the autoencoder and its codebook. Stage 2 (configs/vqvae_prior.py)
trains a Gated PixelCNN prior over its codes. configs/vqvae2.py is the same model
with two levels of codes.

  python -m gen_jax.main --config configs/vqvae.py --workdir workdirs/vqvae
  python -m gen_jax.main --config configs/vqvae.py --workdir workdirs/vqvae --mode reconstruct
"""

import ml_collections

from gen_jax import config_defaults

SMOKE = {"model.features": 16, "model.residual_hidden": 8, "model.num_residual": 1,
         "model.embedding_dim": 8, "model.codebook_size": 16, "model.kmeans_iterations": 2}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "vqvae"
  config.model.features = 64  # encoder / decoder width
  config.model.residual_hidden = 32
  config.model.num_residual = 2  # residual blocks per stack
  config.model.num_downsamples = 2  # 28 -> 7
  config.model.embedding_dim = 32  # D
  config.model.codebook_size = 128  # K
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

  # --mode reconstruct | interpolate | attributes | restore (applications/latent_space.py,
  # restoration.py); no traverse: VQ-VAE has no Gaussian posterior.
  config.eval = ml_collections.ConfigDict()
  config.eval.num_images = 10  # columns / rows of the application grids
  config.eval.num_examples = 1000  # test images behind the application metrics (0 = all)
  config.eval.interpolation_steps = 8  # interpolate: the encoder outputs z_e, decoded
  config.eval.attribute_from = 0  # Fashion-MNIST: T-shirt/top
  config.eval.attribute_to = 2  # Pullover (adds long sleeves)
  config.eval.noise_std = 0.2  # restore: Gaussian noise std on [0, 1] intensities
  config.eval.salt_and_pepper_fraction = 0.1
  config.eval.block_size = 10  # restore: side of the zeroed square
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

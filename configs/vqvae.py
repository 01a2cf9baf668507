"""VQ-VAE (van den Oord et al. 2017) on Fashion-MNIST: one 7x7 grid of codes.

Stage 1 of 2: the autoencoder and its codebook. Stage 2 (configs/vqvae_prior.py)
trains a Gated PixelCNN prior over its codes.

  python -m gen_jax.main --config configs/vqvae.py --workdir workdirs/vqvae
  python -m gen_jax.main --config configs/vqvae.py --workdir workdirs/vqvae --mode reconstruct
"""

from gen_jax import config_defaults, vq_defaults


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "vqvae"
  vq_defaults.add_autoencoder_keys(config)
  return config_defaults.finalize(config, arg, {"smoke": smoke})


def smoke(config):
  config_defaults.shrink_for_smoke(config)
  vq_defaults.shrink_autoencoder_for_smoke(config)

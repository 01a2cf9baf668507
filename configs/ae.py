"""Plain convolutional autoencoder on 8-bit Fashion-MNIST: squared error, reconstruction PSNR.

  python -m gen_jax.main --config configs/ae.py --workdir workdirs/ae
  python -m gen_jax.main --config configs/ae.py --workdir workdirs/ae --mode restore

Samples decode codes drawn from a Gaussian fitted to the training codes.
"""

from gen_jax import config_defaults, vae_config


def get_config(arg=None):
  config = vae_config.vae_config("autoencoder")
  config.model.architecture = "conv"
  config.model.latent_dim = 32
  config.model.hidden_sizes = (256,)
  config.model.features = 32

  config.train.num_steps = 10_000
  config.train.batch_size = 64
  config.train.eval_every = 2000
  config.train.sample_every = 2000
  return config_defaults.finalize(config, arg, {"smoke": vae_config.shrink_vae_for_smoke})

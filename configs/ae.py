"""Plain convolutional autoencoder on 8-bit Fashion-MNIST: squared error, reconstruction PSNR.

  python -m gen_jax.main --config configs/ae.py --workdir workdirs/ae
  python -m gen_jax.main --config configs/ae.py --workdir workdirs/ae --mode restore

Samples decode codes drawn from a Gaussian fitted to the training codes. The
keys not set here are configs/vae_mlp.py's.
"""

from gen_jax import config_defaults

vae_mlp = config_defaults.load_config_module(__file__, "vae_mlp.py")


def get_config(arg=None):
  config = vae_mlp.unlocked_config()
  config.data.binarization = "none"  # 8-bit intensities

  config.model.name = "autoencoder"
  config.model.architecture = "conv"
  config.model.latent_dim = 32
  config.model.hidden_sizes = (256,)  # the dense layer after the convs
  config.model.features = 32

  config.train.num_steps = 10_000
  config.train.batch_size = 64
  return config_defaults.finalize(config, arg, {"smoke": vae_mlp.smoke})

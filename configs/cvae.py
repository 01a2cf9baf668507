"""Conditional VAE p(x | z, y) on binarized Fashion-MNIST; sample grids have one row per class.

  python -m gen_jax.main --config configs/cvae.py --workdir workdirs/cvae

The keys not set here are configs/vae_mlp.py's.
"""

from gen_jax import config_defaults

vae_mlp = config_defaults.load_config_module(__file__, "vae_mlp.py")


def get_config(arg=None):
  config = vae_mlp.unlocked_config()
  config.model.latent_dim = 16
  config.model.class_conditional = True

  config.train.batch_size = 128
  config.train.num_samples = 100  # 10 per class
  return config_defaults.finalize(config, arg, {"smoke": smoke})


def smoke(config):
  vae_mlp.smoke(config)
  config.train.num_samples = 10  # one per class

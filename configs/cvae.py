"""Conditional VAE p(x | z, y) on binarized Fashion-MNIST; sample grids have one row per class.

  python -m gen_jax.main --config configs/cvae.py --workdir workdirs/cvae
"""

from gen_jax import config_defaults, vae_config


def get_config(arg=None):
  config = vae_config.vae_config("vae")
  config.model.architecture = "mlp"
  config.model.latent_dim = 16
  config.model.hidden_sizes = (512, 256)
  config.model.likelihood = "bernoulli"
  config.model.class_conditional = True
  config.data.binarization = "dynamic"

  config.train.num_steps = 10_000
  config.train.batch_size = 128
  config.train.eval_every = 2000
  config.train.sample_every = 2000
  config.train.num_samples = 100  # 10 per class
  return config_defaults.finalize(config, arg, {"smoke": smoke})


def smoke(config):
  vae_config.shrink_vae_for_smoke(config)
  config.train.num_samples = 10  # one per class

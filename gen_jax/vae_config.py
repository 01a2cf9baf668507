"""Config keys of the VAE / autoencoder family (configs/ae.py, vae_*.py, cvae.py).

`vae_config()` is `config_defaults.base_config()` plus the family's model and
eval keys; experiment files set their values and call `config_defaults.finalize`.
"""

import ml_collections

from gen_jax import config_defaults


def vae_config(name: str = "vae") -> ml_collections.ConfigDict:
  config = config_defaults.base_config()
  config.model.name = name  # vae | autoencoder
  config.model.architecture = "mlp"  # mlp | conv
  config.model.latent_dim = 32
  config.model.hidden_sizes = (512, 256)  # MLP layers (decoder: reversed); conv: the dense width
  config.model.features = 32  # conv: channels after the first conv (2x after the second)
  config.model.likelihood = "bernoulli"  # bernoulli | categorical | gaussian
  config.model.beta = 1.0  # weight of the KL term (beta-VAE for beta > 1)
  config.model.class_conditional = False  # CVAE: q(z|x, y), p(x|z, y)
  config.model.code_ema_decay = 0.99  # autoencoder: running code statistics for sampling

  config.eval = ml_collections.ConfigDict()
  config.eval.iwae_samples = 100  # k of the IWAE bound at each eval (0 = off; up to 5000)
  config.eval.iwae_chunk_size = 50  # importance samples decoded at once (memory)
  config.eval.num_images = 10  # columns / rows of the application grids
  config.eval.num_examples = 1000  # test images behind the application metrics (0 = all)
  config.eval.interpolation_steps = 8
  config.eval.attribute_from = 0  # Fashion-MNIST: T-shirt/top
  config.eval.attribute_to = 2  # Pullover (adds long sleeves)
  config.eval.noise_std = 0.2  # restore: Gaussian noise std on [0, 1] intensities
  config.eval.salt_and_pepper_fraction = 0.1
  config.eval.block_size = 10  # restore: side of the zeroed square
  # FID/KID of the samples (decoder means) at each eval, off until
  # --config.eval.classifier_workdir names a trained fmnist_classifier run.
  config.eval.update(config_defaults.fid_eval_config(""))
  return config


def shrink_vae_for_smoke(config: ml_collections.ConfigDict) -> None:
  """`config_defaults.shrink_for_smoke` plus a tiny model and a small IWAE k."""
  config_defaults.shrink_for_smoke(config)
  config.model.latent_dim = 4
  config.model.hidden_sizes = (32,)
  config.model.features = 4
  config.eval.iwae_samples = 5
  config.eval.iwae_chunk_size = 2
  config.eval.num_images = 4
  config.eval.num_examples = 16
  config.eval.interpolation_steps = 3

"""Conditional VAE p(x | z, y) on binarized Fashion-MNIST; sample grids have one row per class.

  python -m gen_jax.main --config configs/cvae.py --workdir workdirs/cvae

configs/vae_mlp.py with q(z|x, y), p(x|z, y) and a 16-dimensional latent.
"""

from gen_jax import config_defaults

SMOKE = {  # a tiny model, a small IWAE k, one sample per class
    "model.latent_dim": 4, "model.hidden_sizes": (32,), "model.features": 4,
    "eval.iwae_samples": 5, "eval.iwae_chunk_size": 2, "eval.num_images": 4,
    "eval.num_examples": 16, "eval.interpolation_steps": 3, "train.num_samples": 10}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.data.binarization = "dynamic"

  config.model.name = "vae"
  config.model.architecture = "mlp"
  config.model.latent_dim = 16
  config.model.hidden_sizes = (512, 256)  # MLP layers (decoder: reversed)
  config.model.features = 32  # (conv only)
  config.model.likelihood = "bernoulli"
  config.model.beta = 1.0
  config.model.class_conditional = True  # q(z|x, y), p(x|z, y)
  config.model.code_ema_decay = 0.99  # (autoencoder only)

  # FID/KID of the samples (decoder means) at each eval; no classifier by default.
  config.eval = config_defaults.fid_config(classifier_workdir="")
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

  config.train.num_steps = 10_000
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.eval_every = 2000
  config.train.sample_every = 2000
  config.train.num_samples = 100  # 10 per class
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

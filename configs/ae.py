"""Plain convolutional autoencoder on 8-bit Fashion-MNIST: squared error, reconstruction PSNR.

  python -m gen_jax.main --config configs/ae.py --workdir workdirs/ae
  python -m gen_jax.main --config configs/ae.py --workdir workdirs/ae --mode restore

Samples decode codes drawn from a Gaussian fitted to the training codes (running
moments with decay `model.code_ema_decay`). The keys are the VAE family's
(configs/vae_mlp.py); the autoencoder does not read model.likelihood, beta,
class_conditional or eval.iwae_*.
"""

from gen_jax import config_defaults

SMOKE = {  # a tiny model
    "model.latent_dim": 4, "model.hidden_sizes": (32,), "model.features": 4,
    "eval.iwae_samples": 5, "eval.iwae_chunk_size": 2, "eval.num_images": 4,
    "eval.num_examples": 16, "eval.interpolation_steps": 3}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.data.binarization = "none"  # 8-bit intensities

  config.model.name = "autoencoder"
  config.model.architecture = "conv"
  config.model.latent_dim = 32
  config.model.hidden_sizes = (256,)  # the dense layer after the convs
  config.model.features = 32  # channels after the first conv (2x after the second)
  config.model.likelihood = "bernoulli"
  config.model.beta = 1.0
  config.model.class_conditional = False
  config.model.code_ema_decay = 0.99  # running code statistics for sampling

  # FID/KID of the samples at each eval; no classifier by default.
  config.eval = config_defaults.fid_config(classifier_workdir="")
  config.eval.iwae_samples = 100
  config.eval.iwae_chunk_size = 50
  config.eval.num_images = 10  # columns / rows of the application grids
  config.eval.num_examples = 1000  # test images behind the application metrics (0 = all)
  config.eval.interpolation_steps = 8
  config.eval.attribute_from = 0  # Fashion-MNIST: T-shirt/top
  config.eval.attribute_to = 2  # Pullover (adds long sleeves)
  config.eval.noise_std = 0.2  # restore: Gaussian noise std on [0, 1] intensities
  config.eval.salt_and_pepper_fraction = 0.1
  config.eval.block_size = 10  # restore: side of the zeroed square

  config.train.num_steps = 10_000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.eval_every = 2000
  config.train.sample_every = 2000
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

"""MLP VAE on dynamically binarized Fashion-MNIST: Bernoulli decoder, ELBO and IWAE in nats.

  python -m gen_jax.main --config configs/vae_mlp.py --workdir workdirs/vae_mlp
  # the IWAE bound with k = 5000 on the first 1000 test images:
  python -m gen_jax.main --config configs/vae_mlp.py --workdir workdirs/vae_mlp --mode eval \
      --config.eval.iwae_samples=5000 --config.data.max_eval_examples=1000
  # --mode reconstruct | interpolate | attributes | restore write grids under samples/

The base of the VAE family: configs/ae.py, vae_conv.py, cvae.py and beta_vae.py
start from `unlocked_config()` and change what differs.
"""

import ml_collections

from gen_jax import config_defaults


def unlocked_config() -> ml_collections.ConfigDict:
  config = config_defaults.base_config()
  config.data.binarization = "dynamic"

  config.model.name = "vae"  # vae | autoencoder | beta_vae
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
  # FID/KID of the samples (decoder means) at each eval (gen_jax.evaluation.fid): a trained
  # configs/fmnist_classifier.py run's features; "" = none (said in the log, never 0).
  config.eval.classifier_workdir = ""
  config.eval.min_classifier_accuracy = 0.8  # a weaker classifier is refused
  config.eval.num_fid_samples = 10_000  # generated images per evaluation
  config.eval.kid_subsets = 100  # KID: mean unbiased MMD^2 over 100 subsets of 1000
  config.eval.kid_subset_size = 1000
  # Standard (Inception-v3) FID/KID as well, from a weights file the user supplies
  # (format: gen_jax/evaluation/inception.py); "" = none.
  config.eval.inception_weights = ""

  config.train.num_steps = 10_000
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.eval_every = 2000
  config.train.sample_every = 2000
  return config


def get_config(arg=None):
  return config_defaults.finalize(unlocked_config(), arg, {"smoke": smoke})


def smoke(config):
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

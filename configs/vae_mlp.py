"""MLP VAE on dynamically binarized Fashion-MNIST: Bernoulli decoder, ELBO and IWAE in nats.

  python -m gen_jax.main --config configs/vae_mlp.py --workdir workdirs/vae_mlp
  # the IWAE bound with k = 5000 on the first 1000 test images:
  python -m gen_jax.main --config configs/vae_mlp.py --workdir workdirs/vae_mlp --mode eval \
      --config.eval.iwae_samples=5000 --config.data.max_eval_examples=1000
  # --mode reconstruct | interpolate | attributes | restore write grids under samples/

The VAE family's other members (configs/ae.py, vae_conv.py, cvae.py, beta_vae.py)
are the same keys with other values.
"""

from gen_jax import config_defaults

SMOKE = {  # a tiny model and a small IWAE k
    "model.latent_dim": 4, "model.hidden_sizes": (32,), "model.features": 4,
    "eval.iwae_samples": 5, "eval.iwae_chunk_size": 2, "eval.num_images": 4,
    "eval.num_examples": 16, "eval.interpolation_steps": 3}


def get_config(arg=None):
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
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

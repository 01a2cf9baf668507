"""VAE-GAN (Larsen et al. 2016) on Fashion-MNIST: encoder, DCGAN decoder/generator and
discriminator, the reconstruction error measured in the discriminator's features.

  python -m gen_jax.main --config configs/fmnist_classifier.py --workdir workdirs/fmnist_classifier
  python -m gen_jax.main --config configs/vaegan.py --workdir workdirs/vaegan
"""

from gen_jax import config_defaults


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "vaegan"
  config.model.latent_dim = 64
  config.model.features = 64
  config.model.loss = "non_saturating"  # the decoder's and discriminator's GAN loss
  # gamma: the decoder's weight on the feature-space reconstruction error
  # against its GAN loss (Larsen et al. 2016, sec. 2.2).
  config.model.reconstruction_weight = 1e-2
  config.model.discriminator_batch_norm = True

  config.train.num_steps = 10_000
  config.train.batch_size = 64
  config.train.learning_rate = 2e-4
  config.train.adam_b1 = 0.5
  config.train.lr_schedule = "constant"
  config.train.warmup_steps = 0
  config.train.grad_clip_norm = 0.0
  config.train.ema_decay = 0.999
  config.train.eval_every = 2000
  config.train.sample_every = 1000
  config.train.num_samples = 64
  config.eval = config_defaults.fid_eval_config("workdirs/fmnist_classifier")
  return config_defaults.finalize(config, arg, {"smoke": smoke})


def smoke(config):
  config_defaults.shrink_for_smoke(config)
  config.model.latent_dim = 16
  config.model.features = 8
  config.train.warmup_steps = 0
  config.eval.classifier_workdir = ""  # explicit: no FID/KID in the smoke run

"""VAE-GAN (Larsen et al. 2016) on Fashion-MNIST: encoder, DCGAN decoder/generator and
discriminator, the reconstruction error measured in the discriminator's features.

  python -m gen_jax.main --config configs/fmnist_classifier.py --workdir workdirs/fmnist_classifier
  python -m gen_jax.main --config configs/vaegan.py --workdir workdirs/vaegan

Trained and scored (FID/KID) as configs/dcgan.py is.
"""

from gen_jax import config_defaults

# A tiny encoder, G and D, and no FID (no classifier there).
SMOKE = {"model.latent_dim": 16, "model.features": 8, "train.warmup_steps": 0,
         "eval.classifier_workdir": ""}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "vaegan"
  config.model.latent_dim = 64
  config.model.features = 64  # DCGAN's widths; the encoder mirrors the discriminator
  config.model.loss = "non_saturating"  # the decoder's and discriminator's GAN loss
  # gamma: the decoder's weight on the feature-space reconstruction error
  # against its GAN loss (Larsen et al. 2016, sec. 2.2).
  config.model.reconstruction_weight = 1e-2
  config.model.discriminator_batch_norm = True

  # DCGAN's Adam (learning rate 2e-4, beta1 0.5), no decay, no clipping; a decoder EMA.
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

  config.eval = config_defaults.fid_config(classifier_workdir="workdirs/fmnist_classifier")
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

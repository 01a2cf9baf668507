"""VAE-GAN (Larsen et al. 2016) on Fashion-MNIST: encoder, DCGAN decoder/generator and
discriminator, the reconstruction error measured in the discriminator's features.

  python -m gen_jax.main --config configs/fmnist_classifier.py --workdir workdirs/fmnist_classifier
  python -m gen_jax.main --config configs/vaegan.py --workdir workdirs/vaegan

The model is its own; the training and the FID/KID eval are configs/dcgan.py's.
"""

import ml_collections

from gen_jax import config_defaults

dcgan = config_defaults.load_config_module(__file__, "dcgan.py")


def get_config(arg=None):
  config = dcgan.unlocked_config()
  config.model = ml_collections.ConfigDict()
  config.model.name = "vaegan"
  config.model.latent_dim = 64
  config.model.features = 64
  config.model.loss = "non_saturating"  # the decoder's and discriminator's GAN loss
  # gamma: the decoder's weight on the feature-space reconstruction error
  # against its GAN loss (Larsen et al. 2016, sec. 2.2).
  config.model.reconstruction_weight = 1e-2
  config.model.discriminator_batch_norm = True
  return config_defaults.finalize(config, arg, {"smoke": dcgan.smoke})

"""DCGAN (Radford et al. 2016) on Fashion-MNIST, scored by FID/KID in the features of
gen_jax's own Fashion-MNIST classifier (train that first).

  python -m gen_jax.main --config configs/fmnist_classifier.py --workdir workdirs/fmnist_classifier
  python -m gen_jax.main --config configs/dcgan.py --workdir workdirs/dcgan
  python -m gen_jax.main --config configs/dcgan.py:hinge --workdir workdirs/dcgan_hinge

Variants: minimax, hinge (losses; the default is non-saturating), r1 (R1
gradient penalty), conditional (class-conditional G, projection D), each also
as <variant>_smoke.
"""

from gen_jax import config_defaults


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "dcgan"
  config.model.latent_dim = 100
  config.model.features = 64  # G: 7x7x128 -> 14x14x64 -> 28x28; D mirrors it
  config.model.loss = "non_saturating"  # minimax | non_saturating | hinge
  config.model.discriminator_steps = 1  # discriminator updates per generator update
  config.model.r1_gamma = 0.0  # R1 penalty weight (0 = off)
  config.model.class_conditional = False
  config.model.discriminator_batch_norm = True  # as in the paper (not on D's input layer)
  config_defaults.adversarial_training(config)

  variants = {"minimax": loss("minimax"), "hinge": loss("hinge"), "r1": r1,
              "conditional": conditional}
  variants.update({f"{name}_smoke": (lambda c, v=variant: (v(c), smoke(c)))
                   for name, variant in variants.items()})
  return config_defaults.finalize(config, arg, {"smoke": smoke, **variants})


def loss(kind):
  def set_loss(config):
    config.model.loss = kind
  return set_loss


def r1(config):
  """R1 on real images (Mescheder et al. 2018); without D batch norm, which couples examples."""
  config.model.r1_gamma = 1.0
  config.model.discriminator_batch_norm = False


def conditional(config):
  config.model.class_conditional = True


smoke = config_defaults.shrink_gan_for_smoke

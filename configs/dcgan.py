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

# A tiny G and D, and no FID (no classifier there).
SMOKE = {"model.latent_dim": 16, "model.features": 8, "train.warmup_steps": 0,
         "eval.classifier_workdir": ""}


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

  # The paper's Adam (learning rate 2e-4, beta1 0.5), no decay, no clipping; a generator EMA.
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
  variants = {"minimax": loss("minimax"), "hinge": loss("hinge"), "r1": r1,
              "conditional": conditional}
  variants.update({f"{name}_smoke": config_defaults.smoke_variant(SMOKE, variant)
                   for name, variant in variants.items()})
  return config_defaults.finalize(config, arg,
                                  {"smoke": config_defaults.smoke_variant(SMOKE), **variants})


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

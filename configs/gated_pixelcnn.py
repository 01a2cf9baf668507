"""Gated PixelCNN (van den Oord et al. 2016) on Fashion-MNIST, optionally class-conditional.

  python -m gen_jax.main --config configs/gated_pixelcnn.py --workdir workdirs/gated
  python -m gen_jax.main --config configs/gated_pixelcnn.py:conditional --workdir workdirs/gated_cond
  python -m gen_jax.bench --config configs/gated_pixelcnn.py:peer --reference torch
"""

from gen_jax import config_defaults

SMOKE = {"model.features": 16, "model.num_layers": 3, "model.skip_features": 16,
         "model.head_features": 16}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "gated_pixelcnn"
  config.model.features = 64
  config.model.num_layers = 8
  config.model.kernel_size = 3
  config.model.first_kernel_size = 7
  config.model.skip_features = 64
  config.model.head_features = 64
  config.model.class_conditional = False
  config.model.remat = False  # True: recompute block activations in backward (less memory)
  config.model.cached_sampling = True  # same samples as naive; rows and pixels cached

  config.train.num_steps = 5000
  config.train.batch_size = 64
  config.train.ema_decay = 0.999
  # On a CPU, data parallel over 2 host devices: 1.25x faster steps on 2 cores
  # (gen_jax.bench, configs/pixelcnn.py); no effect on GPU/TPU.
  config.cpu_devices = 2
  return config_defaults.finalize(config, arg, {
      "smoke": config_defaults.smoke_variant(SMOKE), "conditional": conditional, "peer": peer,
      "conditional_smoke": config_defaults.smoke_variant(SMOKE, conditional)})


def conditional(config):
  config.model.class_conditional = True


def peer(config):
  """The size of pytorch-generative's default Gated PixelCNN (10 gated layers + an input
  layer of 128 channels, 32-wide head: 3.37 M parameters), batch 32: 10 layers of 128
  features and 128-wide skips here give the same parameter count (to 0.02%)."""
  config.model.features = 128
  config.model.num_layers = 10
  config.model.skip_features = 128
  config.model.head_features = 32
  config.train.batch_size = 32

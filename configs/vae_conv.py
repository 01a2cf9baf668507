"""Convolutional VAE on 8-bit Fashion-MNIST: 256-way categorical decoder, bits/dim.

  python -m gen_jax.main --config configs/vae_conv.py --workdir workdirs/vae_conv
  # a Gaussian decoder with learned variance on dequantized data instead:
  python -m gen_jax.main --config configs/vae_conv.py:gaussian --workdir workdirs/vae_conv_gauss

The keys not set here are configs/vae_mlp.py's.
"""

from gen_jax import config_defaults

vae_mlp = config_defaults.load_config_module(__file__, "vae_mlp.py")


def get_config(arg=None):
  config = vae_mlp.unlocked_config()
  config.data.binarization = "none"  # 8-bit intensities

  config.model.architecture = "conv"
  config.model.latent_dim = 32
  config.model.hidden_sizes = (256,)  # the dense layer after the convs
  config.model.features = 32
  config.model.likelihood = "categorical"

  config.train.batch_size = 64
  config.train.eval_batch_size = 100
  config.eval.iwae_samples = 20
  config.eval.iwae_chunk_size = 5  # 256 logits per sub-pixel: 5 x 100 images at a time
  return config_defaults.finalize(config, arg, {
      "smoke": vae_mlp.smoke, "gaussian": gaussian,
      "gaussian_smoke": lambda c: (gaussian(c), vae_mlp.smoke(c))})


def gaussian(config):
  config.model.likelihood = "gaussian"
  config.eval.iwae_chunk_size = 50

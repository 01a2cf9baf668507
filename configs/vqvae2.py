"""VQ-VAE-2 (Razavi et al. 2019) on Fashion-MNIST: a 7x7 top and a 14x14 bottom grid.

Stage 1 of 2; stage 2 is configs/vqvae2_prior.py (a top prior, and a bottom
prior conditioned on the top codes). The keys not set here are configs/vqvae.py's.

  python -m gen_jax.main --config configs/vqvae2.py --workdir workdirs/vqvae2
"""

from gen_jax import config_defaults

vqvae = config_defaults.load_config_module(__file__, "vqvae.py")


def get_config(arg=None):
  config = vqvae.unlocked_config()
  config.model.name = "vqvae2"
  config.model.num_downsamples = 1  # bottom 14x14, top 7x7
  # The bottom grid is 4x the pixels of VQ-VAE's: half the width keeps a step's cost
  # close to VQ-VAE's on a CPU.
  config.model.features = 32
  config.model.residual_hidden = 16
  return config_defaults.finalize(config, arg, {"smoke": vqvae.smoke})

"""Stage 2 of VQ-VAE-2: a prior over the 7x7 top codes and a prior over the 14x14 bottom
codes conditioned on the top ones, for a trained configs/vqvae2.py run.

  python -m gen_jax.main --config configs/vqvae2.py --workdir workdirs/vqvae2
  python -m gen_jax.main --config configs/vqvae2_prior.py --workdir workdirs/vqvae2_prior \
      --config.vqvae_workdir=workdirs/vqvae2

Both priors train together (disjoint parameters, summed NLL). Sampling draws
the top codes, then the bottom codes given them, and decodes both. Eval as in
configs/vqvae_prior.py, plus `top_bits_per_code` and `bottom_bits_per_code`.
The keys not set here are configs/vqvae_prior.py's.
"""

import ml_collections

from gen_jax import config_defaults

vqvae_prior = config_defaults.load_config_module(__file__, "vqvae_prior.py")


def get_config(arg=None):
  config = vqvae_prior.unlocked_config()
  config.vqvae_config = "vqvae2.py"
  config.model.name = "vqvae2_prior"
  prior = config.model.priors.latent  # vqvae_prior.py's prior, a copy for each level
  config.model.priors = ml_collections.ConfigDict({"top": prior.to_dict(),
                                                   "bottom": prior.to_dict()})
  bottom = config.model.priors.bottom
  bottom.condition_features = 32  # the map of the top codes
  # 4x the positions of the top grid: a narrower, shallower bottom prior keeps a step
  # within about twice the top prior's cost on a CPU.
  bottom.features, bottom.skip_features, bottom.head_features = 32, 32, 64
  bottom.num_layers = 6
  return config_defaults.finalize(config, arg, {"smoke": vqvae_prior.smoke})

"""Stage 2 of VQ-VAE-2: a prior over the 7x7 top codes and a prior over the 14x14 bottom
codes conditioned on the top ones, for a trained configs/vqvae2.py run.

  python -m gen_jax.main --config configs/vqvae2.py --workdir workdirs/vqvae2
  python -m gen_jax.main --config configs/vqvae2_prior.py --workdir workdirs/vqvae2_prior \
      --config.vqvae_workdir=workdirs/vqvae2

Both priors train together (disjoint parameters, summed NLL). Sampling draws
the top codes, then the bottom codes given them, and decodes both. Eval as in
configs/vqvae_prior.py, plus `top_bits_per_code` and `bottom_bits_per_code`.
"""

from gen_jax import config_defaults, vq_defaults


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "vqvae2_prior"
  vq_defaults.add_prior_keys(config, ("top", "bottom"), "vqvae2.py")
  # 4x the positions of the top grid: a narrower, shallower bottom prior keeps a step
  # within about twice the top prior's cost on a CPU.
  bottom = config.model.priors.bottom
  bottom.features, bottom.skip_features, bottom.head_features = 32, 32, 64
  bottom.num_layers = 6
  return config_defaults.finalize(config, arg, {"smoke": smoke})


def smoke(config):
  config_defaults.shrink_for_smoke(config)
  vq_defaults.shrink_prior_for_smoke(config)

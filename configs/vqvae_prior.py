"""Stage 2 of VQ-VAE: a Gated PixelCNN prior over the 7x7 codes of a trained configs/vqvae.py run.

  python -m gen_jax.main --config configs/vqvae.py --workdir workdirs/vqvae
  python -m gen_jax.main --config configs/vqvae_prior.py --workdir workdirs/vqvae_prior \
      --config.vqvae_workdir=workdirs/vqvae

The codes of the training and eval images are extracted once and cached in the
stage-1 workdir (codes/). Eval reports `bits_per_dim`, an upper bound on the
8-bit data's -log2 p(x) per dimension: (-log p(codes) - log p(x | codes)) / (D ln 2),
with its two parts `prior_bits_per_dim` and `decoder_bits_per_dim`. Samples are
codes drawn from the prior (cached sampler) and decoded by the stage-1 decoder.
"""

from gen_jax import config_defaults, vq_defaults


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "vqvae_prior"
  vq_defaults.add_prior_keys(config, ("latent",), "vqvae.py")
  return config_defaults.finalize(config, arg, {"smoke": smoke})


def smoke(config):
  config_defaults.shrink_for_smoke(config)
  vq_defaults.shrink_prior_for_smoke(config)

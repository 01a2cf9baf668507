"""MLP VAE on dynamically binarized Fashion-MNIST: Bernoulli decoder, ELBO and IWAE in nats.

  python -m gen_jax.main --config configs/vae_mlp.py --workdir workdirs/vae_mlp
  # the IWAE bound with k = 5000 on the first 1000 test images:
  python -m gen_jax.main --config configs/vae_mlp.py --workdir workdirs/vae_mlp --mode eval \
      --config.eval.iwae_samples=5000 --config.data.max_eval_examples=1000
  # --mode reconstruct | interpolate | attributes | restore write grids under samples/
"""

from gen_jax import config_defaults, vae_config


def get_config(arg=None):
  config = vae_config.vae_config("vae")
  config.model.architecture = "mlp"
  config.model.latent_dim = 32
  config.model.hidden_sizes = (512, 256)
  config.model.likelihood = "bernoulli"
  config.data.binarization = "dynamic"

  config.train.num_steps = 10_000
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.eval_every = 2000
  config.train.sample_every = 2000
  return config_defaults.finalize(config, arg, {"smoke": vae_config.shrink_vae_for_smoke})

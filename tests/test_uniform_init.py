"""Every likelihood model starts at (or, for heads that cannot express it, next to) the
uniform distribution, so its first steps can only improve on knowing nothing: 8 bits/dim
on 256 levels, 1 on binarized images, log2(V) bits/char on V characters."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import smoke_config
from gen_jax import data, parallel, runs, tasks
from gen_jax.objectives import logistic_mixture

# config -> the eval metric; tolerances in bits per dimension (or character)
EXACT_HEADS = {  # softmax / Bernoulli heads: exactly uniform; the VAEs add their KL at init
    "pixelcnn.py": "bits_per_dim", "gated_pixelcnn.py": "bits_per_dim",
    "row_lstm.py": "bits_per_dim", "diagonal_bilstm.py": "bits_per_dim",
    "char_rnn.py": "bits_per_char", "vae_mlp.py": "bits_per_dim", "vae_conv.py": "bits_per_dim",
    "cvae.py": "bits_per_dim", "beta_vae.py": "bits_per_dim",
    "semi_supervised_vae.py": "bits_per_dim"}


def init_eval(filename, tiny_idx, arg="smoke"):
  """(config, spec, eval sums / num_examples, the eval batch) of a freshly initialised model."""
  config = smoke_config(filename, arg, tiny_idx)
  spec = runs.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  mesh = parallel.create_mesh(jax.devices()[:1])
  _, eval_split = data.load_splits(config.data)
  batch = next(data.eval_batches(eval_split.head(16), global_batch_size=16,
                                 binarization=config.data.binarization, seed=config.seed))
  batch = {name: jnp.asarray(value) for name, value in batch.items()}
  state = task.init(jax.random.PRNGKey(config.seed), runs.example_batch(config, spec, mesh))
  sums = jax.jit(task.eval_step)(state, batch, jax.random.PRNGKey(1))
  count = float(sums.pop("num_examples"))
  return config, spec, {name: float(value) / count for name, value in sums.items()}, batch


@pytest.mark.parametrize("filename", sorted(EXACT_HEADS))
def test_a_fresh_model_scores_the_uniform_distribution(filename, tiny_idx):
  _, spec, metrics, _ = init_eval(filename, tiny_idx)
  uniform = math.log2(spec.num_levels)  # 8 bits on 256 levels, 1 bit binarized
  # exact for autoregressive heads; a VAE's bound adds KL(q(z|x) || p(z)) of its random encoder
  assert uniform - 1e-4 < metrics[EXACT_HEADS[filename]] < uniform + 0.01


def test_pixelcnn_pp_starts_at_its_near_uniform_mixture(tiny_idx):
  """A discretized logistic mixture cannot be uniform; the head starts at the mixture
  closest to it that logistic_mixture.uniform_mixture_raw gives (K=2: 8.15 bits/dim on
  uniform data), up to the head's small random weights."""
  config, spec, metrics, batch = init_eval("pixelcnn_pp.py", tiny_idx)
  k, channels = config.model.num_mixtures, spec.image_shape[-1]
  raw = jnp.broadcast_to(jnp.asarray(logistic_mixture.uniform_mixture_raw(channels, k)),
                         (*batch["image"].shape[:3], logistic_mixture.num_mixture_params(channels, k)))
  mixture = logistic_mixture.mixture_nll(raw, batch["image"], num_mixtures=k,
                                         num_levels=spec.num_levels)
  floor = float(jnp.mean(mixture)) / (math.log(2) * np.prod(spec.image_shape))
  assert 8.0 < floor < 8.16
  assert metrics["bits_per_dim"] < floor + 0.06


@pytest.mark.parametrize("filename", ["vqvae.py", "vqvae2.py"])
def test_vq_decoder_starts_at_the_gaussian_closest_to_uniform(filename, tiny_idx):
  """Mean 0 and variance 1/3 on [-1, 1]: 8 + log2(sqrt(2 pi e / 12)) = 8.25 bits/dim for
  continuous uniform data, a little less discretized (the edge bins take the tails)."""
  _, _, metrics, _ = init_eval(filename, tiny_idx)
  assert 8.0 < metrics["decoder_bits_per_dim"] < 8.0 + 0.5 * math.log2(2 * math.pi * math.e / 12)


def test_a_gaussian_vae_decoder_starts_at_the_gaussian_closest_to_uniform(tiny_idx):
  """y = (x + u) / 256 in [0, 1] under N(1/2, 1/12): 8 + log2(sqrt(2 pi e / 12)) = 8.25
  bits/dim on uniform data, plus the random encoder's KL."""
  _, _, metrics, _ = init_eval("vae_conv.py", tiny_idx, "gaussian_smoke")
  closest = 8.0 + 0.5 * math.log2(2 * math.pi * math.e / 12)
  assert closest - 0.02 < metrics["bits_per_dim"] < closest + 0.03

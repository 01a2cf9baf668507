"""Per-example scores (Task.log_prob) and the Python API's log_prob / bits_per_dim / encode.

Eval's bits/dim must be the mean of the per-example scores on the same data, for
every likelihood family; the API object must give the task's numbers.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_pixelcnn_config
from gen_jax import data, parallel, runs, tasks
from gen_jax.errors import UserError
from gen_jax.objectives import discretized_gaussian as dgauss
from gen_jax.tasks import vq as vq_task

# (config, arg, eval metric that is the mean of -log_prob in bits/dim)
IMAGE_FAMILIES = [
    ("pixelcnn.py", "smoke", "bits_per_dim"),
    ("gated_pixelcnn.py", "smoke", "bits_per_dim"),
    ("gated_pixelcnn.py", "conditional_smoke", "bits_per_dim"),
    ("pixelcnn_pp.py", "smoke", "bits_per_dim"),
    ("row_lstm.py", "smoke", "bits_per_dim"),
    ("diagonal_bilstm.py", "smoke", "bits_per_dim"),
    ("vae_mlp.py", "smoke", "bits_per_dim"),  # binarized data, Bernoulli decoder
    ("vae_conv.py", "smoke", "bits_per_dim"),
    ("vae_conv.py", "gaussian_smoke", "bits_per_dim"),
    ("vqvae.py", "smoke", "uniform_prior_bits_per_dim"),
    ("vqvae_prior.py", "smoke", "bits_per_dim"),
]


def eval_split_of(run):
  """The run's eval split as 8-bit images (a VQ prior's: its stage 1's images)."""
  return data.load_splits(run.image_data_config)[1]


@pytest.mark.parametrize("filename,arg,metric", IMAGE_FAMILIES)
def test_mean_log_prob_is_evals_bits_per_dim(filename, arg, metric, smoke_run):
  workdir, results = smoke_run(filename, arg)
  run = runs.load(workdir)
  split = eval_split_of(run)
  bits = run.bits_per_dim(split.images, labels=split.labels)
  assert bits.shape == (len(split),) and np.all(np.isfinite(bits))
  assert np.mean(bits) == pytest.approx(results["eval"][metric], rel=1e-5)
  for kind in run.task.other_log_probs:  # the VAEs' IWAE-k
    iwae_bits = run.bits_per_dim(split.images, labels=split.labels, kind=kind)
    assert np.mean(iwae_bits) == pytest.approx(results["eval"]["iwae_bits_per_dim"], rel=1e-5)
  assert run.task.log_prob_kind in ("exact", "elbo", "vq-bound", "vq-bound (uniform prior)")


def test_char_rnn_log_prob_sums_to_evals_bits_per_char(smoke_run):
  workdir, results = smoke_run("char_rnn.py")
  run = runs.load(workdir)
  split = data.load_splits(run.config.data)[1]
  log_prob = jax.jit(run.task.log_prob)
  nats, characters = 0.0, 0.0
  for batch in data.eval_batches(split, global_batch_size=run.config.train.eval_batch_size):
    per_sequence = np.asarray(log_prob(run.state, batch, jax.random.PRNGKey(0)))
    assert per_sequence.shape == (len(batch["mask"]),) and np.all(per_sequence <= 0)
    nats -= np.sum(per_sequence * batch["mask"])
    characters += np.sum(batch["weights"][:, 1:] * batch["mask"][:, None])
  assert nats / characters / math.log(2) == pytest.approx(results["eval"]["bits_per_char"],
                                                          rel=1e-5)


def test_api_log_prob_equals_the_tasks_and_samples_uint8(smoke_run):
  workdir, _ = smoke_run("pixelcnn.py")
  run = runs.load(workdir)
  images = eval_split_of(run).images[:5]  # fewer than a batch: padded and sharded
  batch = {"image": jnp.asarray(images), "mask": jnp.ones(5)}
  expected = jax.jit(run.task.log_prob)(run.state, batch, jax.random.PRNGKey(3))
  np.testing.assert_allclose(run.log_prob(images, jax.random.PRNGKey(3)), expected, rtol=1e-6)
  np.testing.assert_allclose(run.log_prob(images[..., 0]), expected, rtol=1e-6)  # [N, H, W]
  np.testing.assert_allclose(run.bits_per_dim(images),
                             -np.asarray(expected) / (images[0].size * math.log(2)), rtol=1e-6)
  samples = run.sample(2, jax.random.PRNGKey(0))
  assert samples.shape == (2, *run.image_shape) and samples.dtype == np.uint8
  with pytest.raises(UserError, match="this run models"):
    run.log_prob(np.zeros((2, 5, 5, 1), np.uint8))
  with pytest.raises(UserError, match="no encoder"):
    run.encode(images)


def test_a_uniform_model_scores_8_bits_per_dim_for_every_image(tiny_idx):
  config = tiny_pixelcnn_config(tiny_idx)
  mesh = parallel.create_mesh()
  spec = runs.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  state = task.init(jax.random.PRNGKey(0), None)
  state = state.replace(params=jax.tree.map(jnp.zeros_like, state.params))  # all logits 0
  run = runs.Run("", config, spec, task, state, 0, mesh)
  images = np.random.default_rng(0).integers(0, 256, (21, 28, 28, 1))
  np.testing.assert_allclose(run.bits_per_dim(images), 8.0, rtol=1e-6)
  np.testing.assert_allclose(run.log_prob(images), -28 * 28 * math.log(256), rtol=1e-6)


def test_vae_iwae_with_one_sample_is_the_elbo_in_expectation(smoke_run):
  """IWAE_1 = log p(x|z) + log p(z) - log q(z|x), one z ~ q: its mean over draws is the
  ELBO (analytic KL) per example, within Monte Carlo error; a wrong weight would not be."""
  workdir, _ = smoke_run("vae_conv.py", "gaussian_smoke")
  config = runs.read_config(workdir)
  with config.unlocked():
    config.eval.iwae_samples, config.eval.iwae_chunk_size = 1, 1
  run = runs.load(workdir, config)
  images = eval_split_of(run).images[:4]
  draws = 200
  iwae, elbo = (np.stack([run.log_prob(images, jax.random.PRNGKey(seed), kind=kind)
                          for seed in range(draws)]) for kind in ("iwae-1", None))
  error = np.sqrt(iwae.var(0) / draws + elbo.var(0) / draws)
  assert np.all(np.abs(iwae.mean(0) - elbo.mean(0)) < 4 * error + 1e-3)


def test_vae_encode_decode_round_trip_shapes(smoke_run):
  workdir, _ = smoke_run("vae_mlp.py")
  run = runs.load(workdir)
  images = eval_split_of(run).images[:3]
  codes = run.encode(images)
  assert codes.shape == (3, run.config.model.latent_dim)
  decoded = run.decode(codes)
  assert decoded.shape == images.shape and decoded.dtype == np.uint8


def test_vqvae_encode_decode_is_evals_reconstruction(smoke_run):
  workdir, _ = smoke_run("vqvae.py")
  run = runs.load(workdir)
  images = eval_split_of(run).images[:3]
  codes = run.encode(images)
  assert set(codes) == {"latent"} and codes["latent"].dtype.kind == "i"
  _, apply_fn, scales, _ = vq_task.create_vq_model(run.config.model, run.spec)
  settings = vq_task.create_vq_settings(run.config.model, run.spec, scales)
  mean = vq_task.autoencode(run.state.params, jnp.asarray(images), apply_fn=apply_fn,
                            settings=settings)[0]  # eval's reconstruction (8-bit data)
  np.testing.assert_array_equal(run.decode(codes), dgauss.unit_to_levels(mean, 256))

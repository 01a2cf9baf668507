"""The VAE / autoencoder task: closed forms through the whole eval path, IWAE wiring,
class-row samples and config errors (the applications: tests/applications/)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gen_jax import tasks, train
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.tasks import vae as vae_task
from gen_jax.tasks.common import module_functions


def smoke_config(filename="vae_mlp.py", **model):
  config = load_config(filename, "smoke")
  with config.unlocked():
    for key, value in model.items():
      config.model[key] = value
    if model.get("likelihood") in ("categorical", "gaussian"):
      config.data.binarization = "none"
  return config


def make_task(config, spec=None):
  spec = spec or train.dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  batch = {"image": np.zeros((8, *spec.image_shape), np.uint8), "label": np.zeros(8, np.int32)}
  return task, spec, jax.jit(task.init)(jax.random.key(0), batch)


def eval_batch(num_levels, num=6, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": jnp.asarray(rng.integers(0, num_levels, (num, 28, 28, 1)), jnp.uint8),
          "label": jnp.asarray(rng.integers(0, 10, num), jnp.int32),
          "mask": jnp.ones(num, jnp.float32)}


def zero_last_decoder_layer(params):
  last = params["decoder"]["mlp"]["layers"][max(params["decoder"]["mlp"]["layers"])]
  return jax.tree.map(jnp.zeros_like, last)


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical", "gaussian"])
def test_constant_decoder_scores_its_closed_form(likelihood):
  """Zero decoder outputs: Bernoulli(1/2) = 1 bit/dim, uniform 256-way = 8 bits/dim,
  N(0, 1) on dequantized y = 1/2 log 2 pi + y^2 / 2 nats/dim + 8 bits/dim."""
  config = smoke_config(likelihood=likelihood)
  with config.unlocked():
    config.eval.iwae_samples = 0  # the ELBO path only
  task, spec, state = make_task(config)
  layers = state.params["decoder"]["mlp"]["layers"]
  layers[max(layers)] = zero_last_decoder_layer(state.params)
  batch = eval_batch(spec.num_levels)
  sums = jax.jit(task.eval_step)(state, batch, jax.random.key(1))
  num, num_dims = 6, 28 * 28
  centres = (np.asarray(batch["image"], np.float64) + 0.5) / 256
  expected = {
      "bernoulli": num * num_dims * math.log(2),
      "categorical": num * num_dims * math.log(256),
      "gaussian": np.sum(0.5 * math.log(2 * math.pi) + 0.5 * centres ** 2)
                  + num * num_dims * math.log(256)}[likelihood]
  np.testing.assert_allclose(sums["reconstruction_nats"], expected, rtol=1e-4)
  np.testing.assert_allclose(
      sums["bits_per_dim"],
      (sums["reconstruction_nats"] + sums["kl_nats"]) / (num_dims * math.log(2)), rtol=1e-5)
  assert float(sums["kl_nats"]) > 0 and float(sums["num_examples"]) == num


def test_iwae_is_chunk_invariant_and_above_the_elbo():
  config = smoke_config(likelihood="gaussian")
  task, spec, state = make_task(config)
  _, apply_fn = module_functions(vae_task.create_vae_module(
      config.model, spec, likelihood="gaussian", num_classes=0, variational=True))
  batch = eval_batch(256)
  iwae = jax.jit(functools.partial(
      vae_task.iwae_log_likelihood, apply_fn=apply_fn, likelihood="gaussian", num_levels=256,
      num_samples=16), static_argnames="chunk_size")
  whole = iwae(state.params, batch["image"], None, jax.random.key(2), chunk_size=16)
  np.testing.assert_allclose(iwae(state.params, batch["image"], None, jax.random.key(2),
                                  chunk_size=5), whole, rtol=1e-6)  # 5 does not divide 16
  # The ELBO, averaged over 64 draws of z (and of the dequantization noise), is below IWAE_16.
  terms = functools.partial(vae_task.elbo_terms, apply_fn=apply_fn, likelihood="gaussian",
                            num_levels=256)
  elbos = jax.jit(jax.vmap(lambda key: -sum(terms(state.params, batch["image"], None, key))))(
      jax.random.split(jax.random.key(3), 64))  # [64, B]
  assert np.all(whole > elbos.mean(0)), (whole, elbos.mean(0))


def test_conditional_samples_have_one_row_per_class_with_shared_codes():
  config = smoke_config("cvae.py")
  task, spec, state = make_task(config)
  layers = state.params["decoder"]["mlp"]["layers"]
  last = layers[max(layers)]  # zero at init (a uniform p(x|z)):
  last["kernel"] = jax.random.normal(jax.random.key(5), last["kernel"].shape)  # as if trained
  samples = np.asarray(task.sample(state, jax.random.key(4), 20))  # 10 rows x 2 columns
  assert not np.array_equal(samples[0], samples[2])  # class 0 vs class 1, same z
  # Without the label input, every row repeats row 0: the z are shared per column.
  first = state.params["decoder"]["mlp"]["layers"][0]
  first["kernel"] = first["kernel"].at[config.model.latent_dim:].set(0.0)
  samples = np.asarray(task.sample(state, jax.random.key(4), 20)).reshape(10, 2, 28, 28, 1)
  np.testing.assert_array_equal(samples, np.broadcast_to(samples[:1], samples.shape))
  assert not np.array_equal(samples[0, 0], samples[0, 1])


def test_autoencoder_code_gaussian():
  codes = jax.random.normal(jax.random.key(5), (500, 4)) * jnp.array([1.0, 2.0, 0.5, 1.0]) + 3.0
  aux = {"code_mean": jnp.zeros(4), "code_second_moment": jnp.eye(4)}
  aux = vae_task.update_code_moments(aux, codes, decay=0.0)  # decay 0: the batch itself
  np.testing.assert_allclose(aux["code_mean"], codes.mean(0), rtol=1e-5)
  np.testing.assert_allclose(vae_task.code_covariance(aux), np.cov(codes.T, bias=True),
                             atol=1e-4)
  drawn = vae_task.sample_codes(aux, jax.random.key(6), 20_000)
  np.testing.assert_allclose(drawn.mean(0), codes.mean(0), atol=0.05)
  np.testing.assert_allclose(np.cov(drawn.T), np.cov(codes.T, bias=True), atol=0.1)


@pytest.mark.parametrize("change,message", [
    (dict(likelihood="bernoulli", binarization="none"), "needs binary data"),
    (dict(likelihood="poisson"), "model.likelihood='poisson'"),
    (dict(architecture="resnet"), "model.architecture='resnet'"),
    (dict(iwae_samples=-1), "eval.iwae_samples"),
    (dict(image_shape=(30, 30, 1), architecture="conv"), "not a multiple of 4"),
    (dict(num_classes=0, class_conditional=True), "needs labels"),
])
def test_bad_settings_are_user_errors(change, message):
  config = smoke_config()
  with config.unlocked():
    for key in ("likelihood", "architecture", "class_conditional"):
      if key in change:
        config.model[key] = change[key]
    if "binarization" in change:
      config.data.binarization = change["binarization"]
    if "iwae_samples" in change:
      config.eval.iwae_samples = change["iwae_samples"]
  spec = DatasetSpec(change.get("image_shape", (28, 28, 1)),
                     256 if change.get("binarization") == "none" else 2,
                     change.get("num_classes", 10))
  with pytest.raises(UserError, match=message):
    tasks.create_task(config, spec)


def test_autoencoder_accumulated_step_equals_the_whole_batch_step():
  """grad_accum_steps=2: the same params, Adam state and code moments as one whole-batch
  step; the moments are the EMA of the batch's codes under the params before the update."""
  config = smoke_config("ae.py")
  with config.unlocked():
    config.train.update(warmup_steps=0, lr_schedule="constant", grad_clip_norm=0.0)
  spec = train.dataset_spec(config.data)
  images = np.random.default_rng(0).integers(0, spec.num_levels, (8, *spec.image_shape))
  batch = {"image": jnp.asarray(images, jnp.uint8)}
  states = []
  for accum in (1, 2):
    with config.unlocked():
      config.train.grad_accum_steps = accum
    task, _, state = make_task(config, spec)
    states.append(jax.jit(task.train_step)(state, batch, jax.random.key(1))[0])
  whole, accumulated = jax.device_get(states)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-6),
               (accumulated.params, accumulated.opt_state, accumulated.aux),
               (whole.params, whole.opt_state, whole.aux))
  _, apply_fn = module_functions(vae_task.create_vae_module(
      config.model, spec, likelihood="squared_error", num_classes=0, variational=False))
  codes, _ = apply_fn(state.params, batch["image"], None, method="encode")
  expected = vae_task.update_code_moments(state.aux, codes, config.model.code_ema_decay)
  assert not np.allclose(expected["code_mean"], state.aux["code_mean"])
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-6),
               whole.aux, expected)

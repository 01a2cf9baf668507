"""PixelCNN++ bound to the discretized logistic mixture likelihood.

The model's output is the mixture parameters [B, H, W, P] of every pixel. The
loss is the fused mixture nll (no 256-way tensor). Sampling and completion
turn the parameters into 256-way log-probabilities per sub-pixel, given the
pixel's earlier channels, and draw them with gen_jax.sampling's categorical
samplers, so `--mode sample` completions work as for the other autoregressive
models:

- `sample_naive`: `sampling.sample_autoregressive` on the log-probabilities of
  every sub-pixel, recomputed once per sub-pixel (the reference);
- `sample`: `sampling.sample_autoregressive_cached`, which runs the u stream
  once per row (it sees only the rows above: `PixelCNNPlusPlus.begin_row`, on
  the row at every scale), the ul stream and the head once per pixel (the
  network sees only earlier pixels, so its output there cannot change while
  the pixel's channels are drawn: `raw_at`, one position per scale), and
  computes the 256-way log-probabilities at that pixel only. Same key, same
  draws as the naive one.
"""

import functools

import jax
import jax.numpy as jnp

from gen_jax import sampling
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.pixelcnn_pp import PixelCNNPlusPlus
from gen_jax.objectives import likelihoods, logistic_mixture
from gen_jax.tasks.autoregressive import autoregressive_sample, log_prob_sums
from gen_jax.tasks.common import (Task, eval_params, make_init, make_optimizer, module_functions,
                                  stateless_train_step)


def mixture_bits_per_dim(params, images, rng, *, apply_fn, num_mixtures, num_levels):
  """(bits/dim [B], nll nats [B]) of images [B, H, W, C]; dropout on when rng is given."""
  raw = apply_fn(params, images, rng)  # [B, H, W, P]
  nll = logistic_mixture.mixture_nll(raw, images, num_mixtures=num_mixtures,
                                     num_levels=num_levels)
  return likelihoods.bits_per_dim(nll, images[0].size), nll


def pixelcnn_pp_loss(params, batch, rng, **settings):
  """Mean bits/dim of batch['image'], with dropout drawn from rng."""
  bpd, _ = mixture_bits_per_dim(params, batch["image"], rbg_key(rng), **settings)
  return bpd.mean(), {"bits_per_dim": bpd.mean()}


def pixelcnn_pp_log_prob(state, batch, rng, **settings):
  """log p(x) [B] in nats, exact, without dropout, with the EMA params."""
  del rng
  _, nll = mixture_bits_per_dim(eval_params(state), batch["image"], None, **settings)
  return -nll


def pixelcnn_pp_eval_step(state, batch, rng, **settings):
  """Sums over the real (mask = 1) rows, from pixelcnn_pp_log_prob."""
  log_prob = pixelcnn_pp_log_prob(state, batch, rng, **settings)
  return log_prob_sums(log_prob, batch["mask"], batch["image"][0].size)


def sub_pixel_log_probs(params, images, *, apply_fn, num_mixtures, num_levels):
  """log p(x_ijc = l | x_<ij, x_ij,<c) for every level l: [B, H, W, C, L]."""
  raw = apply_fn(params, images, None)
  mixture = logistic_mixture.split_mixture_params(raw, images.shape[-1], num_mixtures)
  return logistic_mixture.sub_pixel_log_probs(mixture, images, num_levels)


def init_pixel_cache(params, images, *, apply_fn, num_params):
  """The model's buffers (`PixelCNNPlusPlus.init_cache`) and the mixture parameters of the
  current pixel ('raw')."""
  return {"raw": jnp.zeros((images.shape[0], num_params), jnp.float32),
          **apply_fn(params, images, method="init_cache")}


def begin_row(params, cache, images, row, *, apply_fn):
  """Once per row: the u stream on the row, which the row's draws cannot change."""
  return apply_fn(params, cache, images, row, method="begin_row")


def begin_pixel(params, cache, images, row, column, *, apply_fn):
  """Once per pixel: the ul stream and the head at the pixel (its channels share them)."""
  raw, rings = apply_fn(params, cache, images, row, column, method="raw_at")
  return {**cache, "raw": raw.astype(jnp.float32), "ul_rings": rings}


def log_probs_at(cache, images, row, column, *, num_mixtures, num_levels):
  """(log-probabilities [N, C, L] of pixel (row, column) given the drawn values, cache):
  the pixel's mixture ('raw', from begin_pixel) conditioned on the channels drawn since."""
  mixture = logistic_mixture.split_mixture_params(cache["raw"], images.shape[-1], num_mixtures)
  log_probs = logistic_mixture.sub_pixel_log_probs(mixture, images[:, row, column], num_levels)
  return log_probs, cache


def pixelcnn_pp_fill(state, rng, images, labels, start, *, cached, apply_fn, num_mixtures,
                     num_levels):
  """Draws sub-pixels start.. of `images` (raster order), keeping the ones before."""
  del labels  # unconditional
  params = eval_params(state)
  if not cached:
    return sampling.sample_autoregressive(
        lambda x: sub_pixel_log_probs(params, x, apply_fn=apply_fn, num_mixtures=num_mixtures,
                                      num_levels=num_levels), rng, images, start=start)
  num_params = logistic_mixture.num_mixture_params(images.shape[-1], num_mixtures)
  return sampling.sample_autoregressive_cached(
      functools.partial(init_pixel_cache, params, apply_fn=apply_fn, num_params=num_params),
      functools.partial(log_probs_at, num_mixtures=num_mixtures, num_levels=num_levels),
      rng, images, start=start,
      begin_row=functools.partial(begin_row, params, apply_fn=apply_fn),
      begin_pixel=functools.partial(begin_pixel, params, apply_fn=apply_fn))


def rbg_key(rng: jax.Array) -> jax.Array:
  """An 'rbg' (RngBitGenerator) key derived from any key, deterministically.

  For initial values and dropout masks. XLA on CPU compiles each differently
  shaped threefry draw on its own: the ~30 initial kernels of even the smallest
  PixelCNN++ took 10-20 s of CPU to compile with threefry and 2-5 s with rbg,
  and the dropout masks added 4.5 s to the train step's compile; rbg also
  draws the masks faster. Same distributions, other bits.
  """
  key_data = jax.random.bits(rng, (4,), jnp.uint32)  # an rbg key is 4 uint32 words
  return jax.random.wrap_key_data(key_data, impl="rbg")


def check_pixelcnn_pp_config(model_config, spec: DatasetSpec) -> None:
  """Values that cannot work, or cannot work together, as one-line UserErrors."""
  if spec.image_shape is None:
    raise UserError("pixelcnn_pp models images; this dataset has none")
  for key in ("features", "num_resnets", "num_scales", "num_mixtures"):
    if model_config[key] < 1:
      raise UserError(f"model.{key}={model_config[key]} must be at least 1")
  if not 0.0 <= model_config.dropout_rate < 1.0:
    raise UserError(f"model.dropout_rate={model_config.dropout_rate} must be in [0, 1)")
  factor = 2 ** (model_config.num_scales - 1)
  height, width = spec.image_shape[:2]
  if height % factor or width % factor:
    raise UserError(f"image size {height}x{width} must be divisible by {factor} "
                    f"(model.num_scales={model_config.num_scales} halves it "
                    f"{model_config.num_scales - 1} times)")


def create_pixelcnn_pp_task(config, spec: DatasetSpec) -> Task:
  model_config = config.model
  check_pixelcnn_pp_config(model_config, spec)
  create_params, apply_model = module_functions(lambda rngs: PixelCNNPlusPlus(
      num_channels=spec.image_shape[-1], num_levels=spec.num_levels,
      features=model_config.features, num_resnets=model_config.num_resnets,
      num_scales=model_config.num_scales, num_mixtures=model_config.num_mixtures,
      dropout_rate=model_config.dropout_rate, rngs=rngs))
  settings = dict(apply_fn=apply_model, num_mixtures=model_config.num_mixtures,
                  num_levels=spec.num_levels)
  fill = functools.partial(pixelcnn_pp_fill, cached=model_config.cached_sampling, **settings)
  sample_settings = dict(image_shape=spec.image_shape, num_classes=0,
                         num_levels=spec.num_levels)
  tx, schedule = make_optimizer(config.train)
  return Task(
      init=make_init(lambda rng: create_params(rbg_key(rng)), tx, config.train.ema_decay > 0),
      train_step=stateless_train_step(functools.partial(pixelcnn_pp_loss, **settings), tx, schedule,
                                      config.train),
      eval_step=functools.partial(pixelcnn_pp_eval_step, **settings),
      log_prob=functools.partial(pixelcnn_pp_log_prob, **settings), log_prob_kind="exact",
      sample=functools.partial(autoregressive_sample, fill=fill, **sample_settings),
      sample_naive=functools.partial(
          autoregressive_sample, fill=functools.partial(fill, cached=False), **sample_settings),
      complete=fill)

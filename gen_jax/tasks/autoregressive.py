"""Autoregressive image models bound to the per-sub-pixel categorical likelihood:
PixelCNN, Gated PixelCNN and PixelRNN (Row LSTM, Diagonal BiLSTM).

A model's apply_fn(params, images, labels) returns logits [B, H, W, C, L];
labels is None for unconditional models. Models with `init_cache`/`logits_at`
sample through the cached path (the same draws as the naive one): PixelRNN's
runs every layer at the drawn pixel only, carrying the LSTM states of the rows
above (`PixelRNN.logits_at`); `sample_naive` reruns the whole network once per
sub-pixel. Same key, same images.
"""

import functools

import jax
import jax.numpy as jnp

from gen_jax import sampling
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.gated_pixelcnn import GatedPixelCNN
from gen_jax.models.pixelcnn import PixelCNN
from gen_jax.models.pixelrnn import PixelRNN
from gen_jax.objectives import likelihoods
from gen_jax.objectives.likelihoods import to_uint8
from gen_jax.tasks.common import (Task, check_divisible, eval_params, make_init, make_optimizer,
                                  module_functions, stateless_train_step)


def autoregressive_loss(params, batch, rng, *, apply_fn, conditional):
  """Mean bits/dim of batch['image'] under a per-sub-pixel categorical model."""
  del rng
  images = batch["image"]  # [B, H, W, C] uint8
  logits = apply_fn(params, images, batch["label"] if conditional else None)
  nll = likelihoods.categorical_nll(logits, images)  # [B] nats
  bpd = likelihoods.bits_per_dim(nll, images[0].size)
  return bpd.mean(), {"bits_per_dim": bpd.mean()}


def autoregressive_log_prob(state, batch, rng, *, apply_fn, conditional):
  """log p(x) = sum_d log p(x_d | x_<d) [B] in nats, exact, with the eval params."""
  del rng
  images = batch["image"]  # [B, H, W, C]
  logits = apply_fn(eval_params(state), images, batch["label"] if conditional else None)
  return -likelihoods.categorical_nll(logits, images)


def log_prob_sums(log_prob: jax.Array, mask: jax.Array, num_dims: int) -> dict:
  """Eval sums over the real (mask = 1) rows from per-example log p(x) [B] in nats."""
  bpd = likelihoods.bits_per_dim(-log_prob, num_dims)
  return {"bits_per_dim": jnp.sum(bpd * mask), "nll_nats": jnp.sum(-log_prob * mask),
          "num_examples": jnp.sum(mask)}


def autoregressive_eval_step(state, batch, rng, *, apply_fn, conditional):
  """Sums over the real (mask = 1) rows: bits/dim and nats per example (from log_prob)."""
  log_prob = autoregressive_log_prob(state, batch, rng, apply_fn=apply_fn,
                                     conditional=conditional)
  return log_prob_sums(log_prob, batch["mask"], batch["image"][0].size)


def autoregressive_fill(state, rng, images, labels, start, *, apply_fn, conditional, cached):
  """Draws sub-pixels start.. of `images` (raster order) and keeps the ones before.

  `cached` goes through the model's init_cache/logits_at (unconditional models):
  the same draws as the naive path, one pixel per layer per step.
  """
  params = eval_params(state)
  if cached:  # conditional models keep their labels in the cache
    return sampling.sample_autoregressive_cached(
        lambda x: apply_fn(params, x, *([labels] if conditional else []), method="init_cache"),
        lambda cache, x, row, column: apply_fn(params, cache, x, row, column, method="logits_at"),
        rng, images, start=start)
  logits_fn = ((lambda x: apply_fn(params, x, labels)) if conditional
               else (lambda x: apply_fn(params, x)))
  return sampling.sample_autoregressive(logits_fn, rng, images, start=start)


def autoregressive_sample(state, rng, num, labels=None, *, fill, image_shape, num_classes,
                          num_levels):
  """`num` samples, uint8 8-bit images [num, H, W, C] (a binarized model's levels 0 / 1
  shown as 0 / 255, as every sampler returns images; `complete` keeps the model's
  levels); a class-conditional model draws sample i from class labels[i] ([num] int),
  or cycles through the classes (0, 1, ...) when labels is None."""
  if not num_classes:
    labels = None
  elif labels is None:
    labels = jnp.arange(num) % num_classes
  levels = fill(state, rng, jnp.zeros((num, *image_shape), jnp.uint8), labels, 0)
  return to_uint8(levels, 0, num_levels - 1)


def create_autoregressive_task(config, spec: DatasetSpec, create_module,
                               num_classes: int = 0, cached_sampling: bool = False) -> Task:
  """Binds an image model (create_module(rngs)) to the categorical likelihood."""
  create_params, apply_model = module_functions(create_module, uniform_heads=("head_out",))
  apply_fn = ((lambda p, x, y: apply_model(p, x, y)) if num_classes
              else (lambda p, x, y: apply_model(p, x)))
  tx, schedule = make_optimizer(config.train)
  bound = dict(apply_fn=apply_fn, conditional=bool(num_classes))
  fill = functools.partial(autoregressive_fill, apply_fn=apply_model,
                           conditional=bool(num_classes), cached=cached_sampling)
  naive_fill = functools.partial(fill, cached=False)
  sample_settings = dict(image_shape=spec.image_shape, num_classes=num_classes,
                         num_levels=spec.num_levels)
  return Task(
      init=make_init(create_params, tx, config.train.ema_decay > 0),
      train_step=stateless_train_step(functools.partial(autoregressive_loss, **bound), tx, schedule,
                                      config.train),
      eval_step=functools.partial(autoregressive_eval_step, **bound),
      log_prob=functools.partial(autoregressive_log_prob, **bound), log_prob_kind="exact",
      sample=functools.partial(autoregressive_sample, fill=fill, **sample_settings),
      sample_naive=functools.partial(autoregressive_sample, fill=naive_fill, **sample_settings),
      num_classes=num_classes,
      complete=fill)


def create_pixelcnn_task(config, spec: DatasetSpec) -> Task:
  model_config = config.model
  num_channels = spec.image_shape[-1]
  check_divisible("model.features", model_config.features, 2 * num_channels,
                  "two halves, one group per colour channel")
  return create_autoregressive_task(config, spec, lambda rngs: PixelCNN(
      num_channels=num_channels, num_levels=spec.num_levels,
      features=model_config.features, num_blocks=model_config.num_blocks,
      kernel_size=model_config.kernel_size, first_kernel_size=model_config.first_kernel_size,
      head_features=model_config.head_features, remat=model_config.remat, rngs=rngs),
      cached_sampling=model_config.cached_sampling)


def create_gated_pixelcnn_task(config, spec: DatasetSpec) -> Task:
  model_config = config.model
  num_channels = spec.image_shape[-1]
  for key in ("features", "skip_features", "head_features"):
    check_divisible(f"model.{key}", model_config[key], num_channels, "one group per colour channel")
  num_classes = spec.num_classes if model_config.class_conditional else 0
  if model_config.class_conditional and not num_classes:
    raise UserError(f"model.class_conditional needs labels; {config.data.name} has none")
  return create_autoregressive_task(config, spec, lambda rngs: GatedPixelCNN(
      num_channels=num_channels, num_levels=spec.num_levels, features=model_config.features,
      num_layers=model_config.num_layers, kernel_size=model_config.kernel_size,
      first_kernel_size=model_config.first_kernel_size,
      skip_features=model_config.skip_features, head_features=model_config.head_features,
      num_classes=num_classes, remat=model_config.remat, rngs=rngs), num_classes,
      cached_sampling=model_config.cached_sampling)


def check_pixelrnn_config(model_config, num_channels: int) -> None:
  for key in ("features", "hidden_features", "head_features"):
    check_divisible(f"model.{key}", model_config[key], num_channels, "one group per colour channel")
  for key in ("kernel_size", "first_kernel_size"):  # the Diagonal BiLSTM has no kernel_size
    if key in model_config and (model_config[key] < 1 or model_config[key] % 2 != 1):
      raise UserError(f"model.{key}={model_config[key]} must be odd and positive")
  if model_config.num_layers < 1:
    raise UserError(f"model.num_layers={model_config.num_layers} must be at least 1")


def create_pixelrnn_task(config, spec: DatasetSpec, layer_type: str) -> Task:
  model_config = config.model
  num_channels = spec.image_shape[-1]
  check_pixelrnn_config(model_config, num_channels)
  return create_autoregressive_task(config, spec, lambda rngs: PixelRNN(
      layer_type=layer_type, num_channels=num_channels, num_levels=spec.num_levels,
      features=model_config.features, hidden_features=model_config.hidden_features,
      num_layers=model_config.num_layers,
      kernel_size=model_config.kernel_size if layer_type == "row_lstm" else None,
      first_kernel_size=model_config.first_kernel_size,
      head_features=model_config.head_features, rngs=rngs),
      cached_sampling=model_config.get("cached_sampling", True))  # runs from before the key


def create_row_lstm_task(config, spec: DatasetSpec) -> Task:
  return create_pixelrnn_task(config, spec, "row_lstm")


def create_diagonal_bilstm_task(config, spec: DatasetSpec) -> Task:
  return create_pixelrnn_task(config, spec, "diagonal_bilstm")

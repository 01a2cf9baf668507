"""The task registry: config.model.name -> a family's pure functions.

A task is four pure functions over one explicit state pytree (DESIGN.md):

  init(rng, example_batch) -> state
  train_step(state, batch, rng) -> (state, metrics)
  eval_step(state, batch, rng) -> per-batch sums, with `num_examples`
  sample(state, rng, num) -> uint8 [num, H, W, C]

The trainer knows only this interface. Most train steps come from one pure
`loss(params, batch, rng) -> (loss, metrics)` through `make_train_step`.
"""

import dataclasses
import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.gated_pixelcnn import GatedPixelCNN
from gen_jax.models.pixelcnn import PixelCNN
from gen_jax.objectives import likelihoods
from gen_jax import sampling


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # [] int32, the number of updates applied
  params: Any  # pure dict of arrays
  opt_state: Any
  ema_params: Any = None  # exponential moving average of params, or None


@dataclasses.dataclass(frozen=True)
class Task:
  init: Callable
  train_step: Callable
  eval_step: Callable
  sample: Callable
  sample_naive: Callable | None = None  # autoregressive: the reference for `sample`
  # complete(state, rng, images, labels, start) -> images with sub-pixels start.. redrawn
  complete: Callable | None = None


def make_optimizer(train_config) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Adam(W) with linear warmup, then constant or cosine decay; optional clipping."""
  warmup = max(train_config.warmup_steps, 0)
  if train_config.lr_schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, train_config.learning_rate, warmup, max(train_config.num_steps, warmup + 1),
        end_value=train_config.learning_rate * train_config.final_lr_fraction)
  else:
    schedule = optax.warmup_constant_schedule(0.0, train_config.learning_rate, warmup)
  parts = []
  if train_config.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train_config.grad_clip_norm))
  parts.append(optax.adamw(schedule, b1=train_config.adam_b1, b2=train_config.adam_b2,
                           weight_decay=train_config.weight_decay))
  return optax.chain(*parts), schedule


def ema_update(ema_params, params, step: jax.Array, decay: float):
  """ema <- d * ema + (1 - d) * params, with d warmed up as min(decay, (1+t)/(10+t))."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema_params, params)


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, ema_decay: float) -> Callable:
  """(state, batch, rng) -> (state, metrics) from a pure loss(params, batch, rng)."""

  def train_step(state: TrainState, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema_params = (None if state.ema_params is None
                  else ema_update(state.ema_params, params, state.step, ema_decay))
    metrics = {**metrics, "loss": loss, "grad_norm": optax.global_norm(grads),
               "learning_rate": schedule(state.step)}
    return TrainState(state.step + 1, params, opt_state, ema_params), metrics

  return train_step


def make_init(create_params: Callable, tx: optax.GradientTransformation,
              use_ema: bool) -> Callable:
  def init(rng, example_batch) -> TrainState:
    del example_batch  # shapes come from the config
    params = create_params(rng)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params),
                      params if use_ema else None)
  return init


def eval_params(state: TrainState):
  """The parameters to evaluate and sample with: the EMA when there is one."""
  return state.params if state.ema_params is None else state.ema_params


def module_functions(create_module: Callable[[nnx.Rngs], nnx.Module]):
  """(create_params(rng) -> pure dict, apply(params, *args)) for an NNX module."""
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: create_module(nnx.Rngs(0))))

  def create_params(rng):
    return nnx.state(create_module(nnx.Rngs(params=rng)), nnx.Param).to_pure_dict()

  def apply(params, *args, method: str = "__call__"):
    return getattr(nnx.merge(graphdef, params), method)(*args)

  return create_params, apply


# ------------------------------------------------- autoregressive image models
# apply_fn(params, images, labels) -> logits [B, H, W, C, L]; labels is None
# for unconditional models.

def autoregressive_loss(params, batch, rng, *, apply_fn, conditional):
  """Mean bits/dim of batch['image'] under a per-sub-pixel categorical model."""
  del rng
  images = batch["image"]  # [B, H, W, C] uint8
  logits = apply_fn(params, images, batch["label"] if conditional else None)
  nll = likelihoods.categorical_nll(logits, images)  # [B] nats
  bpd = likelihoods.bits_per_dim(nll, images[0].size)
  return bpd.mean(), {"bits_per_dim": bpd.mean()}


def autoregressive_eval_step(state, batch, rng, *, apply_fn, conditional):
  """Sums over the real (mask = 1) rows: bits/dim and nats per example."""
  del rng
  images, mask = batch["image"], batch["mask"]
  logits = apply_fn(eval_params(state), images, batch["label"] if conditional else None)
  nll = likelihoods.categorical_nll(logits, images)
  bpd = likelihoods.bits_per_dim(nll, images[0].size)
  return {"bits_per_dim": jnp.sum(bpd * mask), "nll_nats": jnp.sum(nll * mask),
          "num_examples": jnp.sum(mask)}


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


def autoregressive_sample(state, rng, num, *, fill, image_shape, num_classes):
  """`num` samples; class-conditional models cycle through the classes (0, 1, ...)."""
  labels = jnp.arange(num) % num_classes if num_classes else None
  return fill(state, rng, jnp.zeros((num, *image_shape), jnp.uint8), labels, 0)


def create_autoregressive_task(config, spec: DatasetSpec, create_module,
                               num_classes: int = 0, cached_sampling: bool = False) -> Task:
  """Binds an image model (create_module(rngs)) to the categorical likelihood."""
  create_params, apply_model = module_functions(create_module)
  apply_fn = ((lambda p, x, y: apply_model(p, x, y)) if num_classes
              else (lambda p, x, y: apply_model(p, x)))
  tx, schedule = make_optimizer(config.train)
  bound = dict(apply_fn=apply_fn, conditional=bool(num_classes))
  fill = functools.partial(autoregressive_fill, apply_fn=apply_model,
                           conditional=bool(num_classes), cached=cached_sampling)
  naive_fill = functools.partial(fill, cached=False)
  sample_settings = dict(image_shape=spec.image_shape, num_classes=num_classes)
  return Task(
      init=make_init(create_params, tx, config.train.ema_decay > 0),
      train_step=make_train_step(functools.partial(autoregressive_loss, **bound), tx, schedule,
                                 config.train.ema_decay),
      eval_step=functools.partial(autoregressive_eval_step, **bound),
      sample=functools.partial(autoregressive_sample, fill=fill, **sample_settings),
      sample_naive=functools.partial(autoregressive_sample, fill=naive_fill, **sample_settings),
      complete=fill)


def check_divisible(name: str, value: int, divisor: int, why: str) -> None:
  if value % divisor:
    raise UserError(f"{name}={value} must be a multiple of {divisor} ({why})")


def create_pixelcnn_task(config, spec: DatasetSpec) -> Task:
  model_config = config.model
  num_channels = spec.image_shape[-1]
  check_divisible("model.features", model_config.features, 2 * num_channels,
                  "two halves, one group per colour channel")
  return create_autoregressive_task(config, spec, lambda rngs: PixelCNN(
      num_channels=num_channels, num_levels=spec.num_levels,
      features=model_config.features, num_blocks=model_config.num_blocks,
      kernel_size=model_config.kernel_size, first_kernel_size=model_config.first_kernel_size,
      head_features=model_config.head_features, rngs=rngs),
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
      num_classes=num_classes, rngs=rngs), num_classes,
      cached_sampling=model_config.cached_sampling)


TASKS: dict[str, Callable[[Any, DatasetSpec], Task]] = {
    "pixelcnn": create_pixelcnn_task,
    "gated_pixelcnn": create_gated_pixelcnn_task,
}


def create_task(config, spec: DatasetSpec) -> Task:
  if config.model.name not in TASKS:
    raise UserError(f"unknown model.name {config.model.name!r}; known: {', '.join(sorted(TASKS))}")
  return TASKS[config.model.name](config, spec)

"""What every task shares: the state pytree, the optimizer, the train-step helper.

A task is four pure functions over one explicit state pytree (ARCHITECTURE.md):

  init(rng, example_batch) -> state
  train_step(state, batch, rng) -> (state, metrics)
  eval_step(state, batch, rng) -> per-batch sums, with `num_examples`
  sample(state, rng, num, labels=None) -> uint8 [num, H, W, C]

A class-conditional task declares `num_classes` > 0, and its `sample` draws
image i from class labels[i] (labels [num] int in 0..num_classes-1) when given
(a grid of every class when not).

and, for likelihood families, log_prob(state, batch, rng) -> [B] nats per example
(exact, or the bound `log_prob_kind` names), the per-example score whose mean is
eval's bits/dim.

The trainer knows only this interface. Every gradient-trained task builds its
train step with `make_train_step` from one pure
`loss(params, batch, rng, step) -> (loss, (metrics, aux_update))` and, for
non-gradient statistics (VQ codebook sums, an autoencoder's code moments), a
`post_update(state, aux_update, rng) -> (state, metrics)`; the GANs' two-player
steps are their own. `Task.supports` declares which train settings a task's
step implements (BFLOAT16, GRAD_ACCUM); tasks.create_task refuses the others.
"""

import dataclasses
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from gen_jax.errors import UserError
from gen_jax.nn import initialization


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # [] int32, the number of updates applied
  params: Any  # pure dict of arrays
  opt_state: Any
  ema_params: Any = None  # exponential moving average of params, or None
  aux: Any = None  # non-gradient statistics (post_update's), or None


# What Task.supports may hold: train settings beyond the float32, one-batch default.
BFLOAT16 = "bfloat16"  # train.compute_dtype=bfloat16
GRAD_ACCUM = "grad_accum"  # train.grad_accum_steps > 1


@dataclasses.dataclass(frozen=True)
class Task:
  init: Callable
  train_step: Callable
  eval_step: Callable
  sample: Callable  # (state, rng, num, labels=None) -> uint8 [num, H, W, C]
  # classes `sample` is conditioned on (labels [num] in 0..num_classes-1); 0 = unconditional
  num_classes: int = 0
  sample_naive: Callable | None = None  # autoregressive: the reference for `sample`
  # complete(state, rng, images, labels, start) -> images with sub-pixels start.. redrawn
  complete: Callable | None = None
  # write_samples(writer, step, samples) -> path; default: an image grid samples/step_<N>.png
  write_samples: Callable | None = None
  # split_metrics(state, rng, eval_split, mesh) -> {name: float}: eval metrics that need
  # more than per-batch sums (FID, MIG); merged into each eval's results. A 1-D array
  # value is a histogram (entry i = count of bucket i, e.g. code usage): TensorBoard only
  # (eval/<name>), not a metric
  split_metrics: Callable | None = None
  # prepare_eval(mesh): loads what split_metrics needs (e.g. a FID feature network), called
  # before training so that a bad setting fails before the first step, not at the first eval
  prepare_eval: Callable | None = None
  # log_prob(state, batch, rng) -> [B] nats per example of the batch eval_step reads:
  # log p(x) itself or a lower bound on it, as log_prob_kind says: 'exact', 'elbo',
  # 'iwae-<k>', 'vq-bound' (log p(codes) + log p(x | codes)). Eval's bits/dim is
  # -mean(log_prob) / (D ln 2) (D: dimensions of one example; characters for text).
  log_prob: Callable | None = None
  log_prob_kind: str = ""
  # other per-example bounds with log_prob's signature, by kind (a VAE's 'iwae-<k>')
  other_log_probs: dict[str, Callable] = dataclasses.field(default_factory=dict)
  # image_batch(state, images) -> the batch log_prob reads, from model-input images
  # [B, H, W, C] (after binarization); None: {'image': images}. A VQ prior encodes the
  # images into its codes with the frozen stage-1 model here.
  image_batch: Callable | None = None
  # encode(state, images, labels) -> codes, decode(state, codes, labels) -> uint8 8-bit
  # images [B, H, W, C]: families with a latent space (VAE: posterior means; VQ-VAE: code
  # indices). decode(encode(x)) is the reconstruction --mode reconstruct / restore show.
  encode: Callable | None = None
  decode: Callable | None = None
  # A continuous latent space (--mode interpolate / attributes / traverse move through it):
  # encode_latents(state, images, labels) -> z [B, Z] float, decode_latents(state, z,
  # labels) -> uint8 8-bit images [B, H, W, C]. VAE: posterior means and decoder means;
  # AE: its codes; VQ-VAE: the encoder outputs before quantization, flattened.
  encode_latents: Callable | None = None
  decode_latents: Callable | None = None
  # posterior(state, images, labels) -> (means [B, Z], log-variances [B, Z]) of a Gaussian
  # q(z|x): the VAEs (MIG, --mode traverse's KL order)
  posterior: Callable | None = None
  # the train settings train_step implements (BFLOAT16, GRAD_ACCUM: make_train_step's);
  # tasks.create_task refuses the others with a UserError naming the config key
  supports: frozenset = frozenset({BFLOAT16, GRAD_ACCUM})


def make_optimizer(train_config) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Adam(W) with linear warmup, then constant or cosine decay; optional clipping."""
  warmup = max(train_config.warmup_steps, 0)
  if train_config.lr_schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, train_config.learning_rate, warmup, max(train_config.num_steps, warmup + 1),
        end_value=train_config.learning_rate * train_config.final_lr_fraction)
  elif warmup:
    schedule = optax.warmup_constant_schedule(0.0, train_config.learning_rate, warmup)
  else:  # optax's warmup_constant_schedule with 0 warmup steps stays at 0 forever
    schedule = optax.constant_schedule(train_config.learning_rate)
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


def cast_floating(tree, dtype):
  """Floating-point leaves of `tree` in `dtype` (mixed precision: bf16 compute, fp32 master)."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def split_micro_batches(batch, num: int):
  """[B, ...] leaves -> [num, B/num, ...]; micro-batch j takes rows j, j+num, ...

  Interleaving keeps each device's rows on that device: a device holding a
  contiguous block of B/n rows holds a contiguous block of every micro-batch.
  """
  return jax.tree.map(lambda x: x.reshape(x.shape[0] // num, num, *x.shape[1:]).swapaxes(0, 1),
                      batch)


def train_settings(train_config) -> dict:
  """make_train_step's precision and accumulation keywords from config.train."""
  return {"grad_accum_steps": train_config.grad_accum_steps,
          "compute_dtype": train_config.compute_dtype}


def check_supported(supports: frozenset, train_config, model_name: str) -> None:
  """UserError when config.train asks for what `supports` (Task.supports) lacks."""
  if train_config.compute_dtype != "float32" and BFLOAT16 not in supports:
    raise UserError(f"{model_name} computes in float32 only: set train.compute_dtype=float32")
  if train_config.grad_accum_steps != 1 and GRAD_ACCUM not in supports:
    raise UserError(f"{model_name} does not accumulate gradients: set train.grad_accum_steps=1")


def stateless_train_step(loss_fn: Callable, tx: optax.GradientTransformation,
                         schedule: optax.Schedule, train_config) -> Callable:
  """make_train_step with config.train's EMA, precision and accumulation, for a
  loss(params, batch, rng) -> (loss, metrics) that needs no step and updates no statistics."""
  def loss(params, batch, rng, step):
    del step
    value, metrics = loss_fn(params, batch, rng)
    return value, (metrics, None)
  return make_train_step(loss, tx, schedule, train_config.ema_decay,
                         **train_settings(train_config))


def join_micro_batches(stacked):
  """Inverse of split_micro_batches: [num, B/num, ...] leaves -> [B, ...] in batch order."""
  return jax.tree.map(lambda x: x.swapaxes(0, 1).reshape(-1, *x.shape[2:]), stacked)


# post_update's key: fold_in(step key, POST_UPDATE_STREAM), apart from micro-batch keys 0..k-1
POST_UPDATE_STREAM = 2**31 - 1


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, ema_decay: float, *, grad_accum_steps: int = 1,
                    compute_dtype: str = "float32",
                    post_update: Callable | None = None) -> Callable:
  """(state, batch, rng) -> (state, metrics): the one update of gradient-trained tasks.

  loss_fn(params, batch, rng, step) -> (loss, (metrics, aux_update)): `step` is
  the update's index (schedules such as beta-VAE's capacity), `aux_update` a
  pytree of per-example values (leading axis: the batch's rows) or None.

  compute_dtype='bfloat16' runs the loss on a bf16 copy of the params (fp32
  master params, optimizer and gradients; aux_update comes back in fp32).
  grad_accum_steps=k averages the gradients, loss and metrics of k micro-batches
  (a lax.scan): the update of batch B with the activation memory of B/k. The
  micro-batches' aux_update rows are put back in batch order, so post_update
  sees the whole batch's values either way.

  post_update(state, aux_update, rng) -> (state, metrics), given the state after
  the gradient update (step not yet advanced), applies the non-gradient
  statistics (VQ's codebook EMA, an autoencoder's code moments); the parameter
  EMA then follows the params it returns.
  """
  def cast_loss(params, batch, rng, step):
    return loss_fn(cast_floating(params, jnp.dtype(compute_dtype)), batch, rng, step)

  grad_fn = jax.value_and_grad(cast_loss if compute_dtype != "float32" else loss_fn, has_aux=True)

  def accumulated_grads(params, batch, rng, step):
    """((loss, metrics), grads) averaged over micro-batches, and aux_update in batch order."""
    if grad_accum_steps == 1:
      (loss, (metrics, aux_update)), grads = grad_fn(params, batch, rng, step)
      return ((loss, metrics), grads), aux_update

    def add_micro_batch(totals, inputs):
      index, micro_batch = inputs
      (loss, (metrics, aux_update)), grads = grad_fn(params, micro_batch,
                                                     jax.random.fold_in(rng, index), step)
      return jax.tree.map(jnp.add, totals, ((loss, metrics), grads)), aux_update

    micro_shapes = jax.eval_shape(grad_fn, params, jax.tree.map(
        lambda x: x[:x.shape[0] // grad_accum_steps], batch), rng, step)
    (loss, (metrics, _)), grads = micro_shapes
    zeros = jax.tree.map(jnp.zeros_like, ((loss, metrics), grads))
    totals, aux_updates = jax.lax.scan(
        add_micro_batch, zeros,
        (jnp.arange(grad_accum_steps), split_micro_batches(batch, grad_accum_steps)))
    return (jax.tree.map(lambda t: t / grad_accum_steps, totals),
            join_micro_batches(aux_updates))

  def train_step(state: TrainState, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    ((loss, metrics), grads), aux_update = accumulated_grads(state.params, batch, rng,
                                                             state.step)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)
    if post_update is not None:
      state, update_metrics = post_update(state, cast_floating(aux_update, jnp.float32),
                                          jax.random.fold_in(rng, POST_UPDATE_STREAM))
      metrics = {**metrics, **update_metrics}
    ema_params = (None if state.ema_params is None
                  else ema_update(state.ema_params, state.params, state.step, ema_decay))
    metrics = {**metrics, "loss": loss, "grad_norm": optax.global_norm(grads),
               "learning_rate": schedule(state.step)}
    return state.replace(step=state.step + 1, ema_params=ema_params), metrics

  return train_step


def make_init(create_params: Callable, tx: optax.GradientTransformation,
              use_ema: bool, create_aux: Callable | None = None) -> Callable:
  """init(rng, example_batch) -> TrainState; create_aux(params) -> the initial aux."""
  def init(rng, example_batch) -> TrainState:
    del example_batch  # shapes come from the config
    params = create_params(rng)
    return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params),
                      params if use_ema else None,
                      None if create_aux is None else create_aux(params))
  return init


def eval_params(state: TrainState):
  """The parameters to evaluate and sample with: the EMA when there is one."""
  return state.params if state.ema_params is None else state.ema_params


def module_functions(create_module: Callable[[nnx.Rngs], nnx.Module],
                     uniform_heads: tuple[str, ...] = ()):
  """(create_params(rng) -> pure dict, apply(params, *args)) for an NNX module.

  `uniform_heads`: dotted paths of the layers that produce a likelihood's
  parameters (logits), zeroed at creation so the model starts at the uniform
  distribution (nn.initialization.zero_parameters).
  """
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: create_module(nnx.Rngs(0))))

  def create_params(rng):
    module = create_module(nnx.Rngs(params=rng))
    for path in uniform_heads:
      initialization.zero_parameters(initialization.submodule(module, path))
    return nnx.state(module, nnx.Param).to_pure_dict()

  def apply(params, *args, method: str = "__call__"):
    return getattr(nnx.merge(graphdef, params), method)(*args)

  return create_params, apply


def check_divisible(name: str, value: int, divisor: int, why: str) -> None:
  if value % divisor:
    raise UserError(f"{name}={value} must be a multiple of {divisor} ({why})")

"""VQ-VAE and VQ-VAE-2, stage 1: the autoencoder and its codebooks.

The state (common.TrainState) carries non-gradient statistics in its `aux`
beside the parameters (the EMA codebook's running counts and sums, the running
reconstruction error). The shared train step (common.make_train_step) runs

  1. loss = ||x - mu||^2 + beta sum_scales ||z_e - sg(e)||^2 (+ ||sg(z_e) - e||^2
     when the codebook learns by gradient), one Adam update;
  2. post_update, per scale, the codebook update: EMA of the assigned encoder outputs
     (model.codebook_update = 'ema') or nothing more ('loss'); on the first
     step optionally k-means of the batch's encoder outputs; then dead-code
     restarts: a code whose running count falls below a fraction of its
     uniform share moves onto a random encoder output of the batch.

Every statistic is a sum over the global batch, so 1 and N devices agree; with
train.grad_accum_steps=k the loss hands post_update the encoder outputs of the
whole batch (make_train_step reassembles the micro-batches), so the codebook
update is that of one batch.

The decoder gives the mean mu of a discretized Gaussian p(x | z) whose variance
is the running mean squared reconstruction error on training batches (its
maximum-likelihood value for a Gaussian), so eval can report
`decoder_bits_per_dim` = -log2 p(x | z_q) / D and the VQ-VAE bound with a
uniform prior over the codes (the paper's KL = log K per code):

  uniform_prior_bits_per_dim = (-log p(x | z_q) + sum_scales h w log K) / (D ln 2)

plus `psnr` of the 8-bit reconstructions and, per scale, `codebook_perplexity`
and `dead_codes` over the eval split (TensorBoard gets the code-usage histogram).
Samples decode codes drawn independently from the codes' training frequencies
(no prior: configs/vqvae_prior.py trains one). The applications use encode /
decode (code indices) and encode_latents / decode_latents (z_e, unquantized).
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import data, parallel
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.vqvae import MODELS
from gen_jax.objectives import discretized_gaussian as dgauss
from gen_jax.objectives import likelihoods, reconstruction
from gen_jax.objectives import vector_quantization as vq
from gen_jax.objectives.likelihoods import to_uint8
from gen_jax.tasks.common import (Task, TrainState, make_optimizer,
                                  make_train_step, module_functions, train_settings)

CODEBOOK_UPDATES = ("ema", "loss")


# The state: a TrainState, params {"model": module params, "codebooks": {scale: [K, D]}},
#   aux: {"cluster_size": {scale: [K]} running assignment counts N_k (both codebook updates),
#         "cluster_sum": {scale: [K, D]} running sums m_k of assigned outputs (EMA codebook),
#         "reconstruction_variance": [C] running mean squared error: sigma^2 of p(x | z)}


@dataclasses.dataclass(frozen=True)
class VQSettings:
  """The static settings of the VQ objective and codebook updates (from config.model)."""
  scales: tuple[str, ...]
  num_codes: int
  num_levels: int  # pixel levels (256 for 8-bit data)
  commitment_cost: float
  ema_codebook: bool
  decay: float  # of the running counts / sums (and the EMA codebook)
  epsilon: float  # Laplace smoothing of the EMA counts
  kmeans_init: bool
  kmeans_iterations: int
  restart_dead_codes: bool
  dead_code_fraction: float  # dead: running count < this x the uniform share


def metric_name(scale: str, name: str, scales) -> str:
  """`name` for a one-scale model, `<scale>_name` for VQ-VAE-2."""
  return name if len(scales) == 1 else f"{scale}_{name}"


def draws_compile_fast():
  """For random draws of replicated arrays (initial parameters, restarts): XLA:CPU compiles
  partitionable threefry several times slower (11 s, not 3 s, for an init); same values."""
  return jax.threefry_partitionable(False)


def make_quantize(codebooks: dict):
  """quantize(scale, z) -> (straight-through embedding, codes) with these codebooks."""
  def quantize(scale, z):
    embedding, codes = vq.quantize(z, codebooks[scale])
    return vq.straight_through(z, embedding), codes
  return quantize


def decoder_nll(images, mean, variance, num_levels):
  """-log p(x | z) in nats per example under the discretized Gaussian N(mu, variance)."""
  return dgauss.discretized_gaussian_nll(images, mean, 0.5 * jnp.log(variance), num_levels)


def autoencode(params, images, *, apply_fn, settings: VQSettings):
  """images -> (mean [B, H, W, C], {scale: z_e}, {scale: codes}, x [-1, 1])."""
  x = dgauss.levels_to_unit(images, settings.num_levels)  # [B, H, W, C]
  mean, latents, codes = apply_fn(params["model"], x, make_quantize(params["codebooks"]))
  return mean, latents, codes, x


def vq_loss(params, batch, rng, step, *, apply_fn, settings: VQSettings):
  """MSE + beta commitment (+ codebook loss); aux_update: what the codebook update needs,
  per example ({'latents', 'codes'}: {scale: [B, h, w, ...]}, 'channel_error': [B, C])."""
  del rng, step
  mean, latents, codes, x = autoencode(params, batch["image"], apply_fn=apply_fn,
                                       settings=settings)
  squared_error = (x - mean) ** 2  # [B, H, W, C]
  reconstruction = jnp.mean(squared_error)
  loss, metrics = reconstruction, {"reconstruction_mse": reconstruction}
  for scale in settings.scales:
    quantized = params["codebooks"][scale][codes[scale]]
    commitment = vq.commitment_loss(latents[scale], quantized)
    loss = loss + settings.commitment_cost * commitment
    metrics[metric_name(scale, "commitment_loss", settings.scales)] = commitment
    if not settings.ema_codebook:
      loss = loss + vq.codebook_loss(latents[scale], quantized)
  channel_error = jnp.mean(squared_error, axis=(1, 2))  # [B, C]
  return loss, (metrics, {"latents": latents, "codes": codes, "channel_error": channel_error})


def update_codebook(codebook, cluster_size, cluster_sum, z, codes, rng, step, *,
                    settings: VQSettings):
  """One scale's non-gradient step (EMA, k-means at step 0, dead-code restarts) ->
  (codebook, cluster_size, cluster_sum, the number of codes restarted)."""
  num_codes = settings.num_codes
  uniform_share = codes.size / num_codes  # assignments a code gets when all are used equally
  if settings.ema_codebook:
    codebook, cluster_size, cluster_sum = vq.ema_codebook_update(
        cluster_size, cluster_sum, z, codes, decay=settings.decay, epsilon=settings.epsilon)
  else:
    cluster_size = (settings.decay * cluster_size
                    + (1.0 - settings.decay) * vq.code_counts(codes, num_codes))
  kmeans_rng, restart_rng = jax.random.split(rng)
  if settings.kmeans_init:
    def from_kmeans(_):
      centroids, _ = vq.kmeans(z, kmeans_rng, num_codes, settings.kmeans_iterations)
      sizes = jnp.full((num_codes,), uniform_share, jnp.float32)
      return centroids, sizes, centroids * uniform_share
    codebook, cluster_size, cluster_sum = jax.lax.cond(
        step == 0, from_kmeans, lambda same: same, (codebook, cluster_size, cluster_sum))
  if not settings.restart_dead_codes:
    return codebook, cluster_size, cluster_sum, jnp.zeros(())
  codebook, cluster_size, cluster_sum, dead = vq.restart_dead_codes(
      codebook, cluster_size, cluster_sum, z, restart_rng,
      threshold=settings.dead_code_fraction * uniform_share, reset_size=uniform_share)
  return codebook, cluster_size, cluster_sum, jnp.sum(dead)


def vq_post_update(state: TrainState, aux_update, rng, *, settings: VQSettings):
  """make_train_step's post_update: the codebook updates after the Adam update."""
  aux = state.aux
  codebooks, cluster_size, cluster_sum, metrics = {}, {}, {}, {}
  for index, scale in enumerate(settings.scales):
    codes = aux_update["codes"][scale]
    with draws_compile_fast():  # k-means seeds and restart picks
      codebooks[scale], cluster_size[scale], cluster_sum[scale], restarted = update_codebook(
          state.params["codebooks"][scale], aux["cluster_size"][scale],
          aux["cluster_sum"][scale], aux_update["latents"][scale], codes,
          jax.random.fold_in(rng, index), state.step, settings=settings)
    counts = vq.code_counts(codes, settings.num_codes)
    name = functools.partial(metric_name, scale, scales=settings.scales)
    metrics[name("batch_perplexity")] = vq.codebook_perplexity(counts)
    metrics[name("restarted_codes")] = restarted
  variance = (settings.decay * aux["reconstruction_variance"]
              + (1.0 - settings.decay) * jnp.mean(aux_update["channel_error"], axis=0))
  return state.replace(
      params={**state.params, "codebooks": codebooks},
      aux={"cluster_size": cluster_size, "cluster_sum": cluster_sum,
           "reconstruction_variance": variance}), metrics


def vq_init(rng, example_batch, *, create_params, tx, settings: VQSettings, latent_shapes,
            embedding_dim: int, num_channels: int) -> TrainState:
  with draws_compile_fast():
    return create_vq_state(rng, example_batch, create_params=create_params, tx=tx,
                           settings=settings, latent_shapes=latent_shapes,
                           embedding_dim=embedding_dim, num_channels=num_channels)


def create_vq_state(rng, example_batch, *, create_params, tx, settings: VQSettings,
                    latent_shapes, embedding_dim: int, num_channels: int) -> TrainState:
  model_rng, codebook_rng = jax.random.split(rng)
  batch_size = example_batch["image"].shape[0]
  codebooks, cluster_size, cluster_sum = {}, {}, {}
  for index, scale in enumerate(settings.scales):
    codebook = jax.random.normal(jax.random.fold_in(codebook_rng, index),
                                 (settings.num_codes, embedding_dim))
    uniform_share = batch_size * math.prod(latent_shapes[scale]) / settings.num_codes
    codebooks[scale] = codebook
    cluster_size[scale] = jnp.full((settings.num_codes,), uniform_share, jnp.float32)
    cluster_sum[scale] = codebook * uniform_share
  # Mean 0 (zeroed last decoder layer) and variance 1/3, that of uniform levels on [-1, 1]:
  # p(x | z) starts as the Gaussian closest to the uniform distribution.
  aux = {"cluster_size": cluster_size, "cluster_sum": cluster_sum,
         "reconstruction_variance": jnp.full((num_channels,), 1.0 / 3.0, jnp.float32)}
  params = {"model": create_params(model_rng), "codebooks": codebooks}
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), None, aux)


def vq_eval_step(state: TrainState, batch, rng, *, apply_fn, settings: VQSettings,
                 latent_shapes) -> dict:
  """Sums over the real rows: psnr, decoder and uniform-prior bits/dim, commitment."""
  del rng
  images, mask = batch["image"], batch["mask"]
  mean, latents, codes, _ = autoencode(state.params, images, apply_fn=apply_fn, settings=settings)
  num_dims = images[0].size
  decoder_bits = likelihoods.bits_per_dim(
      decoder_nll(images, mean, state.aux["reconstruction_variance"], settings.num_levels),
      num_dims)
  code_bits = sum(math.prod(latent_shapes[scale]) * math.log2(settings.num_codes)
                  for scale in settings.scales) / num_dims
  reconstructions = dgauss.unit_to_levels(mean, settings.num_levels)
  psnr = reconstruction.psnr(images, reconstructions, settings.num_levels - 1)  # [B] dB
  sums = {"psnr": jnp.sum(psnr * mask),
          "decoder_bits_per_dim": jnp.sum(decoder_bits * mask),
          "uniform_prior_bits_per_dim": jnp.sum((decoder_bits + code_bits) * mask),
          "num_examples": jnp.sum(mask)}
  for scale in settings.scales:
    quantized = state.params["codebooks"][scale][codes[scale]]
    error = jnp.mean((latents[scale] - quantized) ** 2, axis=(1, 2, 3))  # [B]
    sums[metric_name(scale, "commitment_loss", settings.scales)] = jnp.sum(error * mask)
  return sums


def vq_uniform_prior_log_prob(state: TrainState, batch, rng, *, apply_fn, settings: VQSettings,
                              latent_shapes) -> jax.Array:
  """The 'vq-bound' under a uniform prior over the codes [B] in nats, a lower bound on
  log p(x) >= log p(x | codes(x)) - sum_scales h w log K (eval's uniform_prior_bits_per_dim)."""
  del rng
  images = batch["image"]
  mean, _, _, _ = autoencode(state.params, images, apply_fn=apply_fn, settings=settings)
  code_nats = sum(math.prod(latent_shapes[scale]) * math.log(settings.num_codes)
                  for scale in settings.scales)
  variance = state.aux["reconstruction_variance"]
  return -decoder_nll(images, mean, variance, settings.num_levels) - code_nats


def vq_encode(state: TrainState, images, labels=None, *, apply_fn, settings: VQSettings) -> dict:
  """{scale: code indices [B, h, w]} of images [B, H, W, C]."""
  del labels
  return autoencode(state.params, images, apply_fn=apply_fn, settings=settings)[2]


def decode_codes(params, codes: dict, *, apply_fn, num_levels: int) -> jax.Array:
  """{scale: code indices [B, h, w]} -> uint8 8-bit images [B, H, W, C]: the decoder mean at
  the data's levels, shown on 0..255 (binarized: 0 or 255). params: {'model', 'codebooks'}."""
  embeddings = {scale: params["codebooks"][scale][indices] for scale, indices in codes.items()}
  mean = apply_fn(params["model"], embeddings, method="decode")  # [B, H, W, C] in [-1, 1]
  return to_uint8(dgauss.unit_to_levels(mean, num_levels), 0, num_levels - 1)


def vq_decode(state: TrainState, codes: dict, labels=None, *, apply_fn, settings: VQSettings):
  """{scale: code indices [B, h, w]} -> uint8 8-bit images [B, H, W, C] (decode_codes)."""
  del labels
  return decode_codes(state.params, codes, apply_fn=apply_fn, num_levels=settings.num_levels)


def vq_encode_latents(state: TrainState, images, labels=None, *, apply_fn, settings: VQSettings):
  """The encoder outputs z_e before quantization, flattened: [B, sum_scales h w D]."""
  del labels
  latents = autoencode(state.params, images, apply_fn=apply_fn, settings=settings)[1]
  return jnp.concatenate([latents[scale].reshape(len(images), -1) for scale in settings.scales], -1)


def vq_decode_latents(state: TrainState, z, labels=None, *, apply_fn, settings: VQSettings,
                      latent_shapes):
  """z [B, sum_scales h w D] -> nearest codes per scale -> uint8 8-bit images [B, H, W, C]."""
  codes, start = {}, 0
  for scale in settings.scales:
    codebook = state.params["codebooks"][scale]  # [K, D]
    size = math.prod(latent_shapes[scale]) * codebook.shape[-1]
    part = z[:, start:start + size].reshape(len(z), *latent_shapes[scale], codebook.shape[-1])
    codes[scale], start = vq.quantize(part, codebook)[1], start + size
  return vq_decode(state, codes, apply_fn=apply_fn, settings=settings)


def vq_code_counts(state: TrainState, batch, *, apply_fn, settings: VQSettings) -> dict:
  """{scale: [K]} how often each code is used by the real rows of an eval batch."""
  _, _, codes, _ = autoencode(state.params, batch["image"], apply_fn=apply_fn, settings=settings)
  weights = batch["mask"][:, None, None]
  return {scale: vq.code_counts(codes[scale], settings.num_codes, weights)
          for scale in settings.scales}


def vq_split_metrics(state, rng, eval_split, mesh, *, count_fn, settings: VQSettings,
                     eval_batch_size: int, binarization: str, seed: int) -> dict:
  """Per scale over the whole eval split: codebook_perplexity, dead_codes, code_usage (1-D)."""
  del rng
  totals = None
  for batch in data.eval_batches(eval_split, global_batch_size=eval_batch_size,
                                 process_index=jax.process_index(),
                                 process_count=jax.process_count(), binarization=binarization,
                                 seed=seed):
    counts = count_fn(state, parallel.to_global(batch, mesh))
    totals = counts if totals is None else jax.tree.map(jnp.add, totals, counts)
  metrics = {}
  for scale, counts in jax.device_get(totals).items():
    name = functools.partial(metric_name, scale, scales=settings.scales)
    metrics[name("codebook_perplexity")] = float(vq.codebook_perplexity(counts))
    metrics[name("dead_codes")] = float(vq.dead_codes(counts))
    metrics[name("code_usage")] = np.asarray(counts)  # the trainer logs 1-D arrays as histograms
  return metrics


def sample_codes(state: TrainState, rng, num: int, *, scales, latent_shapes) -> dict:
  """{scale: [num, h, w]} codes drawn independently from their training frequencies."""
  codes = {}
  for index, scale in enumerate(scales):
    logits = jnp.log(jnp.maximum(state.aux["cluster_size"][scale], 1e-12))
    codes[scale] = jax.random.categorical(jax.random.fold_in(rng, index), logits,
                                          shape=(num, *latent_shapes[scale]))
  return codes


def vq_sample(state: TrainState, rng, num: int, *, apply_fn, settings: VQSettings, latent_shapes):
  """uint8 8-bit images [num, H, W, C]: sample_codes (no prior), decoded."""
  codes = sample_codes(state, rng, num, scales=settings.scales, latent_shapes=latent_shapes)
  return vq_decode(state, codes, apply_fn=apply_fn, settings=settings)


def create_vq_model(model_config, spec: DatasetSpec):
  """(create_params, apply_fn, scales, latent_shapes) of config.model's VQ-VAE."""
  model_class = MODELS[model_config.name]
  latent_shapes = model_class.latent_shapes(spec.image_shape, model_config.num_downsamples)
  create_params, apply_fn = module_functions(lambda rngs: model_class(
      num_channels=spec.image_shape[-1], features=model_config.features,
      residual_hidden=model_config.residual_hidden, num_residual=model_config.num_residual,
      num_downsamples=model_config.num_downsamples, embedding_dim=model_config.embedding_dim,
      rngs=rngs), uniform_heads=("decoder.upsamples.-1",))  # mean 0 at init
  return create_params, apply_fn, model_class.scales, latent_shapes


def create_vq_settings(model_config, spec: DatasetSpec, scales) -> VQSettings:
  if model_config.codebook_update not in CODEBOOK_UPDATES:
    raise UserError(f"model.codebook_update={model_config.codebook_update!r}: use "
                    f"{' or '.join(CODEBOOK_UPDATES)}")
  if model_config.codebook_size < 2:
    raise UserError(f"model.codebook_size={model_config.codebook_size} must be at least 2")
  if not 0.0 <= model_config.codebook_decay < 1.0:
    raise UserError(f"model.codebook_decay={model_config.codebook_decay} must be in [0, 1)")
  return VQSettings(
      scales=tuple(scales), num_codes=model_config.codebook_size, num_levels=spec.num_levels,
      commitment_cost=model_config.commitment_cost,
      ema_codebook=model_config.codebook_update == "ema", decay=model_config.codebook_decay,
      epsilon=model_config.codebook_epsilon, kmeans_init=model_config.kmeans_init,
      kmeans_iterations=model_config.kmeans_iterations,
      restart_dead_codes=model_config.restart_dead_codes,
      dead_code_fraction=model_config.dead_code_fraction)


def create_vq_optimizer(train_config, ema_codebook: bool):
  """Adam on everything the loss trains; an EMA codebook is left to its own update."""
  tx, schedule = make_optimizer(train_config)
  if ema_codebook:
    tx = optax.multi_transform({"gradient": tx, "ema": optax.set_to_zero()},
                               {"model": "gradient", "codebooks": "ema"})
  return tx, schedule


def create_vq_task(config, spec: DatasetSpec) -> Task:
  model_config = config.model
  if spec.image_shape is None:
    raise UserError(f"{model_config.name} needs image data; {config.data.name} has none")
  if config.train.ema_decay > 0:
    raise UserError(f"train.ema_decay={config.train.ema_decay}: {model_config.name} keeps no "
                    "parameter EMA (its codebook has its own, model.codebook_decay)")
  create_params, apply_fn, scales, latent_shapes = create_vq_model(model_config, spec)
  settings = create_vq_settings(model_config, spec, scales)
  tx, schedule = create_vq_optimizer(config.train, settings.ema_codebook)
  bound = dict(apply_fn=apply_fn, settings=settings)
  count_fn = jax.jit(functools.partial(vq_code_counts, **bound))
  return Task(
      init=functools.partial(vq_init, create_params=create_params, tx=tx, settings=settings,
                             latent_shapes=latent_shapes,
                             embedding_dim=model_config.embedding_dim,
                             num_channels=spec.image_shape[-1]),
      train_step=make_train_step(
          functools.partial(vq_loss, **bound), tx, schedule, 0.0, **train_settings(config.train),
          post_update=functools.partial(vq_post_update, settings=settings)),
      eval_step=functools.partial(vq_eval_step, latent_shapes=latent_shapes, **bound),
      sample=functools.partial(vq_sample, latent_shapes=latent_shapes, **bound),
      log_prob=functools.partial(vq_uniform_prior_log_prob, latent_shapes=latent_shapes,
                                 **bound),
      log_prob_kind="vq-bound (uniform prior)",
      encode=functools.partial(vq_encode, **bound), decode=functools.partial(vq_decode, **bound),
      split_metrics=functools.partial(vq_split_metrics, count_fn=count_fn, settings=settings,
                                      eval_batch_size=config.train.eval_batch_size,
                                      binarization=config.data.binarization, seed=config.seed),
      encode_latents=functools.partial(vq_encode_latents, **bound),
      decode_latents=functools.partial(vq_decode_latents, latent_shapes=latent_shapes, **bound))

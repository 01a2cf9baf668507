"""VAEs (MLP / conv, optionally class-conditional) and plain autoencoders.

A VAE's loss is the negative ELBO (objectives/elbo.py) with the analytic KL to
N(0, I) and one reparameterized z, under the decoder likelihood named by
config.model.likelihood:

  bernoulli    binarized data (config.data.binarization = dynamic | fixed), logits
  categorical  L-way softmax per sub-pixel (256 on 8-bit data)
  gaussian     per-sub-pixel mean and log-scale on uniformly dequantized data,
               y = (x + u) / 256; -log P(x) <= E_u[-log p(y)] + D log 256, so bits/dim
               counts the 8-bit data (objectives/likelihoods.uniform_dequantize)

Eval reports the negative ELBO (`bits_per_dim`, `nll_nats`) and the IWAE bound
with k = config.eval.iwae_samples (`iwae_bits_per_dim`, `iwae_nats`), chunked
over k. The autoencoder minimises squared error on [0, 1] intensities and
reports `psnr`; it samples from a Gaussian fitted to its training codes (a
running mean and covariance kept in its state, Ghosh et al. 2020). With
--config.eval.classifier_workdir set, eval also scores the samples (decoder
means) by classifier-feature FID/KID, as the GANs are (tasks/sample_metrics.py).

Applications are extra modes (`--mode reconstruct|interpolate|attributes|restore`),
built on two functions every model here has: encode (images -> codes, the
posterior means) and decode (codes -> mean intensities in [0, 1]).
"""

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data import corruptions
from gen_jax.data.pipeline import as_8bit, model_inputs
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.vae import VAE
from gen_jax.nn import initialization
from gen_jax.objectives import elbo, likelihoods, reconstruction
from gen_jax.tasks.common import (Task, eval_params, make_init, make_optimizer,
                                  make_train_step, module_functions, train_settings)
from gen_jax.tasks.sample_metrics import with_sample_metrics

LIKELIHOODS = ("bernoulli", "categorical", "gaussian")
ARCHITECTURES = ("mlp", "conv")


# ----------------------------------------------------------------------------- likelihoods

def outputs_per_subpixel(likelihood: str, num_levels: int) -> int:
  """Decoder numbers per sub-pixel: a logit, L logits, or (mean, log_scale)."""
  return {"bernoulli": 1, "categorical": num_levels, "gaussian": 2, "squared_error": 1}[likelihood]


def decoder_nll(likelihood: str, outputs: jax.Array, images: jax.Array, rng: jax.Array,
                num_levels: int) -> jax.Array:
  """-log p(x|z) per example [B] in nats, from decoder outputs [B, H, W, C, O].

  For `gaussian` this is a one-draw estimate of an upper bound on the 8-bit NLL
  (the dequantization noise u is drawn from `rng`); the others are exact.
  """
  if likelihood == "bernoulli":
    return likelihoods.bernoulli_nll(outputs[..., 0], images)
  if likelihood == "categorical":
    return likelihoods.categorical_nll(outputs, images)
  if likelihood == "gaussian":
    return likelihoods.dequantized_gaussian_nll(rng, images, outputs[..., 0], outputs[..., 1],
                                                num_levels)
  raise ValueError(f"unknown likelihood {likelihood!r}")


def decoder_mean(likelihood: str, outputs: jax.Array, num_levels: int) -> jax.Array:
  """E[x|z] / (L - 1): mean intensities [B, H, W, C] in [0, 1] from outputs [B, H, W, C, O]."""
  if likelihood in ("bernoulli", "squared_error"):
    return jax.nn.sigmoid(outputs[..., 0])
  if likelihood == "categorical":
    levels = jnp.arange(num_levels, dtype=jnp.float32)
    return jax.nn.softmax(outputs, axis=-1) @ levels / (num_levels - 1)
  if likelihood == "gaussian":  # y = (x + u) / L  =>  E[x] = L E[y] - 1/2
    return jnp.clip((outputs[..., 0] * num_levels - 0.5) / (num_levels - 1), 0.0, 1.0)
  raise ValueError(f"unknown likelihood {likelihood!r}")


def to_uint8(intensities: jax.Array) -> jax.Array:
  """[0, 1] floats -> uint8 0..255 (for image grids and 8-bit comparisons)."""
  return jnp.round(jnp.clip(intensities, 0.0, 1.0) * 255.0).astype(jnp.uint8)


# ----------------------------------------------------------------------------- VAE

def elbo_terms(params, images, labels, rng, *, apply_fn, likelihood, num_levels):
  """(-log p(x|z) [B], KL(q(z|x) || p(z)) [B]) in nats, with one z ~ q(z|x)."""
  z_rng, likelihood_rng = jax.random.split(rng)
  mean, log_variance = apply_fn(params, images, labels, method="encode")  # [B, Z] x2
  z = elbo.reparameterized_sample(z_rng, mean, log_variance)
  outputs = apply_fn(params, z, labels, method="decode")  # [B, H, W, C, O]
  nll = decoder_nll(likelihood, outputs, images, likelihood_rng, num_levels)
  return nll, elbo.gaussian_kl_to_standard_normal(mean, log_variance)


def vae_loss(params, batch, rng, step, *, terms_fn, beta, conditional):
  """Mean negative beta-ELBO in bits/dim; metrics report the beta = 1 bound."""
  del step
  images = batch["image"]
  nll, kl = terms_fn(params, images, batch["label"] if conditional else None, rng)
  num_dims = images[0].size
  loss = likelihoods.bits_per_dim(-elbo.elbo(-nll, kl, beta), num_dims).mean()
  return loss, ({"bits_per_dim": likelihoods.bits_per_dim(nll + kl, num_dims).mean(),
                 "kl_nats": kl.mean(), "reconstruction_nats": nll.mean()}, None)


def iwae_log_likelihood(params, images, labels, rng, *, apply_fn, likelihood, num_levels,
                        num_samples, chunk_size):
  """IWAE_k lower bound on log p(x) [B] in nats, k = num_samples drawn chunk_size at a time."""
  mean, log_variance = apply_fn(params, images, labels, method="encode")  # [B, Z]
  batch_size = len(images)

  def log_weights_fn(keys):  # [c] keys -> [c, B] log weights
    num = len(keys)
    z_keys, likelihood_keys = jnp.unstack(jax.vmap(jax.random.split)(keys), axis=1)
    z = jax.vmap(lambda key: elbo.reparameterized_sample(key, mean, log_variance))(z_keys)
    tiled_labels = None if labels is None else jnp.tile(labels, num)
    outputs = apply_fn(params, z.reshape(num * batch_size, -1), tiled_labels, method="decode")
    outputs = outputs.reshape(num, batch_size, *outputs.shape[1:])  # [c, B, H, W, C, O]
    nll = jax.vmap(lambda out, key: decoder_nll(likelihood, out, images, key, num_levels))(
        outputs, likelihood_keys)  # [c, B]
    return elbo.log_importance_weights(-nll, z, mean, log_variance)

  return elbo.chunked_iwae_bound(log_weights_fn, rng, num_samples, chunk_size)


def vae_log_prob(state, batch, rng, *, terms_fn, conditional):
  """The ELBO [B] in nats, a lower bound on log p(x): E_q[log p(x|z)] - KL, one z ~ q(z|x)
  drawn from the first half of split(rng) (as vae_eval_step draws it)."""
  labels = batch["label"] if conditional else None
  nll, kl = terms_fn(eval_params(state), batch["image"], labels, jax.random.split(rng)[0])
  return -(nll + kl)


def vae_iwae_log_prob(state, batch, rng, *, iwae_fn, conditional):
  """The IWAE_k bound [B] in nats, log (1/k) sum_i p(x, z_i) / q(z_i|x), from the second
  half of split(rng) (as vae_eval_step draws it)."""
  labels = batch["label"] if conditional else None
  return iwae_fn(eval_params(state), batch["image"], labels, jax.random.split(rng)[1])


def vae_eval_step(state, batch, rng, *, terms_fn, iwae_fn, conditional):
  """Sums over real rows: negative ELBO and, when iwae_fn is set, the IWAE bound."""
  params = eval_params(state)
  images, mask = batch["image"], batch["mask"]
  labels = batch["label"] if conditional else None
  nll, kl = terms_fn(params, images, labels, jax.random.split(rng)[0])
  negative_elbo, num_dims = nll + kl, images[0].size
  sums = {"bits_per_dim": jnp.sum(likelihoods.bits_per_dim(negative_elbo, num_dims) * mask),
          "nll_nats": jnp.sum(negative_elbo * mask), "kl_nats": jnp.sum(kl * mask),
          "reconstruction_nats": jnp.sum(nll * mask), "num_examples": jnp.sum(mask)}
  if iwae_fn is not None:
    iwae_nll = -vae_iwae_log_prob(state, batch, rng, iwae_fn=iwae_fn, conditional=conditional)
    sums["iwae_nats"] = jnp.sum(iwae_nll * mask)
    sums["iwae_bits_per_dim"] = jnp.sum(likelihoods.bits_per_dim(iwae_nll, num_dims) * mask)
  return sums


def class_rows(num: int, num_classes: int) -> tuple[jax.Array, int]:
  """(labels [num], columns): one row per class (cycling when num > columns * classes)."""
  columns = max(1, num // num_classes)
  return (jnp.arange(num) // columns) % num_classes, columns


def vae_sample(state, rng, num, labels=None, *, apply_fn, likelihood, num_levels, latent_dim,
               num_classes):
  """Decoder means at z ~ N(0, I). A conditional model decodes sample i as class labels[i]
  ([num] int, one z each) or, when labels is None, gets one row per class with the same z
  in every row of a column (the style held fixed while the class changes)."""
  if num_classes and labels is not None:
    z = jax.random.normal(rng, (num, latent_dim))
  elif num_classes:
    labels, columns = class_rows(num, num_classes)
    z = jax.random.normal(rng, (columns, latent_dim))[jnp.arange(num) % columns]
  else:
    labels, z = None, jax.random.normal(rng, (num, latent_dim))
  outputs = apply_fn(eval_params(state), z, labels, method="decode")
  return to_uint8(decoder_mean(likelihood, outputs, num_levels))


# ----------------------------------------------------------------------------- autoencoder

# The autoencoder's state is a common.TrainState whose aux holds the code statistics:
# {"code_mean": [Z] running mean of the training codes, "code_second_moment": [Z, Z]
# running E[z z^T]}.


def autoencoder_reconstruction(params, images, *, apply_fn):
  """Mean intensities [B, H, W, C] in [0, 1] of the reconstruction of `images`."""
  return decoder_mean("squared_error", apply_fn(params, images, None), 0)


def autoencoder_loss(params, batch, rng, step, *, apply_fn, num_levels):
  """Mean squared error on [0, 1] intensities; aux_update: the codes [B, Z] of the batch."""
  del rng, step
  images = batch["image"]
  target = images.astype(jnp.float32) / (num_levels - 1)
  codes, _ = apply_fn(params, images, None, method="encode")
  reconstructed = decoder_mean("squared_error", apply_fn(params, codes, None, method="decode"), 0)
  mse = reconstruction.mean_squared_error(target, reconstructed)
  return mse.mean(), ({"psnr": reconstruction.psnr(target, reconstructed, 1.0).mean()},
                      jax.lax.stop_gradient(codes))


def update_code_moments(aux: dict, codes: jax.Array, decay: float) -> dict:
  """EMA of the code mean [Z] and second moment [Z, Z] over training batches."""
  mean = decay * aux["code_mean"] + (1 - decay) * codes.mean(0)
  second = decay * aux["code_second_moment"] + (1 - decay) * (codes.T @ codes) / len(codes)
  return {"code_mean": mean, "code_second_moment": second}


def make_autoencoder_functions(create_params, apply_fn, tx, schedule, *, num_levels,
                               latent_dim, code_decay, **settings):
  """(init, train_step): the shared step, whose post_update moves the code moments with
  the codes of the step's forward pass (the params before the update)."""
  init = make_init(create_params, tx, use_ema=False, create_aux=lambda _: {
      "code_mean": jnp.zeros(latent_dim), "code_second_moment": jnp.eye(latent_dim)})

  def post_update(state, codes, rng):
    del rng
    return state.replace(aux=update_code_moments(state.aux, codes, code_decay)), {}

  train_step = make_train_step(
      functools.partial(autoencoder_loss, apply_fn=apply_fn, num_levels=num_levels), tx,
      schedule, 0.0, **settings, post_update=post_update)
  return init, train_step


def autoencoder_eval_step(state, batch, rng, *, apply_fn, num_levels):
  """Sums of per-image PSNR and squared error on the 8-bit scale over the real rows."""
  del rng
  images, mask = batch["image"], batch["mask"]
  reference = images.astype(jnp.float32) * (255.0 / (num_levels - 1))
  restored = to_uint8(autoencoder_reconstruction(state.params, images, apply_fn=apply_fn))
  return {"psnr": jnp.sum(reconstruction.psnr(reference, restored) * mask),
          "mse": jnp.sum(reconstruction.mean_squared_error(reference, restored) * mask),
          "num_examples": jnp.sum(mask)}


def code_covariance(aux: dict) -> jax.Array:
  return aux["code_second_moment"] - jnp.outer(aux["code_mean"], aux["code_mean"])


def sample_codes(aux: dict, rng, num: int) -> jax.Array:
  """z ~ N(code mean, code covariance) [num, Z], the Gaussian fitted to the training codes."""
  latent_dim = aux["code_mean"].shape[-1]
  cholesky = jnp.linalg.cholesky(code_covariance(aux) + 1e-5 * jnp.eye(latent_dim))
  return aux["code_mean"] + jax.random.normal(rng, (num, latent_dim)) @ cholesky.T


def autoencoder_sample(state, rng, num, *, apply_fn):
  """Decodes codes drawn from the Gaussian fitted to the training codes."""
  outputs = apply_fn(state.params, sample_codes(state.aux, rng, num), None, method="decode")
  return to_uint8(decoder_mean("squared_error", outputs, 0))


# ----------------------------------------------------------------------------- applications

@dataclasses.dataclass(frozen=True)
class Codec:
  """What the applications need from a trained model; encode/decode are pure and jit'able."""
  encode: Callable  # (state, images, labels) -> codes [B, Z]: posterior means (AE: the code)
  decode: Callable  # (state, z, labels) -> mean intensities [B, H, W, C] in [0, 1]
  num_levels: int  # levels of the model's input (2 when binarized)
  binarization: str  # config.data.binarization: how 8-bit images become model input
  conditional: bool  # encode/decode take the labels
  seed: int


def source_levels(codec: Codec) -> int:
  """Levels of the split's stored images (binarized models read 8-bit images)."""
  return 256 if codec.binarization != "none" else codec.num_levels


def apply_in_batches(fn: Callable, batch_size: int, *arrays) -> np.ndarray:
  """fn over leading-axis batches of `arrays` (None passes through); the last batch is
  padded to batch_size with copies of its first row, so fn compiles once."""
  num = len(arrays[0])
  outputs = []
  for start in range(0, num, batch_size):
    chunk = [None if a is None else np.asarray(a[start:start + batch_size]) for a in arrays]
    real = len(chunk[0])
    chunk = [None if a is None else np.concatenate([a, np.repeat(a[:1], batch_size - real, 0)])
             for a in chunk]
    outputs.append(np.asarray(jax.device_get(fn(*chunk)))[:real])
  return np.concatenate(outputs)


def make_reconstruct_fn(codec: Codec, state) -> Callable:
  """(8-bit images, labels) -> uint8 reconstructions: preprocess, encode, decode the mean."""
  @jax.jit
  def reconstruct(state, inputs, labels):
    return to_uint8(codec.decode(state, codec.encode(state, inputs, labels), labels))

  def run(images, labels, seed):
    inputs = model_inputs(images, codec.binarization, codec.seed, seed)
    return reconstruct(state, inputs, labels if codec.conditional else None)
  return run


def split_head(split, num: int):
  """(8-bit images, labels or None) of the first `num` examples (all when num is 0)."""
  num = len(split) if not num else min(num, len(split))
  return split.images[:num], None if split.labels is None else split.labels[:num]


def reconstruct_mode(state, rng, eval_split, step, writer, mesh, *, codec, eval_config,
                     batch_size):
  """Grid of originals / reconstructions; metric: mean PSNR over eval.num_examples images."""
  del rng, mesh
  images, labels = split_head(eval_split, eval_config.num_examples)
  reconstruct = make_reconstruct_fn(codec, state)
  restored = apply_in_batches(lambda x, y: reconstruct(x, y, 0), batch_size, images, labels)
  originals = as_8bit(images, source_levels(codec))
  columns = min(eval_config.num_images, len(images))
  writer.write_images(step, "reconstruct", np.concatenate([originals[:columns], restored[:columns]]),
                      num_columns=columns)
  return {"psnr": float(np.mean(reconstruction.psnr(originals, restored)))}


def interpolate_mode(state, rng, eval_split, step, writer, mesh, *, codec, eval_config,
                     batch_size):
  """Rows: test image a, decodes of (1 - t) z_a + t z_b for t in [0, 1], test image b.

  z are posterior means; a conditional model decodes every step with a's label.
  """
  del rng, mesh, batch_size
  num_pairs = min(eval_config.num_images, len(eval_split) // 2)
  if num_pairs == 0:
    raise UserError("interpolate needs at least 2 eval images")
  images, labels = split_head(eval_split, 2 * num_pairs)
  inputs = model_inputs(images, codec.binarization, codec.seed, 1)
  labels = labels if codec.conditional else None
  codes = np.asarray(jax.jit(codec.encode)(state, inputs, labels))  # [2P, Z]
  start, end = codes[:num_pairs], codes[num_pairs:]
  weights = np.linspace(0.0, 1.0, eval_config.interpolation_steps)[None, :, None]  # [1, T, 1]
  path = (1 - weights) * start[:, None] + weights * end[:, None]  # [P, T, Z]
  path_labels = None if labels is None else np.repeat(labels[:num_pairs], len(weights[0]))
  decoded = to_uint8(jax.jit(codec.decode)(state, path.reshape(-1, codes.shape[-1]), path_labels))
  decoded = np.asarray(decoded).reshape(num_pairs, -1, *images.shape[1:])
  originals = as_8bit(images, source_levels(codec))
  grid = np.concatenate([originals[:num_pairs, None], decoded, originals[num_pairs:, None]], 1)
  writer.write_images(step, "interpolate", grid.reshape(-1, *images.shape[1:]),
                      num_columns=grid.shape[1])
  return {}


def attribute_vector(codes: np.ndarray, labels: np.ndarray, source: int, target: int) -> np.ndarray:
  """mean(z | y = target) - mean(z | y = source) over codes [N, Z] with labels [N]."""
  return codes[labels == target].mean(0) - codes[labels == source].mean(0)


def attributes_mode(state, rng, eval_split, step, writer, mesh, *, codec, eval_config,
                    batch_size):
  """Adds alpha * (mean code of class `to` - mean code of class `from`) to class-`from` images.

  Rows: one test image of class eval.attribute_from, then decodes for alpha in
  0, 0.25, ..., 1.5; a conditional model gets one more column, its code decoded
  with the label `to` (the class changed, the code kept).
  """
  del rng, mesh
  source, target = eval_config.attribute_from, eval_config.attribute_to
  if eval_split.labels is None:
    raise UserError("attributes needs a labelled eval split")
  images, labels = split_head(eval_split, eval_config.num_examples)
  for name, value in (("attribute_from", source), ("attribute_to", target)):
    if not np.any(labels == value):
      raise UserError(f"eval.{name}={value}: no eval image has that label")
  inputs = model_inputs(images, codec.binarization, codec.seed, 2)
  encode = jax.jit(codec.encode)
  codes = apply_in_batches(lambda x, y: encode(state, x, y if codec.conditional else None),
                           batch_size, inputs, labels)
  vector = attribute_vector(codes, labels, source, target)
  chosen = np.flatnonzero(labels == source)[:eval_config.num_images]
  alphas = np.linspace(0.0, 1.5, 7)
  shifted = codes[chosen][:, None] + alphas[None, :, None] * vector  # [R, A, Z]
  decode_labels = np.full(shifted.shape[:2], source)
  if codec.conditional:
    shifted = np.concatenate([shifted, codes[chosen][:, None]], 1)
    decode_labels = np.concatenate([decode_labels, np.full((len(chosen), 1), target)], 1)
  decoded = to_uint8(jax.jit(codec.decode)(
      state, shifted.reshape(-1, codes.shape[-1]),
      decode_labels.reshape(-1) if codec.conditional else None))
  decoded = np.asarray(decoded).reshape(len(chosen), -1, *images.shape[1:])
  originals = as_8bit(images[chosen], source_levels(codec))
  grid = np.concatenate([originals[:, None], decoded], 1)
  writer.write_images(step, f"attributes_{source}_to_{target}", grid.reshape(-1, *images.shape[1:]),
                      num_columns=grid.shape[1])
  return {"attribute_vector_norm": float(np.linalg.norm(vector))}


def corrupt(images: np.ndarray, eval_config, seed: int) -> dict[str, np.ndarray]:
  """The three corruptions of 8-bit `images`, each from its own seeded generator."""
  settings = {"gaussian_noise": eval_config.noise_std,
              "salt_and_pepper": eval_config.salt_and_pepper_fraction,
              "masked_block": eval_config.block_size}
  return {name: corruptions.CORRUPTIONS[name](images, value, np.random.default_rng([seed, index]))
          for index, (name, value) in enumerate(settings.items())}


def restore_mode(state, rng, eval_split, step, writer, mesh, *, codec, eval_config,
                 batch_size):
  """Corrupts test images (noise, salt-and-pepper, a masked block) and reconstructs them.

  Metrics per corruption: mean PSNR against the clean image of the corrupted input
  (`<name>_psnr_corrupted`) and of the reconstruction (`<name>_psnr_restored`).
  Grid rows: clean, then corrupted / restored for each corruption.
  """
  del rng, mesh
  if source_levels(codec) != 256:
    raise UserError("restore corrupts 8-bit images; this model's data is not 8-bit")
  images, labels = split_head(eval_split, eval_config.num_examples)
  reconstruct = make_reconstruct_fn(codec, state)
  metrics, rows = {}, [images[:eval_config.num_images]]
  for index, (name, corrupted) in enumerate(corrupt(images, eval_config, codec.seed).items()):
    restored = apply_in_batches(lambda x, y: reconstruct(x, y, 10 + index), batch_size,
                                corrupted, labels)
    metrics[f"{name}_psnr_corrupted"] = float(np.mean(reconstruction.psnr(images, corrupted)))
    metrics[f"{name}_psnr_restored"] = float(np.mean(reconstruction.psnr(images, restored)))
    rows += [corrupted[:eval_config.num_images], restored[:eval_config.num_images]]
  writer.write_images(step, "restore", np.concatenate(rows), num_columns=len(rows[0]))
  return metrics


def make_modes(codec: Codec, config) -> dict[str, Callable]:
  bound = dict(codec=codec, eval_config=config.eval, batch_size=config.train.eval_batch_size)
  return {name: functools.partial(fn, **bound) for name, fn in (
      ("reconstruct", reconstruct_mode), ("interpolate", interpolate_mode),
      ("attributes", attributes_mode), ("restore", restore_mode))}


# ----------------------------------------------------------------------------- tasks

def check_config(config, spec: DatasetSpec, *, variational: bool) -> None:
  """One-line UserErrors for values that cannot work together."""
  model_config, eval_config = config.model, config.eval
  if spec.image_shape is None:
    raise UserError(f"model.name={model_config.name} needs image data; {config.data.name} has none")
  if model_config.architecture not in ARCHITECTURES:
    raise UserError(f"model.architecture={model_config.architecture!r}: use mlp or conv")
  height, width, _ = spec.image_shape
  if model_config.architecture == "conv" and (height % 4 or width % 4):
    raise UserError(f"model.architecture=conv halves the image twice; {height}x{width} "
                    "is not a multiple of 4")
  if model_config.latent_dim <= 0:
    raise UserError(f"model.latent_dim={model_config.latent_dim} must be positive")
  if eval_config.num_images <= 0 or eval_config.interpolation_steps < 2:
    raise UserError("eval.num_images must be > 0 and eval.interpolation_steps >= 2")
  if not variational:
    return
  if model_config.likelihood not in LIKELIHOODS:
    raise UserError(f"model.likelihood={model_config.likelihood!r}: use one of "
                    f"{', '.join(LIKELIHOODS)}")
  if model_config.likelihood == "bernoulli" and spec.num_levels != 2:
    raise UserError("model.likelihood=bernoulli needs binary data: set "
                    "data.binarization=dynamic (or fixed)")
  if model_config.beta < 0:
    raise UserError(f"model.beta={model_config.beta} must be >= 0")
  if eval_config.iwae_samples < 0 or eval_config.iwae_chunk_size < 1:
    raise UserError("eval.iwae_samples must be >= 0 and eval.iwae_chunk_size >= 1")
  if model_config.class_conditional and not spec.num_classes:
    raise UserError(f"model.class_conditional needs labels; {config.data.name} has none")


def create_vae_module(model_config, spec: DatasetSpec, *, likelihood: str, num_classes: int,
                      variational: bool) -> Callable:
  def create(rngs):
    model = VAE(
        architecture=model_config.architecture, image_shape=spec.image_shape,
        latent_dim=model_config.latent_dim,
        outputs_per_subpixel=outputs_per_subpixel(likelihood, spec.num_levels),
        num_levels=spec.num_levels, hidden_sizes=tuple(model_config.hidden_sizes),
        features=model_config.features, num_classes=num_classes, variational=variational,
        rngs=rngs)
    if variational:
      start_near_uniform(model.decoder.mlp.layers[-1] if model_config.architecture == "mlp"
                         else model.decoder.out, likelihood)
    return model
  return create


def start_near_uniform(head, likelihood: str) -> None:
  """Zeroes the decoder's last layer: Bernoulli / categorical p(x|z) start uniform (1 or 8
  bits/dim); a Gaussian's bias then gives y = (x + u) / L in [0, 1] mean 1/2 and sigma
  1/sqrt(12), the Gaussian closest to uniform (8.25 bits/dim)."""
  initialization.zero_parameters(head)
  if likelihood == "gaussian":  # outputs (mean, log sigma) innermost per sub-pixel
    pairs = head.bias[...].reshape(-1, 2)
    head.bias.set_value(pairs.at[:, 0].set(0.5).at[:, 1].set(-0.5 * math.log(12.0)).reshape(-1))


def write_class_rows(writer, step, samples, *, num_classes):
  return writer.write_images(step, "step", samples,
                             num_columns=class_rows(len(samples), num_classes)[1])


@dataclasses.dataclass(frozen=True)
class VAEParts:
  """The pure pieces of a VAE config that tasks built on the VAE (beta-VAE) reuse."""
  create_params: Callable  # rng -> params
  apply_fn: Callable  # (params, *args, method=...) -> the VAE module's outputs
  terms_fn: Callable  # (params, images, labels, rng) -> (nll [B], kl [B]) in nats
  tx: Any  # optax.GradientTransformation
  schedule: Callable  # step -> learning rate
  codec: Codec  # encode / decode for the applications
  num_classes: int  # 0 unless class-conditional


def vae_parts(config, spec: DatasetSpec) -> VAEParts:
  check_config(config, spec, variational=True)
  model_config = config.model
  num_classes = spec.num_classes if model_config.class_conditional else 0
  likelihood, num_levels = model_config.likelihood, spec.num_levels
  create_params, apply_fn = module_functions(create_vae_module(
      model_config, spec, likelihood=likelihood, num_classes=num_classes, variational=True))
  tx, schedule = make_optimizer(config.train)
  codec = Codec(
      encode=lambda state, x, y: apply_fn(eval_params(state), x, y, method="encode")[0],
      decode=lambda state, z, y: decoder_mean(
          likelihood, apply_fn(eval_params(state), z, y, method="decode"), num_levels),
      num_levels=num_levels, binarization=config.data.binarization,
      conditional=bool(num_classes), seed=config.seed)
  terms_fn = functools.partial(elbo_terms, apply_fn=apply_fn, likelihood=likelihood,
                               num_levels=num_levels)
  return VAEParts(create_params, apply_fn, terms_fn, tx, schedule, codec, num_classes)


def create_vae_task(config, spec: DatasetSpec, parts: VAEParts | None = None,
                    train_step: Callable | None = None) -> Task:
  """VAE / CVAE: negative ELBO training, ELBO + IWAE eval, prior samples, applications.

  `parts` and `train_step` let a variant (beta-VAE) swap the loss and keep the rest.
  """
  parts = parts or vae_parts(config, spec)
  model_config = config.model
  num_classes, conditional = parts.num_classes, parts.codec.conditional
  bound = dict(apply_fn=parts.apply_fn, likelihood=model_config.likelihood,
               num_levels=spec.num_levels)
  iwae_fn = (functools.partial(iwae_log_likelihood, **bound,
                               num_samples=config.eval.iwae_samples,
                               chunk_size=config.eval.iwae_chunk_size)
             if config.eval.iwae_samples else None)
  if train_step is None:
    train_step = make_train_step(functools.partial(
        vae_loss, terms_fn=parts.terms_fn, beta=model_config.beta, conditional=conditional),
        parts.tx, parts.schedule, config.train.ema_decay, **train_settings(config.train))
  return with_sample_metrics(Task(
      init=make_init(parts.create_params, parts.tx, config.train.ema_decay > 0),
      train_step=train_step,
      eval_step=functools.partial(vae_eval_step, terms_fn=parts.terms_fn, iwae_fn=iwae_fn,
                                  conditional=conditional),
      sample=functools.partial(vae_sample, **bound, latent_dim=model_config.latent_dim,
                               num_classes=num_classes),
      num_classes=num_classes,
      write_samples=(functools.partial(write_class_rows, num_classes=num_classes)
                     if conditional else None),
      modes=make_modes(parts.codec, config),
      log_prob=functools.partial(vae_log_prob, terms_fn=parts.terms_fn, conditional=conditional),
      log_prob_kind="elbo",
      other_log_probs=({} if iwae_fn is None else {
          f"iwae-{config.eval.iwae_samples}": functools.partial(
              vae_iwae_log_prob, iwae_fn=iwae_fn, conditional=conditional)}),
      encode=parts.codec.encode,
      decode=lambda state, z, labels: to_uint8(parts.codec.decode(state, z, labels))),
      config, spec.image_shape)


def create_autoencoder_task(config, spec: DatasetSpec) -> Task:
  """Plain autoencoder: squared-error training, PSNR eval, samples from the fitted code Gaussian."""
  check_config(config, spec, variational=False)
  model_config = config.model
  create_params, apply_fn = module_functions(create_vae_module(
      model_config, spec, likelihood="squared_error", num_classes=0, variational=False))
  tx, schedule = make_optimizer(config.train)
  init, train_step = make_autoencoder_functions(
      create_params, apply_fn, tx, schedule, num_levels=spec.num_levels,
      latent_dim=model_config.latent_dim, code_decay=model_config.code_ema_decay,
      **train_settings(config.train))
  codec = Codec(
      encode=lambda state, x, y: apply_fn(state.params, x, None, method="encode")[0],
      decode=lambda state, z, y: decoder_mean(
          "squared_error", apply_fn(state.params, z, None, method="decode"), 0),
      num_levels=spec.num_levels, binarization=config.data.binarization, conditional=False,
      seed=config.seed)
  return with_sample_metrics(Task(
      init=init, train_step=train_step,
      eval_step=functools.partial(autoencoder_eval_step, apply_fn=apply_fn,
                                  num_levels=spec.num_levels),
      sample=functools.partial(autoencoder_sample, apply_fn=apply_fn),
      modes=make_modes(codec, config)), config, spec.image_shape)

"""VAEs (MLP / conv, optionally class-conditional) and plain autoencoders.

A VAE's loss is the negative ELBO (objectives/elbo.py) with the analytic KL to
N(0, I) and one reparameterized z, under the decoder likelihood named by
config.model.likelihood: bernoulli (binarized data), categorical or gaussian (on
uniformly dequantized 8-bit data), all in objectives/elbo.py.

Eval reports the negative ELBO (`bits_per_dim`, `nll_nats`) and the IWAE bound
with k = config.eval.iwae_samples (`iwae_bits_per_dim`, `iwae_nats`), chunked
over k. The autoencoder minimises squared error on [0, 1] intensities and
reports `psnr`; it samples from a Gaussian fitted to its training codes (a
running mean and covariance kept in its state, Ghosh et al. 2020). With
--config.eval.classifier_workdir set, eval also scores the samples (decoder
means) by classifier-feature FID/KID, as the GANs are (tasks/sample_metrics.py).

The applications (gen_jax/applications/: --mode reconstruct, interpolate,
attributes, restore, traverse) use the task's hooks: encode / encode_latents
(images -> posterior means; the autoencoder's code), decode / decode_latents
(codes -> 8-bit decoder means) and, for the VAEs, posterior (q(z|x)).
"""

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.vae import VAE
from gen_jax.nn import initialization
from gen_jax.objectives import elbo, likelihoods, reconstruction
from gen_jax.objectives.elbo import LIKELIHOODS, decoder_mean, decoder_nll, outputs_per_subpixel
from gen_jax.objectives.likelihoods import to_uint8
from gen_jax.tasks.common import (Task, eval_params, make_init, make_optimizer,
                                  make_train_step, module_functions, train_settings)
from gen_jax.tasks.sample_metrics import with_sample_metrics

ARCHITECTURES = ("mlp", "conv")


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
  return to_uint8(decoder_mean(likelihood, outputs, num_levels), 0.0, 1.0)


def vae_posterior(state, images, labels=None, *, apply_fn, conditional):
  """(means [B, Z], log-variances [B, Z]) of q(z|x) (q(z|x, y) when conditional)."""
  return apply_fn(eval_params(state), images, labels if conditional else None, method="encode")


def vae_decode_latents(state, z, labels=None, *, apply_fn, likelihood, num_levels, conditional):
  """uint8 [B, H, W, C]: the decoder means E[x|z] of latents z [B, Z] on the 8-bit scale."""
  outputs = apply_fn(eval_params(state), z, labels if conditional else None, method="decode")
  return to_uint8(decoder_mean(likelihood, outputs, num_levels), 0.0, 1.0)


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
  restored = to_uint8(autoencoder_reconstruction(state.params, images, apply_fn=apply_fn),
                      0.0, 1.0)
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


def autoencoder_encode(state, images, labels=None, *, apply_fn):
  """The codes [B, Z] of images."""
  del labels
  return apply_fn(state.params, images, None, method="encode")[0]


def autoencoder_decode(state, codes, labels=None, *, apply_fn):
  """uint8 [B, H, W, C]: the reconstructions of codes [B, Z] on the 8-bit scale."""
  del labels
  outputs = apply_fn(state.params, codes, None, method="decode")
  return to_uint8(decoder_mean("squared_error", outputs, 0), 0.0, 1.0)


def autoencoder_sample(state, rng, num, *, apply_fn):
  """Decodes codes drawn from the Gaussian fitted to the training codes."""
  return autoencoder_decode(state, sample_codes(state.aux, rng, num), apply_fn=apply_fn)


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
  num_classes: int  # 0 unless class-conditional


def vae_parts(config, spec: DatasetSpec) -> VAEParts:
  check_config(config, spec, variational=True)
  model_config = config.model
  num_classes = spec.num_classes if model_config.class_conditional else 0
  create_params, apply_fn = module_functions(create_vae_module(
      model_config, spec, likelihood=model_config.likelihood, num_classes=num_classes,
      variational=True))
  tx, schedule = make_optimizer(config.train)
  terms_fn = functools.partial(elbo_terms, apply_fn=apply_fn, likelihood=model_config.likelihood,
                               num_levels=spec.num_levels)
  return VAEParts(create_params, apply_fn, terms_fn, tx, schedule, num_classes)


def create_vae_task(config, spec: DatasetSpec, parts: VAEParts | None = None,
                    train_step: Callable | None = None) -> Task:
  """VAE / CVAE: negative ELBO training, ELBO + IWAE eval, prior samples, latent hooks.

  `parts` and `train_step` let a variant (beta-VAE) swap the loss and keep the rest.
  """
  parts = parts or vae_parts(config, spec)
  model_config = config.model
  num_classes = parts.num_classes
  conditional = bool(num_classes)
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
  posterior = functools.partial(vae_posterior, apply_fn=parts.apply_fn, conditional=conditional)
  encode = lambda state, images, labels=None: posterior(state, images, labels)[0]  # the means
  decode = functools.partial(vae_decode_latents, **bound, conditional=conditional)
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
      log_prob=functools.partial(vae_log_prob, terms_fn=parts.terms_fn, conditional=conditional),
      log_prob_kind="elbo",
      other_log_probs=({} if iwae_fn is None else {
          f"iwae-{config.eval.iwae_samples}": functools.partial(
              vae_iwae_log_prob, iwae_fn=iwae_fn, conditional=conditional)}),
      encode=encode, decode=decode, encode_latents=encode, decode_latents=decode,
      posterior=posterior),
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
  encode = functools.partial(autoencoder_encode, apply_fn=apply_fn)
  decode = functools.partial(autoencoder_decode, apply_fn=apply_fn)
  return with_sample_metrics(Task(
      init=init, train_step=train_step,
      eval_step=functools.partial(autoencoder_eval_step, apply_fn=apply_fn,
                                  num_levels=spec.num_levels),
      sample=functools.partial(autoencoder_sample, apply_fn=apply_fn),
      encode=encode, decode=decode, encode_latents=encode, decode_latents=decode),
      config, spec.image_shape)

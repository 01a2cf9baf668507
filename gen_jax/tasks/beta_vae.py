"""beta-VAE (Higgins et al. 2017), optionally capacity-annealed (Burgess et al. 2018).

The VAE family's model, eval and applications (tasks/vae.py) with the KL term
weighted by model.beta, or, when model.capacity_max > 0, the pressure
beta |KL - C(t)| towards a capacity C growing linearly over
model.capacity_steps (objectives/beta_vae.py). On data with known generative
factors (a 'factors' feature, e.g. data.name=sprites) each eval adds the
Mutual Information Gap of the posterior means over the eval split (`mig`, and
`mig_<factor>` per factor); `--mode traverse` writes latent traversal grids.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import data
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.evaluation import disentanglement
from gen_jax.objectives import beta_vae, elbo, likelihoods
from gen_jax.tasks import vae
from gen_jax.tasks.common import eval_params, make_train_step, train_settings


def beta_vae_train_loss(params, batch, rng, step, *, terms_fn, beta, capacity_max,
                        capacity_steps):
  """Mean beta-VAE (capacity_max 0) or capacity loss in bits/dim, the capacity C(step)
  growing linearly to capacity_max; metrics: the beta = 1 bound."""
  capacity = (beta_vae.capacity_schedule(step, capacity_max, capacity_steps)
              if capacity_max > 0 else None)
  images = batch["image"]
  nll, kl = terms_fn(params, images, None, rng)  # [B] nats each
  losses = (beta_vae.beta_vae_loss(nll, kl, beta) if capacity is None
            else beta_vae.capacity_loss(nll, kl, beta, capacity))
  num_dims = images[0].size
  metrics = {"bits_per_dim": likelihoods.bits_per_dim(nll + kl, num_dims).mean(),
             "kl_nats": kl.mean(), "reconstruction_nats": nll.mean()}
  if capacity is not None:
    metrics["capacity_nats"] = capacity
  return likelihoods.bits_per_dim(losses, num_dims).mean(), (metrics, None)


def posterior_moments(state, images, *, encode, batch_size, binarization: str, seed: int):
  """(means [N, Z], log-variances [N, Z]) of q(z|x) over 8-bit `images` as the model sees
  them (data.model_inputs), in batches."""
  inputs = data.model_inputs(images, binarization, seed, 4)
  encode_batch = jax.jit(lambda state, x: jnp.concatenate(encode(state, x), axis=-1))
  moments = vae.apply_in_batches(lambda x: encode_batch(state, x), batch_size, inputs)
  return np.split(moments, 2, axis=-1)


def mig_metrics(state, rng, eval_split, mesh, *, encode, batch_size, num_bins, num_examples,
                factor_names, binarization: str, seed: int):
  """{'mig', 'mig_<factor>'}: the MIG of the posterior means against the split's factors."""
  del rng, mesh
  num = len(eval_split) if not num_examples else min(num_examples, len(eval_split))
  means, _ = posterior_moments(state, eval_split.images[:num], encode=encode,
                               batch_size=batch_size, binarization=binarization, seed=seed)
  mig, gaps = disentanglement.mutual_information_gap(
      means, eval_split.features["factors"][:num], num_bins)
  return {"mig": mig, **{f"mig_{name}": float(gap) for name, gap in zip(factor_names, gaps)}}


def traverse_mode(state, rng, eval_split, step, writer, mesh, *, encode, decode, eval_config,
                  batch_size, binarization: str, seed: int):
  """Latent traversals: samples/traversal<i>_<step>.png for the first eval.num_images images.

  Row r varies the latent with the r-th largest mean KL(q(z_d|x) || N(0, 1)) over
  eval.num_examples images across linspace(-limit, limit, steps), the others
  held at the image's posterior mean. Returns each latent's mean KL and the
  number of latents above 0.1 nats (`active_latents`).
  """
  del rng, mesh
  num = len(eval_split) if not eval_config.num_examples else min(eval_config.num_examples,
                                                                  len(eval_split))
  means, log_variances = posterior_moments(state, eval_split.images[:num], encode=encode,
                                           batch_size=batch_size, binarization=binarization,
                                           seed=seed)
  kl_per_latent = np.asarray(elbo.gaussian_kl_to_standard_normal(
      means[..., None], log_variances[..., None])).mean(0)  # [Z]
  order = np.argsort(-kl_per_latent)
  values = np.linspace(-eval_config.traversal_limit, eval_config.traversal_limit,
                       eval_config.traversal_steps)
  decode_batch = jax.jit(decode)
  image_shape = eval_split.images.shape[1:]
  for index in range(min(eval_config.num_images, num)):
    latents = disentanglement.traversal_latents(means[index], order, values)  # [Z, S, Z]
    decoded = decode_batch(state, jnp.asarray(latents.reshape(-1, latents.shape[-1]),
                                              jnp.float32))
    writer.write_images(step, f"traversal{index}",
                        np.asarray(vae.to_uint8(decoded)).reshape(-1, *image_shape),
                        num_columns=len(values))
  return {"active_latents": float(np.sum(kl_per_latent > 0.1)),
          **{f"kl_nats_latent{d}": float(kl) for d, kl in enumerate(kl_per_latent)}}


def check_beta_vae_config(config) -> None:
  model_config, eval_config = config.model, config.eval
  if model_config.capacity_max < 0 or model_config.capacity_steps < 0:
    raise UserError("model.capacity_max and model.capacity_steps must be >= 0")
  if model_config.class_conditional:
    raise UserError("model.name=beta_vae is unconditional: set model.class_conditional=False")
  if eval_config.classifier_workdir or eval_config.inception_weights:
    raise UserError("model.name=beta_vae reports MIG at eval, not FID/KID: leave "
                    "eval.classifier_workdir and eval.inception_weights empty")
  if eval_config.mig_bins < 2:
    raise UserError(f"eval.mig_bins={eval_config.mig_bins} must be at least 2")
  if eval_config.traversal_steps < 2 or eval_config.traversal_limit <= 0:
    raise UserError("eval.traversal_steps must be >= 2 and eval.traversal_limit > 0")


def create_beta_vae_task(config, spec: DatasetSpec):
  """The VAE task with the beta / capacity loss, MIG at eval and a traverse mode."""
  check_beta_vae_config(config)
  parts = vae.vae_parts(config, spec)
  model_config, eval_config = config.model, config.eval
  train_step = make_train_step(
      functools.partial(beta_vae_train_loss, terms_fn=parts.terms_fn, beta=model_config.beta,
                        capacity_max=model_config.capacity_max,
                        capacity_steps=model_config.capacity_steps),
      parts.tx, parts.schedule, config.train.ema_decay, **train_settings(config.train))
  task = vae.create_vae_task(config, spec, parts, train_step)
  # (posterior means, log-variances) of q(z|x)
  encode = lambda state, x: parts.apply_fn(eval_params(state), x, None, method="encode")
  decode = lambda state, z: parts.codec.decode(state, z, None)
  batch_size = config.train.eval_batch_size
  preprocessing = dict(binarization=config.data.binarization, seed=config.seed)
  split_metrics = None
  if "factors" in spec.example_features():
    factor_names = (spec.extras or {}).get(
        "factor_names", tuple(str(k) for k in range(spec.example_features()["factors"][0][0])))
    split_metrics = functools.partial(
        mig_metrics, encode=encode, batch_size=batch_size, num_bins=eval_config.mig_bins,
        num_examples=eval_config.mig_examples, factor_names=factor_names, **preprocessing)
  traverse = functools.partial(traverse_mode, encode=encode, decode=decode,
                               eval_config=eval_config, batch_size=batch_size, **preprocessing)
  return dataclasses.replace(task, train_step=train_step, split_metrics=split_metrics,
                             modes={**task.modes, "traverse": traverse})

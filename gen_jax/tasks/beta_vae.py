"""beta-VAE (Higgins et al. 2017), optionally capacity-annealed (Burgess et al. 2018).

The VAE family's model and eval (tasks/vae.py) with the KL term
weighted by model.beta, or, when model.capacity_max > 0, the pressure
beta |KL - C(t)| towards a capacity C growing linearly over
model.capacity_steps (objectives/beta_vae.py). On data with known generative
factors (a 'factors' feature, e.g. data.name=sprites) each eval adds the
Mutual Information Gap of the posterior means over the eval split (`mig`, and
`mig_<factor>` per factor); `--mode traverse` (applications/latent_space.py)
writes latent traversal grids.
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
from gen_jax.objectives import beta_vae, likelihoods
from gen_jax.tasks import vae
from gen_jax.tasks.common import make_train_step, train_settings


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


@functools.cache
def jitted_moments(posterior):
  """jit of state, x -> [B, 2Z] concatenated (means, log-variances), one per posterior
  function: the task's is compiled once, not at every eval."""
  return jax.jit(lambda state, x: jnp.concatenate(posterior(state, x), axis=-1))


def posterior_moments(state, split, *, posterior, batch_size, binarization: str, seed: int):
  """(means [N, Z], log-variances [N, Z]) of q(z|x) over the split's images as eval feeds
  them to the model (data.eval_batches: eval's binarization, the last batch padded)."""
  posterior_batch = jitted_moments(posterior)
  moments = np.concatenate([np.asarray(posterior_batch(state, batch["image"]))
                            for batch in data.eval_batches(split, global_batch_size=batch_size,
                                                           binarization=binarization, seed=seed)])
  return np.split(moments[:len(split)], 2, axis=-1)


def mig_metrics(state, rng, eval_split, mesh, *, posterior, batch_size, num_bins, num_examples,
                factor_names, binarization: str, seed: int):
  """{'mig', 'mig_<factor>'}: the MIG of the posterior means against the split's factors."""
  del rng, mesh
  split = eval_split.head(num_examples)
  means, _ = posterior_moments(state, data.image_split(split.images), posterior=posterior,
                               batch_size=batch_size, binarization=binarization, seed=seed)
  mig, gaps = disentanglement.mutual_information_gap(means, split.features["factors"], num_bins)
  return {"mig": mig, **{f"mig_{name}": float(gap) for name, gap in zip(factor_names, gaps)}}


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
  """The VAE task with the beta / capacity loss and MIG at eval."""
  check_beta_vae_config(config)
  parts = vae.vae_parts(config, spec)
  model_config, eval_config = config.model, config.eval
  train_step = make_train_step(
      functools.partial(beta_vae_train_loss, terms_fn=parts.terms_fn, beta=model_config.beta,
                        capacity_max=model_config.capacity_max,
                        capacity_steps=model_config.capacity_steps),
      parts.tx, parts.schedule, config.train.ema_decay, **train_settings(config.train))
  task = vae.create_vae_task(config, spec, parts, train_step)
  split_metrics = None
  if "factors" in spec.example_features():
    factor_names = (spec.factors.names if spec.factors is not None else
                    tuple(str(k) for k in range(spec.example_features()["factors"][0][0])))
    split_metrics = functools.partial(
        mig_metrics, posterior=lambda state, x: task.posterior(state, x, None),
        batch_size=config.train.eval_batch_size, num_bins=eval_config.mig_bins,
        num_examples=eval_config.mig_examples, factor_names=factor_names,
        binarization=config.data.binarization, seed=config.seed)
  return dataclasses.replace(task, train_step=train_step, split_metrics=split_metrics)

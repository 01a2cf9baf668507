"""The semi-supervised VAE (M2, Kingma et al. 2014) on a partly labelled image dataset.

Batches come from data.name=semi_supervised: {'image' binary, 'label' (-1 when
hidden), 'labelled'}. The unlabelled bound U(x) sums over every class, so one
step decodes each image once per class. Eval reports the test `accuracy` of
q(y|x) and the negative unlabelled bound -U(x) (>= -log p(x)) in bits/dim of
the binarized images.

M1+M2 (data.m1_workdir set, tasks/m1_features.py): x is a trained VAE's latent
z1 instead of the pixels. Batches hold {'z1_mean', 'z1_log_variance'} of
q(z1|image) over M1's active units; a training step draws z1 from it afresh,
eval reads the means. p(z1|y, z2) is a diagonal Gaussian (a learned mean and
log-variance). Eval reports `accuracy` and -U(z1) per example in nats of the
features, `z1_negative_elbo_nats` (a density of continuous features, not an
image likelihood: no bits/dim), and `class_mean_accuracy`: the nearest labelled
class mean's on the same features, what the labels alone give. Samples decode
M2's mean z1 through M1's decoder (Bernoulli means), the M1 latent's inactive
units at 0 (the prior mean).
"""

import functools
import math

import jax
import jax.numpy as jnp

from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.semi_supervised_vae import SemiSupervisedVAE
from gen_jax.objectives import elbo, likelihoods, semi_supervised
from gen_jax.tasks import m1_features
from gen_jax.tasks.common import (Task, eval_params, make_init, make_optimizer, module_functions,
                                  stateless_train_step)


def flatten_images(images: jax.Array) -> jax.Array:
  """[B, H, W, C] binary uint8 -> [B, H*W*C] float32."""
  return images.reshape(images.shape[0], -1).astype(jnp.float32)


def pixel_inputs(batch, rng):
  """(x, rng): M2 over pixels reads the binary images [B, H, W, C]."""
  return batch["image"], rng


def sampled_features(batch, rng):
  """(z1 ~ q(z1|image) [B, D], rng): M1+M2's training inputs, drawn afresh each step."""
  feature_rng, rng = jax.random.split(rng)
  return elbo.reparameterized_sample(feature_rng, batch["z1_mean"], batch["z1_log_variance"]), rng


def mean_features(batch, rng):
  """(E[z1|image] [B, D], rng): M1+M2's eval inputs, the posterior means."""
  return batch["z1_mean"], rng


def every_class_bounds(params, images, rng, *, apply_fn, num_classes, gaussian=False):
  """(L(x, y) [B, K] for y = 0 .. K-1, log q(y|x) [B, K]), one z ~ q(z|x, y) per class.

  z for class y is mean_y + exp(log_var_y / 2) * eps[:, y], eps ~ N(0, I) [B, K, Z]
  drawn from `rng`. `images` are binary images (Bernoulli p(x|y, z)) or, gaussian,
  features [B, D] under p(x|y, z) = N(x; mu(y, z), diag exp(log_var(y, z))).
  """
  x = flatten_images(images)  # [B, D]
  class_log_probs = jax.nn.log_softmax(apply_fn(params, x, method="classify"))  # [B, K]
  mean, log_variance = apply_fn(params, x, method="encode_every_class")  # [B, K, Z]
  z = elbo.reparameterized_sample(rng, mean, log_variance)  # [B, K, Z]
  labels = jnp.broadcast_to(jnp.arange(num_classes), z.shape[:2])  # [B, K]
  logits = apply_fn(params, z, labels, method="decode")  # [B, K, D] ([B, K, 2D] gaussian)
  num, dims = x.shape
  if gaussian:
    feature_mean, feature_log_variance = jnp.split(logits, 2, axis=-1)  # [B, K, D] x2
    log_likelihood = elbo.gaussian_log_density(x[:, None, :], feature_mean, feature_log_variance)
  else:
    targets = jnp.broadcast_to(x[:, None, :], logits.shape)
    log_likelihood = -likelihoods.bernoulli_nll(
        logits.reshape(num * num_classes, dims), targets.reshape(num * num_classes, dims))
  kl = elbo.gaussian_kl_to_standard_normal(mean, log_variance)  # [B, K]
  bounds = semi_supervised.labelled_bound(log_likelihood.reshape(num, num_classes), kl,
                                          num_classes)
  return bounds, class_log_probs


def semi_supervised_vae_loss(params, batch, rng, *, bounds_fn, alpha, num_labelled,
                             inputs_fn=pixel_inputs):
  """Mean per-row M2 loss (nats) over a batch mixing labelled and unlabelled rows: an
  epoch of these is -J^alpha (rows weighed by the data's `labelled_weight`)."""
  inputs, rng = inputs_fn(batch, rng)
  bounds, class_log_probs = bounds_fn(params, inputs, rng)
  losses = semi_supervised.semi_supervised_loss(
      bounds, class_log_probs, batch["label"], batch["labelled_weight"], alpha, num_labelled)
  labelled = batch["labelled"]
  correct = jnp.argmax(class_log_probs, axis=-1) == batch["label"]
  unlabelled_bound = semi_supervised.unlabelled_bound(class_log_probs, bounds)
  return losses.mean(), {
      "labelled_accuracy": jnp.sum(correct * labelled) / jnp.maximum(labelled.sum(), 1.0),
      "labelled_fraction": labelled.mean(),
      "elbo_nats": unlabelled_bound.mean(),
  }


def semi_supervised_vae_eval_step(state, batch, rng, *, bounds_fn, class_means=None):
  """Sums over real rows: test accuracy of q(y|x), -U(x) in bits/dim and nats.

  M1+M2 (`class_means` [K, D] given, m1_features.labelled_class_means): -U(z1) in nats
  at the posterior means, `z1_negative_elbo_nats`, and `class_mean_accuracy`, the
  nearest labelled class mean's accuracy on the same features (no model trained).
  """
  features = class_means is not None
  inputs, rng = (mean_features if features else pixel_inputs)(batch, rng)
  bounds, class_log_probs = bounds_fn(eval_params(state), inputs, rng)
  negative_elbo = -semi_supervised.unlabelled_bound(class_log_probs, bounds)  # [B] nats
  correct = (jnp.argmax(class_log_probs, axis=-1) == batch["label"]).astype(jnp.float32)
  mask = batch["mask"]
  if features:
    distances = jnp.sum(jnp.square(inputs[:, None, :] - class_means), axis=-1)  # [B, K]
    nearest = (jnp.argmin(distances, axis=-1) == batch["label"]).astype(jnp.float32)
    return {"accuracy": jnp.sum(correct * mask),
            "class_mean_accuracy": jnp.sum(nearest * mask),
            "z1_negative_elbo_nats": jnp.sum(negative_elbo * mask),
            "num_examples": jnp.sum(mask)}
  num_dims = math.prod(batch["image"].shape[1:])
  return {"accuracy": jnp.sum(correct * mask),
          "bits_per_dim": jnp.sum(likelihoods.bits_per_dim(negative_elbo, num_dims) * mask),
          "negative_elbo_nats": jnp.sum(negative_elbo * mask),
          "num_examples": jnp.sum(mask)}


def prior_draws(rng, num, labels, *, num_classes, latent_dim):
  """(z [N, Z], labels [N]): sample i is class labels[i] with its own z ~ N(0, I); when
  labels is None, row r shares one z and column y is the class."""
  if labels is None:
    num_rows = -(-num // num_classes)
    z = jax.random.normal(rng, (num_rows, latent_dim))[jnp.arange(num) // num_classes]  # [N, Z]
    labels = jnp.arange(num) % num_classes
  else:
    z = jax.random.normal(rng, (num, latent_dim))  # [N, Z]
  return z, labels


def semi_supervised_vae_sample(state, rng, num, labels=None, *, apply_fn, num_classes,
                               latent_dim, image_shape):
  """Bernoulli means of p(x|y, z) as uint8, z and classes from `prior_draws`."""
  z, labels = prior_draws(rng, num, labels, num_classes=num_classes, latent_dim=latent_dim)
  logits = apply_fn(eval_params(state), z, labels, method="decode")  # [N, D]
  return jnp.round(255 * jax.nn.sigmoid(logits)).astype(jnp.uint8).reshape(num, *image_shape)


def m1m2_sample(state, rng, num, labels=None, *, apply_fn, num_classes, latent_dim,
                active_units, m1_latent_dim, m1_decode, m1_state):
  """uint8 images: M1's decoder means at M2's mean z1 of p(z1|y, z2) (M1's inactive units
  at 0), z2 and classes from `prior_draws`."""
  z, labels = prior_draws(rng, num, labels, num_classes=num_classes, latent_dim=latent_dim)
  feature_mean, _ = jnp.split(apply_fn(eval_params(state), z, labels, method="decode"), 2, -1)
  z1 = jnp.zeros((num, m1_latent_dim)).at[:, jnp.asarray(active_units)].set(feature_mean)
  return m1_decode(m1_state, z1, None)


def write_class_grid(writer, step, samples, *, num_classes):
  """One column per class: samples/step_<N>.png."""
  return writer.write_images(step, "step", samples, num_columns=min(num_classes, len(samples)))


def check_data(config, spec: DatasetSpec) -> None:
  if not spec.num_classes or "labelled_weight" not in spec.example_features():
    raise UserError(f"model.name=semi_supervised_vae trains on data.name=semi_supervised "
                    f"(labels kept for data.num_labelled examples), not {config.data.name!r}")
  if spec.m1 is None and config.data.get("m1_config"):  # an m1m2 variant without its M1
    raise UserError("data.m1_workdir is not set: M1+M2 needs --config.data.m1_workdir=DIR, a "
                    "trained configs/vae_mlp.py run")
  if spec.m1 is None and spec.num_levels != 2:
    raise UserError("semi_supervised_vae has a Bernoulli decoder: set data.binarization to "
                    "dynamic or fixed")
  model_config = config.model
  for key in ("latent_dim", "hidden", "num_layers"):
    if model_config[key] < 1:
      raise UserError(f"model.{key}={model_config[key]} must be at least 1")
  if model_config.alpha < 0:
    raise UserError(f"model.alpha={model_config.alpha} must be >= 0")


def create_m1m2_sample(spec: DatasetSpec, apply_fn, num_classes: int, latent_dim: int):
  """m1m2_sample bound to the M1 run of spec.m1 (its decoder and restored parameters)."""
  m1 = m1_features.m1_run(spec.m1.workdir)
  return functools.partial(
      m1m2_sample, apply_fn=apply_fn, num_classes=num_classes, latent_dim=latent_dim,
      active_units=spec.m1.active_units, m1_latent_dim=m1.config.model.latent_dim,
      m1_decode=m1.task.decode_latents, m1_state=m1.state)


def create_semi_supervised_vae_task(config, spec: DatasetSpec) -> Task:
  check_data(config, spec)
  model_config = config.model
  num_classes = spec.num_classes
  features = spec.m1 is not None  # M1+M2
  create_params, apply_fn = module_functions(lambda rngs: SemiSupervisedVAE(
      num_inputs=len(spec.m1.active_units) if features else math.prod(spec.image_shape),
      num_classes=num_classes, latent_dim=model_config.latent_dim, hidden=model_config.hidden,
      num_layers=model_config.num_layers, rngs=rngs, gaussian_decoder=features),
      uniform_heads=("decoder.output", "classifier.output"))  # p(x|y, z), q(y|x) uniform
  tx, schedule = make_optimizer(config.train)
  bounds_fn = functools.partial(every_class_bounds, apply_fn=apply_fn, num_classes=num_classes,
                                gaussian=features)
  loss = functools.partial(semi_supervised_vae_loss, bounds_fn=bounds_fn,
                           alpha=model_config.alpha, num_labelled=spec.num_labelled,
                           inputs_fn=sampled_features if features else pixel_inputs)
  return Task(
      init=make_init(create_params, tx, config.train.ema_decay > 0),
      train_step=stateless_train_step(loss, tx, schedule, config.train),
      eval_step=functools.partial(
          semi_supervised_vae_eval_step, bounds_fn=bounds_fn,
          class_means=(jnp.asarray(m1_features.labelled_class_means(config.data))
                       if features else None)),
      sample=(create_m1m2_sample(spec, apply_fn, num_classes, model_config.latent_dim)
              if features else
              functools.partial(semi_supervised_vae_sample, apply_fn=apply_fn,
                                num_classes=num_classes, latent_dim=model_config.latent_dim,
                                image_shape=spec.image_shape)),
      num_classes=num_classes,
      write_samples=functools.partial(write_class_grid, num_classes=num_classes))

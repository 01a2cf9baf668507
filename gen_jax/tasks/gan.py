"""Adversarial models: DCGAN (model.name 'dcgan') and VAE-GAN ('vaegan').

The state is the common TrainState with one entry per player ('generator',
'discriminator', and the VAE-GAN's 'encoder') in `params` and `opt_state`, and
the generator's EMA (what is sampled and scored) as ema_params['generator'].
The two-player updates do not fit make_train_step (one loss, one gradient), so
each family writes its own train step (one jit'd function), float32 and one
batch only (Task.supports is empty):

- DCGAN: `model.discriminator_steps` = k discriminator updates, update i on
  the real rows i, i + k, i + 2k, ... of the batch and as many fresh fakes,
  then one generator update against the updated discriminator.
- VAE-GAN (Larsen et al. 2016, Algorithm 1): with x~ = Dec(z~), z~ ~ Enc(x),
  and x_p = Dec(z_p), z_p ~ N(0, I),
      encoder        descends  L_prior + L_llike
      decoder        descends  gamma L_llike + L_gen(x~) + L_gen(x_p)
      discriminator  descends  L_dis(x) + L_dis_fake(x~) + L_dis_fake(x_p)
  (L_llike is the reconstruction error in the discriminator's feature space),
  all three gradients taken at the same parameters from one forward pass; no
  GAN gradient reaches the encoder and no L_llike gradient the discriminator.

Images are the uint8 batches mapped to [-1, 1] here; samples map back to uint8.
Train metrics: `loss` is the discriminator loss for the DCGAN (2 ln 2 = 1.386
at the minimax equilibrium) and the encoder's loss for the VAE-GAN. Eval
metrics: held-out discriminator accuracies (DCGAN), reconstruction PSNR and KL
(VAE-GAN), and, with a feature network configured (config.eval), `fid`, `kid`
and the class histogram of eval.num_fid_samples samples in the classifier's
features, and `inception_fid`, `inception_kid` with user-supplied Inception weights.
"""

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.dcgan import Discriminator, Encoder, Generator
from gen_jax.objectives import adversarial, elbo
from gen_jax.objectives.likelihoods import to_uint8
from gen_jax.tasks.common import (Task, TrainState, check_divisible, ema_update,
                                  make_optimizer, module_functions)
from gen_jax.tasks.sample_metrics import with_sample_metrics


@dataclasses.dataclass(frozen=True)
class GAN:
  """The players' pure apply functions and the static settings of the step functions."""
  generate: Callable  # (params, z [B, Z], labels [B] or None) -> images [B, H, W, C] in [-1, 1]
  discriminate: Callable  # (params, images, labels or None) -> logits [B]
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  latent_dim: int
  loss: str
  num_classes: int = 0  # 0: unconditional
  r1_gamma: float = 0.0
  ema_decay: float = 0.0
  features_and_logits: Callable | None = None  # (params, images) -> (D features, logits [B])
  # VAE-GAN only
  encode: Callable | None = None  # (params, images) -> (mean [B, Z], log_variance [B, Z])
  reconstruction_weight: float = 1.0  # gamma


def to_signed(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def update_player(state: TrainState, player: str, gradients, tx) -> TrainState:
  """One optimizer update of params[player] (and its opt_state) with its gradients."""
  updates, opt_state = tx.update(gradients, state.opt_state[player], state.params[player])
  return state.replace(
      params={**state.params, player: optax.apply_updates(state.params[player], updates)},
      opt_state={**state.opt_state, player: opt_state})


def sample_latents(rng, num: int, latent_dim: int) -> jax.Array:
  return jax.random.normal(rng, (num, latent_dim))  # [num, Z] ~ N(0, I)


# ------------------------------------------------------------------ DCGAN


def discriminator_update(state: TrainState, real_images, labels, latents, *, gan: GAN):
  """One discriminator step on real images [B, H, W, C] in [-1, 1] and fakes from latents [B, Z]."""
  fake_images = gan.generate(state.params["generator"], latents, labels)

  def loss_fn(params):
    logits_fn = lambda images: gan.discriminate(params, images, labels)  # noqa: E731
    real_logits, fake_logits = logits_fn(real_images), logits_fn(fake_images)
    loss = adversarial.discriminator_loss(real_logits, fake_logits, gan.loss)
    metrics = {"discriminator_loss": loss, "real_logit": real_logits.mean(),
               "fake_logit": fake_logits.mean()}
    if gan.r1_gamma > 0:
      metrics["r1_penalty"] = adversarial.r1_penalty(logits_fn, real_images)
      loss = loss + gan.r1_gamma * metrics["r1_penalty"]
    return loss, metrics

  gradients, metrics = jax.grad(loss_fn, has_aux=True)(state.params["discriminator"])
  metrics["discriminator_grad_norm"] = optax.global_norm(gradients)
  return update_player(state, "discriminator", gradients, gan.tx), metrics


def update_generator_params(state: TrainState, gradients, gan: GAN) -> TrainState:
  """Applies the generator's gradients and moves its EMA."""
  state = update_player(state, "generator", gradients, gan.tx)
  if state.ema_params is None:
    return state
  return state.replace(ema_params={"generator": ema_update(
      state.ema_params["generator"], state.params["generator"], state.step, gan.ema_decay)})


def generator_update(state: TrainState, labels, latents, *, gan: GAN):
  """One generator step on fakes from latents [B, Z] against the current discriminator."""

  def loss_fn(params):
    fake_images = gan.generate(params, latents, labels)
    return adversarial.generator_loss(
        gan.discriminate(state.params["discriminator"], fake_images, labels), gan.loss)

  loss, gradients = jax.value_and_grad(loss_fn)(state.params["generator"])
  metrics = {"generator_loss": loss, "generator_grad_norm": optax.global_norm(gradients)}
  return update_generator_params(state, gradients, gan), metrics


def dcgan_train_step(state: TrainState, batch, rng, *, gan: GAN, discriminator_steps: int):
  """k discriminator updates (update i on rows i::k), then one generator update."""
  images = to_signed(batch["image"])  # [B, H, W, C]
  labels = batch["label"] if gan.num_classes else None
  # One draw for the whole step (one random-number kernel to compile): B latents
  # for the discriminator updates (slice i::k for update i), B for the generator.
  latents = sample_latents(jax.random.fold_in(rng, state.step), 2 * len(images), gan.latent_dim)
  history = []
  for index in range(discriminator_steps):
    rows = slice(index, len(images), discriminator_steps)
    state, metrics = discriminator_update(state, images[rows],
                                          None if labels is None else labels[rows],
                                          latents[rows], gan=gan)
    history.append(metrics)
  metrics = jax.tree.map(lambda *values: jnp.mean(jnp.stack(values)), *history)
  state, generator_metrics = generator_update(state, labels, latents[len(images):], gan=gan)
  metrics = {**metrics, **generator_metrics, "loss": metrics["discriminator_loss"],
             "learning_rate": gan.schedule(state.step)}
  return state.replace(step=state.step + 1), metrics


def dcgan_eval_step(state: TrainState, batch, rng, *, gan: GAN):
  """Sums over the real (mask = 1) rows: the discriminator's accuracy on held-out
  images (logit > 0) and on as many fakes of the (non-EMA) generator (logit < 0);
  the trainer passes one eval key, so every batch is scored against the same fakes."""
  images, mask = to_signed(batch["image"]), batch["mask"]
  labels = batch["label"] if gan.num_classes else None
  params = state.params
  fakes = gan.generate(params["generator"], sample_latents(rng, len(images), gan.latent_dim),
                       labels)
  real_logits = gan.discriminate(params["discriminator"], images, labels)
  fake_logits = gan.discriminate(params["discriminator"], fakes, labels)
  return {"real_accuracy": jnp.sum((real_logits > 0) * mask),
          "fake_accuracy": jnp.sum((fake_logits < 0) * mask), "num_examples": jnp.sum(mask)}


# ------------------------------------------------------------------ VAE-GAN


def vaegan_losses(params, images, rng, *, gan: GAN) -> dict[str, jax.Array]:
  """The VAE-GAN's terms from one forward pass, each a batch mean.

  prior:          KL(q(z | x) || N(0, I))                                (L_prior)
  reconstruction: 1/2 ||Dis_l(x) - Dis_l(x~)||^2                         (L_llike)
  discriminator:  L_dis(x) + L_dis_fake(x~) + L_dis_fake(x_p)            (-L_GAN)
  generator:      L_gen(x~) + L_gen(x_p)

  Args:
    params: {'encoder', 'generator', 'discriminator'}.
    images: [B, H, W, C] in [-1, 1].
  """
  mean, log_variance = gan.encode(params["encoder"], images)  # [B, Z] each
  noise, prior_latents = jnp.split(sample_latents(rng, 2 * len(images), gan.latent_dim), 2)
  z = mean + jnp.exp(0.5 * log_variance) * noise  # ~ q(z | x)
  reconstructions = gan.generate(params["generator"], z, None)
  prior_samples = gan.generate(params["generator"], prior_latents, None)
  # One discriminator pass over [x; x~; x_p], so the three share its batch statistics.
  features, logits = gan.features_and_logits(
      params["discriminator"], jnp.concatenate([images, reconstructions, prior_samples]))
  real_features, reconstructed_features, _ = jnp.split(features, 3)
  real_logits, reconstructed_logits, prior_logits = jnp.split(logits, 3)
  return {
      "prior": elbo.gaussian_kl_to_standard_normal(mean, log_variance).mean(),
      "reconstruction": adversarial.feature_reconstruction_error(
          real_features, reconstructed_features).mean(),
      "discriminator": (adversarial.discriminator_real_loss(real_logits, gan.loss)
                        + adversarial.discriminator_fake_loss(reconstructed_logits, gan.loss)
                        + adversarial.discriminator_fake_loss(prior_logits, gan.loss)),
      "generator": (adversarial.generator_loss(reconstructed_logits, gan.loss)
                    + adversarial.generator_loss(prior_logits, gan.loss)),
  }


def vaegan_objectives(reconstruction_weight: float) -> dict[str, dict[str, float]]:
  """Which weighted losses each player descends (Larsen et al. 2016, Algorithm 1)."""
  return {"encoder": {"prior": 1.0, "reconstruction": 1.0},
          "generator": {"reconstruction": reconstruction_weight, "generator": 1.0},
          "discriminator": {"discriminator": 1.0}}


def per_player_gradients(losses_fn: Callable, params: dict, objectives: dict):
  """(losses, {player: grad_player sum_name objectives[player][name] * losses[name]}).

  One forward pass: jax.vjp linearises losses_fn(params) -> {name: scalar} once,
  and each player's gradient is the VJP with the cotangent that weights the
  losses of its own objective, restricted to its own params.
  """
  losses, vjp_fn = jax.vjp(losses_fn, params)
  gradients = {}
  for player, weights in objectives.items():
    cotangent = {name: jnp.asarray(weights.get(name, 0.0), value.dtype)
                 for name, value in losses.items()}
    gradients[player] = vjp_fn(cotangent)[0][player]
  return losses, gradients


def vaegan_train_step(state: TrainState, batch, rng, *, gan: GAN):
  """The encoder, decoder and discriminator updates of one VAE-GAN step."""
  rng = jax.random.fold_in(rng, state.step)
  losses, gradients = per_player_gradients(
      functools.partial(vaegan_losses, images=to_signed(batch["image"]), rng=rng, gan=gan),
      state.params, vaegan_objectives(gan.reconstruction_weight))
  state = update_player(state, "encoder", gradients["encoder"], gan.tx)
  state = update_player(state, "discriminator", gradients["discriminator"], gan.tx)
  state = update_generator_params(state, gradients["generator"], gan)
  state = state.replace(step=state.step + 1)
  metrics = {"loss": losses["prior"] + losses["reconstruction"], "kl": losses["prior"],
             "feature_reconstruction": losses["reconstruction"],
             "discriminator_loss": losses["discriminator"],
             "generator_loss": losses["generator"],
             "learning_rate": gan.schedule(state.step - 1),
             **{f"{player}_grad_norm": optax.global_norm(g) for player, g in gradients.items()}}
  return state, metrics


def vaegan_eval_step(state: TrainState, batch, rng, *, gan: GAN):
  """Sums over the real rows: PSNR of Dec(mean of q(z|x)) and KL(q(z|x) || p(z))."""
  del rng
  images, mask = to_signed(batch["image"]), batch["mask"]
  mean, log_variance = gan.encode(state.params["encoder"], images)
  reconstructions = gan.generate(state.params["generator"], mean, None)
  mse = jnp.mean(jnp.square(reconstructions - images).reshape(len(images), -1), axis=-1)  # [B]
  psnr = 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-10))  # peak-to-peak 2 in [-1, 1]
  return {"psnr": jnp.sum(psnr * mask),
          "kl": jnp.sum(elbo.gaussian_kl_to_standard_normal(mean, log_variance) * mask),
          "num_examples": jnp.sum(mask)}


# ------------------------------------------------------------------ shared


def gan_sample(state: TrainState, rng, num: int, labels=None, *, gan: GAN):
  """`num` uint8 samples of the EMA generator; a conditional model draws sample i from
  class labels[i] ([num] int), or cycles the classes 0, 1, ... when labels is None."""
  params = (state.params if state.ema_params is None else state.ema_params)["generator"]
  if not gan.num_classes:
    labels = None
  elif labels is None:
    labels = jnp.arange(num) % gan.num_classes
  images = gan.generate(params, sample_latents(rng, num, gan.latent_dim), labels)  # [-1, 1]
  return to_uint8(images, -1.0, 1.0)


def gan_init(rng, example_batch, *, create_players: dict[str, Callable], tx, use_ema: bool):
  """TrainState with each player in create_players ('generator', 'discriminator'[, 'encoder'])."""
  del example_batch  # shapes come from the config
  # Parameters are drawn with the 'rbg' generator: on CPU, XLA compiles its
  # kernels several times faster than threefry's, one per parameter shape
  # (this init: 6 s -> 1.3 s of compilation on 2 cores).
  key = jax.random.wrap_key_data(jnp.concatenate([rng, rng]), impl="rbg")
  rngs = dict(zip(create_players, jax.random.split(key, len(create_players))))
  params = {name: create(rngs[name]) for name, create in create_players.items()}
  return TrainState(jnp.zeros((), jnp.int32), params,
                    {name: tx.init(player) for name, player in params.items()},
                    {"generator": params["generator"]} if use_ema else None)


def check_gan_config(config, spec: DatasetSpec) -> None:
  model = config.model
  if spec.image_shape is None:
    raise UserError(f"{model.name} needs image data; {config.data.name} has none")
  for name, size in zip(("height", "width"), spec.image_shape[:2]):
    check_divisible(f"image {name}", size, 4, f"{model.name} has two stride-2 stages")
  if model.loss not in adversarial.GAN_LOSSES:
    raise UserError(f"model.loss={model.loss!r}: use one of {', '.join(adversarial.GAN_LOSSES)}")
  if config.data.binarization != "none":
    raise UserError(f"{model.name} models 8-bit images: set data.binarization=none")


def create_gan(config, spec: DatasetSpec, num_classes: int, **settings):
  """(GAN, create_players) for the DCGAN generator and discriminator of config.model."""
  model = config.model
  create_generator, generate = module_functions(lambda rngs: Generator(
      latent_dim=model.latent_dim, features=model.features, image_shape=spec.image_shape,
      num_classes=num_classes, rngs=rngs))
  create_discriminator, discriminate = module_functions(lambda rngs: Discriminator(
      features=model.features, image_shape=spec.image_shape, num_classes=num_classes,
      batch_norm=model.discriminator_batch_norm, rngs=rngs))
  tx, schedule = make_optimizer(config.train)
  gan = GAN(generate=generate, discriminate=discriminate, tx=tx, schedule=schedule,
            latent_dim=model.latent_dim, loss=model.loss, num_classes=num_classes,
            ema_decay=config.train.ema_decay,
            features_and_logits=functools.partial(discriminate, method="features_and_logits"),
            **settings)
  return gan, {"generator": create_generator, "discriminator": create_discriminator}


def create_dcgan(config, spec: DatasetSpec):
  """(GAN, create_players) of a DCGAN config, checked."""
  model = config.model
  check_gan_config(config, spec)
  if model.discriminator_steps < 1:
    raise UserError(f"model.discriminator_steps={model.discriminator_steps}: must be >= 1")
  check_divisible("train.batch_size", config.train.batch_size, model.discriminator_steps,
                  "each discriminator step takes its own slice of the real batch")
  if model.r1_gamma < 0:
    raise UserError(f"model.r1_gamma={model.r1_gamma}: must be >= 0 (0 = no R1 penalty)")
  if model.r1_gamma > 0 and model.discriminator_batch_norm:
    raise UserError(f"model.r1_gamma={model.r1_gamma} with model.discriminator_batch_norm=True: "
                    "batch statistics couple the examples, so the gradient penalty is not R1's "
                    "per-example one; set model.discriminator_batch_norm=False (as "
                    "configs/dcgan.py:r1 does) or model.r1_gamma=0")
  if model.class_conditional and not spec.num_classes:
    raise UserError(f"model.class_conditional needs labels; {config.data.name} has none")
  num_classes = spec.num_classes if model.class_conditional else 0
  return create_gan(config, spec, num_classes, r1_gamma=model.r1_gamma)


def create_vaegan(config, spec: DatasetSpec):
  """(GAN, create_players) of a VAE-GAN config, checked; the players include the encoder."""
  model = config.model
  check_gan_config(config, spec)
  create_encoder, encode = module_functions(lambda rngs: Encoder(
      latent_dim=model.latent_dim, features=model.features, image_shape=spec.image_shape,
      rngs=rngs))
  gan, create_players = create_gan(config, spec, 0, encode=encode,
                                   reconstruction_weight=model.reconstruction_weight)
  return gan, {**create_players, "encoder": create_encoder}


def create_gan_task(config, spec: DatasetSpec, gan: GAN, create_players, train_step,
                    eval_step) -> Task:
  return with_sample_metrics(Task(
      init=functools.partial(gan_init, create_players=create_players, tx=gan.tx,
                             use_ema=config.train.ema_decay > 0),
      train_step=functools.partial(train_step, gan=gan),
      eval_step=functools.partial(eval_step, gan=gan),
      sample=functools.partial(gan_sample, gan=gan), num_classes=gan.num_classes,
      supports=frozenset()),  # its own two-player step: float32, one batch
      config, spec.image_shape)


def create_dcgan_task(config, spec: DatasetSpec) -> Task:
  gan, create_players = create_dcgan(config, spec)
  train_step = functools.partial(dcgan_train_step,
                                 discriminator_steps=config.model.discriminator_steps)
  return create_gan_task(config, spec, gan, create_players, train_step, dcgan_eval_step)


def create_vaegan_task(config, spec: DatasetSpec) -> Task:
  gan, create_players = create_vaegan(config, spec)
  return create_gan_task(config, spec, gan, create_players, vaegan_train_step, vaegan_eval_step)

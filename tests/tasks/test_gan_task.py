"""GAN and VAE-GAN steps: who updates what, the order of the updates, the gradient routing."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from gen_jax import parallel
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.objectives.likelihoods import to_uint8
from gen_jax.tasks import gan as gan_task
from gen_jax.tasks.common import make_optimizer

SPEC = DatasetSpec((8, 8, 1), 256, 3)  # tiny 8x8 images with 3 classes: fast to compile
BATCH = 8


def tiny_config(filename="dcgan.py", **model_overrides):
  config = load_config(filename, "smoke")
  with config.unlocked():
    config.train.batch_size = BATCH
    for key, value in model_overrides.items():
      config.model[key] = value
  return config


def tiny_batch(seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (BATCH, 8, 8, 1), dtype=np.uint8),
          "label": (np.arange(BATCH) % 3).astype(np.int32)}  # every class: every embedding row


def init(gan, create_players, seed=0):
  return jax.jit(functools.partial(gan_task.gan_init, example_batch=None,
                                   create_players=create_players, tx=gan.tx, use_ema=True))(
                                       jax.random.PRNGKey(seed))


def assert_updated(before, after):
  """Almost every parameter moved (a few may have an exactly zero gradient, e.g. the
  discriminator's output bias under the hinge loss when every logit is inside the margin)."""
  changed = [np.asarray(old) != np.asarray(new)
             for old, new in zip(jax.tree.leaves(before), jax.tree.leaves(after))]
  assert np.mean(np.concatenate([c.ravel() for c in changed])) > 0.99


def test_uint8_signed_round_trip():
  levels = jnp.arange(256, dtype=jnp.uint8)
  signed = gan_task.to_signed(levels)
  assert float(signed.min()) == -1.0 and float(signed.max()) == 1.0
  np.testing.assert_array_equal(to_uint8(signed, -1.0, 1.0), levels)


@pytest.fixture(scope="module")
def conditional_gan():
  """Hinge + R1 + class-conditional, 2 discriminator steps per generator step."""
  config = tiny_config(loss="hinge", r1_gamma=1.0, class_conditional=True,
                       discriminator_steps=2, discriminator_batch_norm=False)
  with config.unlocked():
    config.train.learning_rate = 1e-2  # large steps: an old and a new D are far apart
  gan, players = gan_task.create_dcgan(config, SPEC)
  return gan, init(gan, players)


def test_train_step_is_k_discriminator_updates_then_a_generator_update(conditional_gan):
  """D on rows 0::2, D on rows 1::2, then G against the new D; each touches only its player."""
  gan, state = conditional_gan
  batch, rng = tiny_batch(), jax.random.PRNGKey(3)
  step = jax.jit(functools.partial(gan_task.dcgan_train_step, gan=gan, discriminator_steps=2))
  stepped, metrics = step(state, batch, rng)
  images, labels = gan_task.to_signed(batch["image"]), batch["label"]
  latents = gan_task.sample_latents(jax.random.fold_in(rng, 0), 2 * BATCH, gan.latent_dim)
  generator_update = jax.jit(functools.partial(gan_task.generator_update, gan=gan))

  @jax.jit
  def discriminator_updates(state):
    for index in range(2):
      state, _ = gan_task.discriminator_update(state, images[index::2], labels[index::2],
                                               latents[index:BATCH:2], gan=gan)
    return state

  after_discriminator = discriminator_updates(state)
  expected, expected_metrics = generator_update(after_discriminator, labels, latents[BATCH:])
  # One jit of the whole step and three jits of its parts round differently; after Adam's
  # normalized steps at lr 1e-2 that reached 1.2e-5 on one parameter (AMD EPYC), while a
  # wrong order of the updates moves parameters by about the learning rate (checked below).
  chex.assert_trees_all_close(stepped.replace(step=0), expected.replace(step=0), rtol=1e-5,
                              atol=1e-4)
  assert int(stepped.step) == 1 and metrics["r1_penalty"] > 0
  # The generator's loss is the one against the updated discriminator, not the old one.
  after_generator, stale_metrics = generator_update(state, labels, latents[BATCH:])
  largest_gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(after_generator.params), jax.tree.leaves(stepped.params)))
  assert largest_gap > 1e-3  # the tolerance above tells this wrong step from the right one
  np.testing.assert_allclose(metrics["generator_loss"], expected_metrics["generator_loss"],
                             rtol=1e-5)
  assert abs(float(stale_metrics["generator_loss"] - metrics["generator_loss"])) > 1e-3

  # The discriminator updates change the discriminator (every parameter) and nothing else ...
  def player(state, name):  # the player's params, optimizer state (and EMA), and the step
    return (state.params[name], state.opt_state[name], state.step,
            state.ema_params if name == "generator" else None)

  chex.assert_trees_all_equal(player(after_discriminator, "generator"), player(state, "generator"))
  assert_updated(state.params["discriminator"], after_discriminator.params["discriminator"])
  # ... and the generator update the generator and its EMA only.
  chex.assert_trees_all_equal(player(after_generator, "discriminator"),
                              player(state, "discriminator"))
  assert_updated(state.params["generator"], after_generator.params["generator"])
  # EMA at step 0: d = min(decay, 1/10), ema = d * old + (1 - d) * new.
  chex.assert_trees_all_close(
      after_generator.ema_params["generator"],
      jax.tree.map(lambda old, new: 0.1 * old + 0.9 * new, state.params["generator"],
                   after_generator.params["generator"]), rtol=1e-5)


def test_vaegan_gradients_are_each_players_own_objective():
  """One forward pass + per-player cotangents == jax.grad of each player's own objective."""
  config = tiny_config("vaegan.py", reconstruction_weight=0.3)
  gan, players = gan_task.create_vaegan(config, SPEC)
  state = init(gan, players)
  params = state.params
  assert set(params) == {"encoder", "generator", "discriminator"}
  losses_fn = functools.partial(gan_task.vaegan_losses,
                                images=gan_task.to_signed(tiny_batch()["image"]),
                                rng=jax.random.PRNGKey(4), gan=gan)
  objectives = gan_task.vaegan_objectives(0.3)
  assert objectives["encoder"] == {"prior": 1.0, "reconstruction": 1.0}  # no GAN term

  def own_gradient(player, weights):
    objective = lambda own: sum(  # noqa: E731
        weight * losses_fn({**params, player: own})[name] for name, weight in weights.items())
    return jax.grad(objective)(params[player])

  @jax.jit
  def both_ways():
    _, routed = gan_task.per_player_gradients(losses_fn, params, objectives)
    separate = {player: own_gradient(player, weights) for player, weights in objectives.items()}
    return routed, separate, own_gradient("encoder", {"generator": 1.0})

  routed, separate, gan_on_encoder = both_ways()
  chex.assert_trees_all_close(routed, separate, rtol=2e-4, atol=1e-6)
  # The routing matters: the GAN loss does depend on the encoder, yet it gets none of it.
  assert optax.global_norm(gan_on_encoder) > 1e-3 * optax.global_norm(routed["encoder"])


def test_init_does_not_depend_on_the_mesh():
  """The parameters are drawn with the 'rbg' generator: the same on 1 and 2 devices."""
  assert jax.device_count() >= 2, "conftest asks for 2 CPU devices"
  gan, players = gan_task.create_dcgan(tiny_config(), SPEC)
  task_init = functools.partial(gan_task.gan_init, example_batch=None, create_players=players,
                                tx=gan.tx, use_ema=True)
  states = [jax.device_get(jax.jit(task_init, out_shardings=parallel.replicated(
      parallel.create_mesh(devices)))(jax.random.PRNGKey(0)))
            for devices in (jax.devices()[:1], jax.devices()[:2])]
  chex.assert_trees_all_equal(*states)
  assert np.std(states[0].params["generator"]["up1"]["kernel"]) > 0.01  # N(0, 0.02), not zeros


@pytest.mark.parametrize("overrides,message", [
    (dict(loss="wgan"), r"model.loss='wgan': use one of minimax, non_saturating, hinge"),
    (dict(discriminator_steps=3), r"train.batch_size=8 must be a multiple of 3"),
    (dict(r1_gamma=-1.0), r"model.r1_gamma=-1.0: must be >= 0"),
    # R1 is a per-example penalty; batch norm in D makes each gradient depend on the batch.
    (dict(r1_gamma=1.0, discriminator_batch_norm=True),
     r"^model.r1_gamma=1.0 with model.discriminator_batch_norm=True: .* not R1's per-example"),
])
def test_bad_settings_are_user_errors(overrides, message):
  with pytest.raises(UserError, match=message):
    gan_task.create_dcgan(tiny_config(**overrides), SPEC)


def test_image_size_must_allow_two_stride_2_stages():
  with pytest.raises(UserError, match=r"image height=10 must be a multiple of 4"):
    gan_task.create_dcgan(tiny_config(), DatasetSpec((10, 8, 1), 256, 0))
  with pytest.raises(UserError, match=r"class_conditional needs labels"):
    gan_task.create_dcgan(tiny_config(class_conditional=True), DatasetSpec((8, 8, 1), 256, 0))


def test_conditional_samples_cycle_the_classes_and_are_uint8(conditional_gan):
  gan, state = conditional_gan
  samples = jax.jit(functools.partial(gan_task.gan_sample, gan=gan), static_argnums=2)(
      state, jax.random.PRNGKey(6), 6)
  assert samples.dtype == jnp.uint8 and samples.shape == (6, 8, 8, 1)
  # The EMA generator at the same latents with labels 0, 1, 2, 0, 1, 2.
  latents = gan_task.sample_latents(jax.random.PRNGKey(6), 6, gan.latent_dim)
  expected = to_uint8(jax.jit(gan.generate)(state.ema_params["generator"], latents,
                                            jnp.arange(6) % 3), -1.0, 1.0)
  np.testing.assert_array_equal(samples, expected)


def test_constant_learning_rate_without_warmup_is_not_zero():
  """GAN configs use Adam at a constant 2e-4 from step 0 (optax's warmup schedule with 0
  warmup steps would stay at 0 forever)."""
  config = tiny_config()
  _, schedule = make_optimizer(config.train)
  assert config.train.warmup_steps == 0 and config.train.lr_schedule == "constant"
  np.testing.assert_allclose([schedule(0), schedule(1000)], config.train.learning_rate)

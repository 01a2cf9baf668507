"""The GAN minimax and the VAE-GAN losses, as pure functions of logits and features.

A discriminator outputs a logit l(x); D(x) = sigmoid(l(x)) is its probability
that x is real. With real logits l_r and generated (fake) logits l_f:

  kind              discriminator minimises                 generator minimises
  minimax           -log D(x) - log(1 - D(G(z)))            log(1 - D(G(z)))
                    = softplus(-l_r) + softplus(l_f)        = -softplus(l_f)
  non_saturating    same as minimax                         -log D(G(z)) = softplus(-l_f)
  hinge             relu(1 - l_r) + relu(1 + l_f)           -l_f

(Goodfellow et al. 2014 for the first two; Lim & Ye 2017 / Miyato et al. 2018
for the hinge.) Each is a mean over the batch. The VAE-GAN (Larsen et al.
2016) adds a Gaussian KL to the prior and a reconstruction error measured in
the discriminator's feature space.
"""

import jax
import jax.numpy as jnp

GAN_LOSSES = ("minimax", "non_saturating", "hinge")


def discriminator_real_loss(real_logits: jax.Array, kind: str) -> jax.Array:
  """The discriminator's mean loss on real logits [B]: softplus(-l_r), or relu(1 - l_r)."""
  if kind in ("minimax", "non_saturating"):
    return jnp.mean(jax.nn.softplus(-real_logits))
  if kind == "hinge":
    return jnp.mean(jax.nn.relu(1.0 - real_logits))
  raise ValueError(f"unknown GAN loss {kind!r}; known: {', '.join(GAN_LOSSES)}")


def discriminator_fake_loss(fake_logits: jax.Array, kind: str) -> jax.Array:
  """The discriminator's mean loss on fake logits [B]: softplus(l_f), or relu(1 + l_f)."""
  return discriminator_real_loss(-fake_logits, kind)  # the real-side loss at -l_f


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array, kind: str) -> jax.Array:
  """Mean over real [B_r] plus mean over fake [B_f] logits of the table's D column."""
  return discriminator_real_loss(real_logits, kind) + discriminator_fake_loss(fake_logits, kind)


def generator_loss(fake_logits: jax.Array, kind: str) -> jax.Array:
  """Mean over fake logits [B_f] of the table's G column."""
  if kind == "minimax":
    return -jnp.mean(jax.nn.softplus(fake_logits))
  if kind == "non_saturating":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  if kind == "hinge":
    return -jnp.mean(fake_logits)
  raise ValueError(f"unknown GAN loss {kind!r}; known: {', '.join(GAN_LOSSES)}")


def r1_penalty(logits_fn, real_images: jax.Array) -> jax.Array:
  """R1 = 1/2 E_x ||grad_x l(x)||^2 over real images (Mescheder et al. 2018).

  The caller scales it by gamma. The per-example gradients come from one
  gradient of sum_b l(x_b), which equals them when examples do not interact.

  Args:
    logits_fn: images [B, H, W, C] -> logits [B].
    real_images: [B, H, W, C] float.
  """
  gradients = jax.grad(lambda x: jnp.sum(logits_fn(x)))(real_images)  # [B, H, W, C]
  return 0.5 * jnp.mean(jnp.sum(jnp.square(gradients).reshape(len(gradients), -1), axis=-1))


def feature_reconstruction_error(real_features: jax.Array,
                                 reconstructed_features: jax.Array) -> jax.Array:
  """-log N(Dis_l(x) | Dis_l(x_tilde), I) per example, without the constant D/2 log 2 pi.

  = 1/2 ||Dis_l(x) - Dis_l(x_tilde)||^2 over all D feature dimensions: the
  VAE-GAN's "learned similarity" reconstruction loss (Larsen et al. 2016, eq. 8).

  Args:
    real_features, reconstructed_features: [B, ...] discriminator activations.

  Returns:
    [B].
  """
  difference = (real_features - reconstructed_features).reshape(len(real_features), -1)
  return 0.5 * jnp.sum(jnp.square(difference), axis=-1)

"""DCGAN generator and discriminator (Radford et al. 2016), and a VAE-GAN encoder.

Sized for 28x28 / 32x32 images (two stride-2 stages), following the paper's
guidelines: strided convolutions instead of pooling, batch norm in the
generator and in the discriminator (not on its input layer), ReLU in the
generator with a tanh output, LeakyReLU(0.2) in the discriminator, no hidden
fully connected layers beyond the generator's projection of z, weights drawn
from N(0, 0.02).

  generator:     z -> linear -> [H/4, W/4, 2F] -> BN, ReLU
                   -> 4x4 transposed conv, stride 2 -> [H/2, W/2, F] -> BN, ReLU
                   -> 4x4 transposed conv, stride 2 -> [H, W, C] -> tanh
  discriminator: x -> 4x4 conv, stride 2 -> [H/2, W/2, F] -> LeakyReLU
                   -> 4x4 conv, stride 2 -> [H/4, W/4, 2F] -> BN, LeakyReLU  (= features)
                   -> linear -> logit

Class conditioning (optional): the generator concatenates a learned label
embedding to z; the discriminator is a projection discriminator (Miyato &
Koyama 2018): logit = linear(h) + <embed(y), h> with h the flattened features.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.normalization import BatchNorm
from gen_jax.nn.upsample import ConvTranspose

_INIT = nnx.initializers.normal(0.02)


def conv(in_features: int, out_features: int, rngs: nnx.Rngs, use_bias: bool = True) -> nnx.Conv:
  """4x4, stride 2: [B, H, W, in] -> [B, H/2, W/2, out]. No bias before batch norm."""
  return nnx.Conv(in_features, out_features, (4, 4), strides=(2, 2), padding="SAME",
                  use_bias=use_bias, kernel_init=_INIT, rngs=rngs)


def transposed_conv(in_features: int, out_features: int, rngs: nnx.Rngs,
                    use_bias: bool = True) -> ConvTranspose:
  """4x4, stride 2: [B, H, W, in] -> [B, 2H, 2W, out]. No bias before batch norm."""
  return ConvTranspose(in_features, out_features, (4, 4), strides=(2, 2), padding="SAME",
                           use_bias=use_bias, kernel_init=_INIT, rngs=rngs)


class Generator(nnx.Module):
  """z [B, Z] (+ labels [B]) -> images [B, H, W, C] in [-1, 1]."""

  def __init__(self, *, latent_dim: int, features: int, image_shape: tuple[int, int, int],
               num_classes: int = 0, rngs: nnx.Rngs):
    height, width, channels = image_shape
    self.base_shape = (height // 4, width // 4, 2 * features)
    self.num_classes = num_classes
    if num_classes:
      self.embed = nnx.Embed(num_classes, latent_dim, rngs=rngs)
    input_dim = 2 * latent_dim if num_classes else latent_dim
    self.project = nnx.Linear(input_dim, height // 4 * (width // 4) * 2 * features,
                              use_bias=False, kernel_init=_INIT, rngs=rngs)
    self.project_norm = BatchNorm(2 * features, rngs=rngs)
    self.up1 = transposed_conv(2 * features, features, rngs, use_bias=False)
    self.up1_norm = BatchNorm(features, rngs=rngs)
    self.up2 = transposed_conv(features, channels, rngs)

  def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    if self.num_classes:
      z = jnp.concatenate([z, self.embed(labels)], axis=-1)  # [B, 2Z]
    h = self.project(z).reshape(len(z), *self.base_shape)  # [B, H/4, W/4, 2F]
    h = jax.nn.relu(self.project_norm(h))
    h = jax.nn.relu(self.up1_norm(self.up1(h)))  # [B, H/2, W/2, F]
    return jnp.tanh(self.up2(h))  # [B, H, W, C]


class Discriminator(nnx.Module):
  """images [B, H, W, C] in [-1, 1] (+ labels [B]) -> logits [B]."""

  def __init__(self, *, features: int, image_shape: tuple[int, int, int],
               num_classes: int = 0, batch_norm: bool = True, rngs: nnx.Rngs):
    height, width, channels = image_shape
    feature_size = height // 4 * (width // 4) * 2 * features
    self.num_classes = num_classes
    self.down1 = conv(channels, features, rngs)
    self.down2 = conv(features, 2 * features, rngs, use_bias=not batch_norm)
    self.down2_norm = BatchNorm(2 * features, rngs=rngs) if batch_norm else None
    self.head = nnx.Linear(feature_size, 1, kernel_init=_INIT, rngs=rngs)
    if num_classes:
      self.embed = nnx.Embed(num_classes, feature_size, embedding_init=_INIT, rngs=rngs)

  def features(self, images: jax.Array) -> jax.Array:
    """The last convolutional layer's activations, [B, H/4, W/4, 2F]."""
    h = jax.nn.leaky_relu(self.down1(images), 0.2)  # [B, H/2, W/2, F]
    h = self.down2(h)
    if self.down2_norm is not None:
      h = self.down2_norm(h)
    return jax.nn.leaky_relu(h, 0.2)

  def features_and_logits(self, images: jax.Array, labels: jax.Array | None = None):
    """(features [B, H/4, W/4, 2F], logits [B])."""
    features = self.features(images)
    h = features.reshape(len(images), -1)  # [B, D]
    logits = self.head(h)[:, 0]  # [B]
    if self.num_classes:
      logits = logits + jnp.sum(self.embed(labels) * h, axis=-1)  # projection
    return features, logits

  def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    return self.features_and_logits(images, labels)[1]


class Encoder(nnx.Module):
  """images [B, H, W, C] in [-1, 1] -> (mean [B, Z], log_variance [B, Z]) of q(z | x).

  The discriminator's convolutional stack with BN and ReLU (Larsen et al. 2016
  use the same pattern), then a linear layer to the Gaussian's parameters.
  """

  def __init__(self, *, latent_dim: int, features: int, image_shape: tuple[int, int, int],
               rngs: nnx.Rngs):
    height, width, channels = image_shape
    self.down1 = conv(channels, features, rngs, use_bias=False)
    self.down1_norm = BatchNorm(features, rngs=rngs)
    self.down2 = conv(features, 2 * features, rngs, use_bias=False)
    self.down2_norm = BatchNorm(2 * features, rngs=rngs)
    self.head = nnx.Linear(height // 4 * (width // 4) * 2 * features, 2 * latent_dim,
                           kernel_init=_INIT, rngs=rngs)

  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = jax.nn.relu(self.down1_norm(self.down1(images)))  # [B, H/2, W/2, F]
    h = jax.nn.relu(self.down2_norm(self.down2(h)))  # [B, H/4, W/4, 2F]
    mean, log_variance = jnp.split(self.head(h.reshape(len(images), -1)), 2, axis=-1)
    return mean, log_variance

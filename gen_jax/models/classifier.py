"""The small image classifier whose penultimate layer defines gen_jax's FID features.

Inception weights cannot be fetched on these machines, so FID/KID are measured
in the feature space of this network trained on the dataset itself (e.g.
Fashion-MNIST): two 3x3 convolutions, each with ReLU and 2x2 max pooling, a
fully connected ReLU layer (the features), and a linear layer to the class
logits. Small enough to train to ~90% test accuracy in minutes on 2 CPU cores.

  uint8 [B, H, W, C] -> [-1, 1] -> conv F, pool -> conv 2F, pool
                     -> linear, ReLU -> features [B, D] -> linear -> logits [B, K]
"""

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.precision import compute_dtype


def max_pool(x: jax.Array) -> jax.Array:  # [B, H, W, C] -> [B, H/2, W/2, C]
  return nnx.max_pool(x, (2, 2), strides=(2, 2))


class Classifier(nnx.Module):
  """uint8 images [B, H, W, C] -> logits [B, num_classes]; `features` -> [B, feature_dim]."""

  def __init__(self, *, image_shape: tuple[int, int, int], num_classes: int,
               features: int = 32, feature_dim: int = 128, rngs: nnx.Rngs):
    height, width, channels = image_shape
    self.conv1 = nnx.Conv(channels, features, (3, 3), padding="SAME", rngs=rngs)
    self.conv2 = nnx.Conv(features, 2 * features, (3, 3), padding="SAME", rngs=rngs)
    self.hidden = nnx.Linear(height // 4 * (width // 4) * 2 * features, feature_dim, rngs=rngs)
    self.logits = nnx.Linear(feature_dim, num_classes, rngs=rngs)

  def features(self, images: jax.Array) -> jax.Array:
    h = images.astype(compute_dtype(self)) * (2.0 / 255.0) - 1.0  # [B, H, W, C] in [-1, 1]
    h = max_pool(jax.nn.relu(self.conv1(h)))  # [B, H/2, W/2, F]
    h = max_pool(jax.nn.relu(self.conv2(h)))  # [B, H/4, W/4, 2F]
    return jax.nn.relu(self.hidden(h.reshape(len(images), -1)))  # [B, feature_dim]

  def features_and_logits(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    features = self.features(images)
    return features, self.logits(features).astype(jnp.float32)  # [B, F], [B, num_classes]

  def __call__(self, images: jax.Array) -> jax.Array:
    return self.logits(self.features(images)).astype(jnp.float32)  # [B, num_classes]

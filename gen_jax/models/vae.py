"""Variational autoencoders (Kingma & Welling 2014) and plain autoencoders.

An encoder maps images (and, for a conditional model, labels) to the diagonal
Gaussian q(z|x[, y]) = N(mean, diag(exp(log_variance))) (a plain autoencoder:
to one code z = mean); a decoder maps a latent z (and labels) to per-sub-pixel
parameters of the likelihood p(x|z[, y]), `outputs_per_subpixel` numbers each:
1 Bernoulli logit, L categorical logits, or a Gaussian's (mean, log_scale).
The likelihood itself lives in objectives/; the modules only produce numbers.

  MLP:  flatten [, one-hot y] -> hidden layers -> (mean, log_variance)
        z [, one-hot y] -> hidden layers -> [H * W * C * O]
  conv: two stride-2 3x3 convs (H -> H/4) -> dense -> (mean, log_variance)
        dense -> [H/4, W/4, 2F] -> two stride-2 4x4 transposed convs -> 1x1 conv to C * O
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.precision import compute_dtype
from gen_jax.nn.upsample import ConvTranspose


def conv_kernel_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """LeCun-normal conv kernel [kh, kw, in, out] drawn as a [kh * kw * in, out] matrix.

  The same distribution as Flax's default (fan_in = kh * kw * in either way), but
  XLA compiles the 2-D draw about twice as fast as the 4-D one (1.1 -> 0.5 s of
  CPU per conv layer measured here), and init compile time dominates small runs.
  """
  matrix = nnx.initializers.lecun_normal()(key, (math.prod(shape[:-1]), shape[-1]), dtype)
  return matrix.reshape(shape)


def images_to_inputs(images: jax.Array, num_levels: int) -> jax.Array:
  """uint8 levels [B, H, W, C] in [0, L) -> float32 in [-1, 1]."""
  return images.astype(jnp.float32) * (2.0 / (num_levels - 1)) - 1.0


def with_labels(features: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
  """[B, F] -> [B, F + num_classes] with the one-hot labels appended (unchanged if unconditional)."""
  if not num_classes:
    return features
  return jnp.concatenate([features, jax.nn.one_hot(labels, num_classes, dtype=features.dtype)], -1)


class MLP(nnx.Module):
  """Dense layers with ReLU between them (none after the last)."""

  def __init__(self, sizes: Sequence[int], *, rngs: nnx.Rngs):
    self.layers = nnx.List([nnx.Linear(n_in, n_out, rngs=rngs)
                            for n_in, n_out in zip(sizes[:-1], sizes[1:])])

  def __call__(self, x: jax.Array) -> jax.Array:
    for index, layer in enumerate(self.layers):
      x = layer(x)
      if index < len(self.layers) - 1:
        x = jax.nn.relu(x)
    return x


class MLPEncoder(nnx.Module):
  """images [B, H, W, C] (+ labels [B]) -> [B, num_outputs]."""

  def __init__(self, *, image_shape: Sequence[int], hidden_sizes: Sequence[int],
               num_outputs: int, num_levels: int, num_classes: int = 0, rngs: nnx.Rngs):
    self.num_levels, self.num_classes = num_levels, num_classes
    num_inputs = math.prod(image_shape) + num_classes
    self.mlp = MLP([num_inputs, *hidden_sizes, num_outputs], rngs=rngs)

  def __call__(self, images, labels=None):
    x = images_to_inputs(images, self.num_levels).astype(compute_dtype(self))
    x = x.reshape(len(images), -1)  # [B, H*W*C]
    return self.mlp(with_labels(x, labels, self.num_classes))


class MLPDecoder(nnx.Module):
  """z [B, Z] (+ labels [B]) -> [B, H, W, C, O]."""

  def __init__(self, *, image_shape: Sequence[int], hidden_sizes: Sequence[int],
               latent_dim: int, outputs_per_subpixel: int, num_classes: int = 0,
               rngs: nnx.Rngs):
    self.output_shape = (*image_shape, outputs_per_subpixel)
    self.num_classes = num_classes
    num_outputs = math.prod(self.output_shape)
    self.mlp = MLP([latent_dim + num_classes, *hidden_sizes, num_outputs], rngs=rngs)

  def __call__(self, z, labels=None):
    return self.mlp(with_labels(z, labels, self.num_classes)).reshape(len(z), *self.output_shape)


class ConvEncoder(nnx.Module):
  """images [B, H, W, C] (+ labels [B]) -> [B, num_outputs]; H and W multiples of 4."""

  def __init__(self, *, image_shape: Sequence[int], features: int, hidden_size: int,
               num_outputs: int, num_levels: int, num_classes: int = 0, rngs: nnx.Rngs):
    height, width, channels = image_shape
    self.num_levels, self.num_classes = num_levels, num_classes
    self.conv1 = nnx.Conv(channels, features, (3, 3), strides=2,
                          kernel_init=conv_kernel_init, rngs=rngs)  # H/2
    self.conv2 = nnx.Conv(features, 2 * features, (3, 3), strides=2,
                          kernel_init=conv_kernel_init, rngs=rngs)  # H/4
    flat = (height // 4) * (width // 4) * 2 * features
    self.head = MLP([flat + num_classes, hidden_size, num_outputs], rngs=rngs)

  def __call__(self, images, labels=None):
    x = images_to_inputs(images, self.num_levels).astype(compute_dtype(self))  # [B, H, W, C]
    x = jax.nn.relu(self.conv1(x))  # [B, H/2, W/2, F]
    x = jax.nn.relu(self.conv2(x))  # [B, H/4, W/4, 2F]
    x = jax.nn.relu(x.reshape(len(x), -1))
    return self.head(with_labels(x, labels, self.num_classes))


class ConvDecoder(nnx.Module):
  """z [B, Z] (+ labels [B]) -> [B, H, W, C, O]; H and W multiples of 4."""

  def __init__(self, *, image_shape: Sequence[int], features: int, hidden_size: int,
               latent_dim: int, outputs_per_subpixel: int, num_classes: int = 0,
               rngs: nnx.Rngs):
    height, width, channels = image_shape
    self.num_classes = num_classes
    self.grid_shape = (height // 4, width // 4, 2 * features)
    self.output_shape = (*image_shape, outputs_per_subpixel)
    self.stem = MLP([latent_dim + num_classes, hidden_size,
                     self.grid_shape[0] * self.grid_shape[1] * self.grid_shape[2]], rngs=rngs)
    self.up1 = ConvTranspose(2 * features, features, (4, 4), strides=(2, 2),
                                 kernel_init=conv_kernel_init, rngs=rngs)
    self.up2 = ConvTranspose(features, features, (4, 4), strides=(2, 2),
                                 kernel_init=conv_kernel_init, rngs=rngs)
    # 1x1: the transposed convs already mix neighbourhoods, and a 3x3 head to 256
    # categorical logits would cost 9x (58M of 80M multiply-adds per 28x28 image).
    self.out = nnx.Conv(features, channels * outputs_per_subpixel, (1, 1),
                        kernel_init=conv_kernel_init, rngs=rngs)

  def __call__(self, z, labels=None):
    x = jax.nn.relu(self.stem(with_labels(z, labels, self.num_classes)))
    x = x.reshape(len(z), *self.grid_shape)  # [B, H/4, W/4, 2F]
    x = jax.nn.relu(self.up1(x))  # [B, H/2, W/2, F]
    x = jax.nn.relu(self.up2(x))  # [B, H, W, F]
    return self.out(x).reshape(len(z), *self.output_shape)  # [B, H, W, C, O]


class VAE(nnx.Module):
  """An encoder to q(z|x[, y]) and a decoder to the likelihood parameters of p(x|z[, y]).

  With variational=False it is a plain autoencoder: the encoder outputs the code
  itself, returned as the mean with a log-variance of -inf (a point mass).
  """

  def __init__(self, *, architecture: str, image_shape: Sequence[int], latent_dim: int,
               outputs_per_subpixel: int, num_levels: int, hidden_sizes: Sequence[int] = (),
               features: int = 32, num_classes: int = 0, variational: bool = True,
               rngs: nnx.Rngs):
    self.latent_dim, self.variational, self.num_classes = latent_dim, variational, num_classes
    num_outputs = 2 * latent_dim if variational else latent_dim
    shared = dict(image_shape=image_shape, num_classes=num_classes, rngs=rngs)
    if architecture == "mlp":
      self.encoder = MLPEncoder(hidden_sizes=hidden_sizes, num_outputs=num_outputs,
                                num_levels=num_levels, **shared)
      self.decoder = MLPDecoder(hidden_sizes=tuple(reversed(hidden_sizes)), latent_dim=latent_dim,
                                outputs_per_subpixel=outputs_per_subpixel, **shared)
    elif architecture == "conv":
      hidden_size = hidden_sizes[0] if hidden_sizes else 256
      self.encoder = ConvEncoder(features=features, hidden_size=hidden_size,
                                 num_outputs=num_outputs, num_levels=num_levels, **shared)
      self.decoder = ConvDecoder(features=features, hidden_size=hidden_size,
                                 latent_dim=latent_dim,
                                 outputs_per_subpixel=outputs_per_subpixel, **shared)
    else:
      raise ValueError(f"unknown architecture {architecture!r}")

  def encode(self, images: jax.Array, labels: jax.Array | None = None):
    """-> (mean [B, Z], log_variance [B, Z]) of q(z|x[, y]), float32 (the network itself
    computes in its parameters' dtype: bf16 under mixed precision)."""
    out = self.encoder(images, labels).astype(jnp.float32)
    if not self.variational:
      return out, jnp.full_like(out, -jnp.inf)
    mean, log_variance = jnp.split(out, 2, axis=-1)
    return mean, log_variance

  def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """-> likelihood parameters [B, H, W, C, O] of p(x|z[, y]), float32."""
    return self.decoder(z.astype(compute_dtype(self)), labels).astype(jnp.float32)

  def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """Decoder outputs at the posterior mean (a deterministic reconstruction)."""
    mean, _ = self.encode(images, labels)
    return self.decode(mean, labels)

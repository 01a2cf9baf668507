"""The M2 model (Kingma et al. 2014): q(y|x), q(z|x, y) and p(x|y, z) as MLPs.

Every network whose input includes the label y has a first layer
W_x x + W_y onehot(y) + b (a linear layer over the concatenation [x, onehot(y)]),
computed as one projection of x plus a row of W_y per class: q(z|x, y) for all
K classes costs one x-projection, not K.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.precision import compute_dtype


class LabelledLinear(nnx.Module):
  """[..., D] inputs, [...] or all labels -> [..., F]: a linear map of [x, onehot(y)]."""

  def __init__(self, num_inputs: int, num_classes: int, features: int, *, rngs: nnx.Rngs):
    self.inputs = nnx.Linear(num_inputs, features, rngs=rngs)
    scale = 1.0 / math.sqrt(num_inputs + num_classes)  # as a LeCun-normal layer over the concat
    self.labels = nnx.Embed(num_classes, features,
                            embedding_init=nnx.initializers.normal(scale), rngs=rngs)

  def __call__(self, x: jax.Array, labels: jax.Array) -> jax.Array:
    return self.inputs(x) + self.labels(labels)  # [..., F]

  def every_class(self, x: jax.Array) -> jax.Array:
    """[B, D] -> [B, K, F], the output for each class in turn."""
    return self.inputs(x)[:, None, :] + self.labels.embedding[...][None]


class MLP(nnx.Module):
  """softplus hidden layers after a given first layer, then a linear output."""

  def __init__(self, hidden: int, num_layers: int, num_outputs: int, *, rngs: nnx.Rngs):
    self.hidden = nnx.List([nnx.Linear(hidden, hidden, rngs=rngs) for _ in range(num_layers - 1)])
    self.output = nnx.Linear(hidden, num_outputs, rngs=rngs)

  def __call__(self, h: jax.Array) -> jax.Array:
    h = jax.nn.softplus(h)
    for layer in self.hidden:
      h = jax.nn.softplus(layer(h))
    return self.output(h)


class SemiSupervisedVAE(nnx.Module):
  """q(y|x) logits, q(z|x, y) (mean, log-variance) and p(x|y, z): Bernoulli logits [.., D],
  or with gaussian_decoder a diagonal Gaussian's mean and log-variance [.., 2D] (M1+M2,
  x an M1's latent z1).

  Inputs go in flattened: x [B, D], images as floats in {0, 1}.
  """

  def __init__(self, *, num_inputs: int, num_classes: int, latent_dim: int, hidden: int,
               num_layers: int, rngs: nnx.Rngs, gaussian_decoder: bool = False):
    self.num_classes, self.latent_dim = num_classes, latent_dim
    self.classifier_input = nnx.Linear(num_inputs, hidden, rngs=rngs)
    self.classifier = MLP(hidden, num_layers, num_classes, rngs=rngs)
    self.encoder_input = LabelledLinear(num_inputs, num_classes, hidden, rngs=rngs)
    self.encoder = MLP(hidden, num_layers, 2 * latent_dim, rngs=rngs)
    self.decoder_input = LabelledLinear(latent_dim, num_classes, hidden, rngs=rngs)
    self.decoder = MLP(hidden, num_layers, num_inputs * (2 if gaussian_decoder else 1), rngs=rngs)

  def classify(self, x: jax.Array) -> jax.Array:
    """[B, D] -> [B, K] logits of q(y|x)."""
    x = x.astype(compute_dtype(self))
    return self.classifier(self.classifier_input(x)).astype(jnp.float32)

  def encode(self, x: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(z|x, y) for given labels [B]: mean, log-variance [B, Z]."""
    out = self.encoder(self.encoder_input(x.astype(compute_dtype(self)), labels))
    mean, log_variance = jnp.split(out.astype(jnp.float32), 2, axis=-1)
    return mean, log_variance

  def encode_every_class(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(z|x, y) for y = 0 .. K-1: mean, log-variance [B, K, Z]."""
    out = self.encoder(self.encoder_input.every_class(x.astype(compute_dtype(self))))
    mean, log_variance = jnp.split(out.astype(jnp.float32), 2, axis=-1)
    return mean, log_variance

  def decode(self, z: jax.Array, labels: jax.Array) -> jax.Array:
    """z [..., Z], labels [...] -> [..., D] Bernoulli logits of p(x|y, z) (Gaussian: [..., 2D],
    the mean then the log-variance)."""
    z = z.astype(compute_dtype(self))
    return self.decoder(self.decoder_input(z, labels)).astype(jnp.float32)

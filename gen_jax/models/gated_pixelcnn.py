"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders").

Each layer updates a vertical stack v (rows above) and a horizontal stack h
(the current row, left of the pixel):

  v' = tanh(W_f * v + V_f y) . sigmoid(W_g * v + V_g y)
  h_pre = W * h + 1x1(down_shift(W * v))            (the v -> h link)
  h' = h + 1x1(tanh(h_pre_f + V_f y) . sigmoid(h_pre_g + V_g y))

with a skip connection from every layer summed into a head of two 1x1
convolutions and a 256-way softmax per sub-pixel. y is an optional class
embedding. Gate pairs (f, g) are interleaved in the 2F pre-activation so that
both halves of a pair belong to the same colour group.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.causal_conv import CausalConv
from gen_jax.nn.gated import HorizontalConv, VerticalConv, down_shift


def gate(pre_activation: jax.Array) -> jax.Array:  # [..., 2F] -> [..., F]
  pairs = pre_activation.reshape(*pre_activation.shape[:-1], -1, 2)
  return jnp.tanh(pairs[..., 0]) * jax.nn.sigmoid(pairs[..., 1])


class GatedLayer(nnx.Module):
  """One vertical + horizontal update; the first layer is mask 'A' with no residual."""

  def __init__(self, in_features: int, features: int, skip_features: int, kernel_size: int,
               num_groups: int, num_classes: int, first: bool, *, rngs: nnx.Rngs):
    self.first = first
    self.vertical = VerticalConv(in_features, 2 * features, kernel_size, rngs=rngs)
    self.horizontal = HorizontalConv(in_features, 2 * features, kernel_size,
                                     "A" if first else "B", num_groups=num_groups, rngs=rngs)
    self.link = nnx.Linear(2 * features, 2 * features, rngs=rngs)
    self.residual = CausalConv(features, features, 1, "B", num_groups=num_groups, rngs=rngs)
    self.skip = CausalConv(features, skip_features, 1, "B", num_groups=num_groups, rngs=rngs)
    if num_classes:
      self.condition_vertical = nnx.Embed(num_classes, 2 * features, rngs=rngs)
      self.condition_horizontal = nnx.Embed(num_classes, 2 * features, rngs=rngs)
    self.num_classes = num_classes

  def __call__(self, v, h, labels):  # [B, H, W, F_in] x2, [B] -> v', h', skip
    v_pre = self.vertical(v)  # [B, H, W, 2F]
    h_pre = self.horizontal(h) + self.link(down_shift(v_pre))
    if self.num_classes:
      v_pre = v_pre + self.condition_vertical(labels)[:, None, None, :]
      h_pre = h_pre + self.condition_horizontal(labels)[:, None, None, :]
    h_gated = gate(h_pre)  # [B, H, W, F]
    h_out = self.residual(h_gated)
    return gate(v_pre), h_out if self.first else h + h_out, self.skip(h_gated)


class GatedPixelCNN(nnx.Module):
  """uint8 images [B, H, W, C] (+ labels [B]) -> logits [B, H, W, C, num_levels]."""

  def __init__(self, *, num_channels: int, num_levels: int, features: int, num_layers: int,
               kernel_size: int, first_kernel_size: int, skip_features: int,
               head_features: int, num_classes: int = 0, rngs: nnx.Rngs):
    groups = num_channels
    self.num_channels, self.num_levels = num_channels, num_levels
    self.layers = nnx.List([
        GatedLayer(num_channels if i == 0 else features, features, skip_features,
                   first_kernel_size if i == 0 else kernel_size, groups, num_classes,
                   first=i == 0, rngs=rngs)
        for i in range(num_layers)])
    self.head_hidden = CausalConv(skip_features, head_features, 1, "B", num_groups=groups, rngs=rngs)
    self.head_out = CausalConv(head_features, num_channels * num_levels, 1, "B",
                               num_groups=groups, rngs=rngs)

  def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    x = images.astype(jnp.float32) * (2.0 / (self.num_levels - 1)) - 1.0  # [B, H, W, C]
    v, h, skips = x, x, 0.0
    for layer in self.layers:
      v, h, skip = layer(v, h, labels)
      skips = skips + skip
    hidden = self.head_hidden(jax.nn.relu(skips))
    logits = self.head_out(jax.nn.relu(hidden))  # [B, H, W, C * L]
    return logits.reshape(*images.shape, self.num_levels)

"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders").

Each layer updates a vertical stack v (rows above) and a horizontal stack h
(the current row, left of the pixel):

  v' = tanh(W_f * v + V_f y) . sigmoid(W_g * v + V_g y)
  h_pre = W * h + 1x1(down_shift(W * v))            (the v -> h link)
  h' = h + 1x1(tanh(h_pre_f + V_f y) . sigmoid(h_pre_g + V_g y))

with a skip connection from every layer summed into a head of two 1x1
convolutions and a 256-way softmax per sub-pixel. y is an optional class
embedding, or (`condition_features` > 0) a feature map s [B, H, W, S] given
at every position (e.g. upsampled codes of a coarser latent grid), entering
as V y = 1x1(s). s is not autoregressive, so any of it may be seen anywhere.
Gate pairs (f, g) are interleaved in the 2F pre-activation so that both halves
of a pair belong to the same colour group.

Inputs are integers in [0, num_levels) scaled to [-1, 1], or (`embed_features`
> 0, one channel) embedded: for categorical data such as VQ codes, whose
values have no order.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.causal_conv import CausalConv
from gen_jax.nn.precision import compute_dtype
from gen_jax.nn.gated import (HorizontalConv, VerticalConv, down_shift, horizontal_at,
                             vertical_row)


def gate(pre_activation: jax.Array) -> jax.Array:  # [..., 2F] -> [..., F]
  pairs = pre_activation.reshape(*pre_activation.shape[:-1], -1, 2)
  return jnp.tanh(pairs[..., 0]) * jax.nn.sigmoid(pairs[..., 1])


class GatedLayer(nnx.Module):
  """One vertical + horizontal update; the first layer is mask 'A' with no residual."""

  def __init__(self, in_features: int, features: int, skip_features: int, kernel_size: int,
               num_groups: int, num_classes: int, first: bool, condition_features: int = 0,
               *, rngs: nnx.Rngs):
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
    if condition_features:
      self.condition_map_vertical = nnx.Linear(condition_features, 2 * features, rngs=rngs)
      self.condition_map_horizontal = nnx.Linear(condition_features, 2 * features, rngs=rngs)
    self.condition_features = condition_features

  def __call__(self, v, h, labels, condition=None):
    """[B, H, W, F_in] x2, labels [B], condition [B, H, W, S] -> v', h', skip."""
    v_pre = self.vertical(v)  # [B, H, W, 2F]
    h_pre = self.horizontal(h) + self.link(down_shift(v_pre))
    if self.num_classes:
      v_pre = v_pre + self.condition_vertical(labels)[:, None, None, :]
      h_pre = h_pre + self.condition_horizontal(labels)[:, None, None, :]
    if self.condition_features:  # added after the down-shift: s at row i is allowed at row i
      v_pre = v_pre + self.condition_map_vertical(condition)
      h_pre = h_pre + self.condition_map_horizontal(condition)
    h_gated = gate(h_pre)  # [B, H, W, F]
    h_out = self.residual(h_gated)
    return gate(v_pre), h_out if self.first else h + h_out, self.skip(h_gated)


def call(module: nnx.Module, *args):
  return module(*args)


class GatedPixelCNN(nnx.Module):
  """Integer images [B, H, W, C] (+ labels [B] or a condition map [B, H, W, S])
  -> logits [B, H, W, C, num_levels]."""

  def __init__(self, *, num_channels: int, num_levels: int, features: int, num_layers: int,
               kernel_size: int, first_kernel_size: int, skip_features: int,
               head_features: int, num_classes: int = 0, embed_features: int = 0,
               condition_features: int = 0, remat: bool = False, rngs: nnx.Rngs):
    if embed_features and num_channels != 1:
      raise ValueError("embed_features needs num_channels == 1 (one embedded value a position)")
    groups = num_channels
    self.num_channels, self.num_levels, self.num_classes = num_channels, num_levels, num_classes
    self.condition_features = condition_features
    self.remat = remat  # recompute each layer's activations in the backward pass
    self.embed = nnx.Embed(num_levels, embed_features, rngs=rngs) if embed_features else None
    self.layers = nnx.List([
        GatedLayer((embed_features or num_channels) if i == 0 else features, features,
                   skip_features, first_kernel_size if i == 0 else kernel_size, groups,
                   num_classes, first=i == 0, condition_features=condition_features, rngs=rngs)
        for i in range(num_layers)])
    self.head_hidden = CausalConv(skip_features, head_features, 1, "B", num_groups=groups, rngs=rngs)
    self.head_out = CausalConv(head_features, num_channels * num_levels, 1, "B",
                               num_groups=groups, rngs=rngs)

  def inputs(self, images: jax.Array) -> jax.Array:
    """Integer images [B, H, W, C] -> the first layer's input [B, H, W, C or E]."""
    if self.embed is not None:
      return self.embed(images[..., 0]).astype(compute_dtype(self))
    return images.astype(compute_dtype(self)) * (2.0 / (self.num_levels - 1)) - 1.0

  def check_condition(self, condition: jax.Array | None) -> None:
    if (condition is None) != (not self.condition_features):
      raise ValueError(f"this GatedPixelCNN takes a condition map of {self.condition_features} "
                       f"features; got {None if condition is None else condition.shape}")

  def __call__(self, images: jax.Array, labels: jax.Array | None = None,
               condition: jax.Array | None = None) -> jax.Array:
    self.check_condition(condition)
    condition = None if condition is None else condition.astype(compute_dtype(self))
    x = self.inputs(images)  # [B, H, W, C or E]
    v, h, skips = x, x, 0.0
    apply_layer = nnx.remat(call) if self.remat else call
    for layer in self.layers:
      v, h, skip = apply_layer(layer, v, h, labels, condition)
      skips = skips + skip
    hidden = self.head_hidden(jax.nn.relu(skips))
    logits = self.head_out(jax.nn.relu(hidden))  # [B, H, W, C * L]
    return logits.reshape(*images.shape, self.num_levels)

  # ------------------------------------------------------------ cached sampling
  # The vertical stack at row r is final once row r is drawn; it is computed
  # for the whole row when the sampler reaches column 0 of row r + 1 and kept
  # as the link input (`link`, already down-shifted: row r + 1 reads it) and the
  # next layer's vertical input (`vertical`: its last k//2 + 1 rows, a ring with row
  # r at r mod (k//2 + 1), so that a pixel's later channels can redo the update).
  # The horizontal stack is computed at the current pixel only, from each layer's
  # horizontal input on the present row (`horizontal`). Every buffer holds a row
  # or a few: XLA copies a loop-carried buffer that a step both reads and updates
  # in place (or that a `cond` passes through), so whole-map caches cost a copy of
  # every map per drawn pixel.

  def init_cache(self, images: jax.Array, labels: jax.Array | None = None,
                 condition: jax.Array | None = None) -> dict:
    self.check_condition(condition)
    num, height, width, _ = images.shape
    layers = self.layers
    return {
        "labels": jnp.zeros((num,), jnp.int32) if labels is None else labels,
        "condition": jnp.zeros((num, height, width, 0)) if condition is None else condition,
        "link": [jnp.zeros((num, width, layer.link.in_features)) for layer in layers],
        "vertical": [jnp.zeros((num, layer.vertical.half + 1, width,
                                layer.vertical.kernel.shape[2])) for layer in layers[1:]],
        "horizontal": [jnp.zeros((num, 1, width + layer.horizontal.half,
                                  layer.horizontal.kernel.shape[2])) for layer in layers[1:]],
    }

  def _update_vertical(self, cache: dict, x: jax.Array, row) -> dict:
    """Computes every layer's vertical stack on row `row` - 1 (all of it drawn)."""
    done = row - 1
    link, vertical = list(cache["link"]), list(cache["vertical"])
    v_input = jnp.pad(x, ((0, 0), (self.layers[0].vertical.half, 0), (0, 0), (0, 0)))
    for index, layer in enumerate(self.layers):
      v_pre = vertical_row(layer.vertical, v_input, done if index == 0 else 0)  # [N, W, 2F]
      link[index] = v_pre
      if self.num_classes:
        v_pre = v_pre + layer.condition_vertical(cache["labels"])[:, None, :]
      if self.condition_features:
        v_pre = v_pre + layer.condition_map_vertical(cache["condition"][:, done])
      if index + 1 < len(self.layers):  # row `done` replaces row done - half - 1 in the ring
        rows = vertical[index].shape[1]
        vertical[index] = jax.lax.dynamic_update_slice(
            vertical[index], gate(v_pre)[:, None].astype(vertical[index].dtype),
            (0, done % rows, 0, 0))
        v_input = jnp.take(vertical[index], (done + 1 + jnp.arange(rows)) % rows, axis=1)
    return {**cache, "link": link, "vertical": vertical}

  def logits_at(self, cache: dict, images: jax.Array, row, column):
    """(logits [N, C, L] at pixel (row, column), updated cache)."""
    x = self.inputs(images)  # [N, H, W, C or E]
    cache = jax.lax.cond((column == 0) & (row > 0),
                         lambda c: self._update_vertical(c, x, row), lambda c: c, cache)
    labels, horizontal = cache["labels"], list(cache["horizontal"])
    first_half = self.layers[0].horizontal.half
    h_input = jnp.pad(x, ((0, 0), (0, 0), (first_half, 0), (0, 0)))
    h, skips = None, 0.0
    for index, layer in enumerate(self.layers):
      if index > 0:  # this layer's horizontal input at the pixel is the last layer's output
        horizontal[index - 1] = jax.lax.dynamic_update_slice(
            horizontal[index - 1], h[:, None, None, :].astype(horizontal[index - 1].dtype),
            (0, 0, column + layer.horizontal.half, 0))
        h_input = horizontal[index - 1]
      h_pre = horizontal_at(layer.horizontal, h_input, 0 if index else row, column)
      h_pre = h_pre + layer.link(jax.lax.dynamic_index_in_dim(cache["link"][index], column, 1,
                                                              keepdims=False))
      if self.num_classes:
        h_pre = h_pre + layer.condition_horizontal(labels)
      if self.condition_features:
        h_pre = h_pre + layer.condition_map_horizontal(cache["condition"][:, row, column])
      h_gated = gate(h_pre)  # [N, F]
      h_out = layer.residual(h_gated)
      h = h_out if layer.first else h + h_out
      skips = skips + layer.skip(h_gated)
    logits = self.head_out(jax.nn.relu(self.head_hidden(jax.nn.relu(skips))))  # [N, C * L]
    return logits.reshape(-1, self.num_channels, self.num_levels), {**cache, "horizontal": horizontal}

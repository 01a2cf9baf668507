"""PixelRNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", sec. 3).

p(x) = prod_i prod_c p(x_{i,c} | x_{<i}, x_{i,<c}): a mask-A k x k convolution
(7 x 7 in the paper), L residual recurrent layers (Row LSTM or Diagonal BiLSTM,
gen_jax.nn.lstm) and a head of two mask-B 1x1 convolutions giving a 256-way
softmax per sub-pixel. Each recurrent layer reads the residual stream of
`features` (2h in the paper) channels, runs an LSTM of `hidden_features` (h)
units, and adds a mask-B 1x1 projection of its output back (the paper's Figure 4):

  x_{l+1} = x_l + conv1x1(LSTM(x_l))

Colour images are ordered R -> G -> B inside each pixel through channel groups
in every masked layer.

Receptive fields (tests/models/test_pixelrnn.py checks both exactly): the Row
LSTM sees a triangle above the pixel; the Diagonal BiLSTM every earlier pixel
but one. The last pixel of row r-1 enters the features only at rows >= r (the
mask-A first layer never shows a pixel to its own position), there only at
columns >= W-1-k//2, so pixels (r, j) left of those never see it, however many
layers follow. This is the paper's architecture; a right-to-left pass fed
with its own row's pixels would close the gap.
"""

import jax
from flax import nnx

from gen_jax.nn.causal_conv import CausalConv
from gen_jax.nn.lstm import DiagonalBiLSTM, RowLSTM
from gen_jax.nn.precision import compute_dtype

LAYER_TYPES = ("row_lstm", "diagonal_bilstm")


class ResidualLSTMBlock(nnx.Module):
  """x + conv1x1_B(LSTM(x)): [B, H, W, features] -> same."""

  def __init__(self, layer_type: str, features: int, hidden_features: int,
               kernel_size: int | None, num_groups: int, *, rngs: nnx.Rngs):
    if layer_type == "row_lstm":
      self.lstm = RowLSTM(features, hidden_features, kernel_size, num_groups=num_groups, rngs=rngs)
    elif layer_type == "diagonal_bilstm":
      self.lstm = DiagonalBiLSTM(features, hidden_features, num_groups=num_groups, rngs=rngs)
    else:
      raise ValueError(f"layer_type must be one of {LAYER_TYPES}, got {layer_type!r}")
    self.expand = CausalConv(hidden_features, features, 1, "B", num_groups=num_groups, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + self.expand(self.lstm(x))


class PixelRNN(nnx.Module):
  """Maps uint8 images [B, H, W, C] to logits [B, H, W, C, num_levels]."""

  def __init__(self, *, layer_type: str, num_channels: int, num_levels: int, features: int,
               hidden_features: int, num_layers: int, first_kernel_size: int, head_features: int,
               kernel_size: int | None = None, rngs: nnx.Rngs):
    """kernel_size: the Row LSTM's 1 x k input-to-state and width-k state-to-state
    convolutions (the Diagonal BiLSTM's are fixed: 1 x 1 and 2 x 1)."""
    groups = num_channels
    self.layer_type = layer_type
    self.num_channels, self.num_levels = num_channels, num_levels
    self.first = CausalConv(num_channels, features, first_kernel_size, "A", num_groups=groups,
                            rngs=rngs)
    self.blocks = nnx.List([
        ResidualLSTMBlock(layer_type, features, hidden_features, kernel_size, groups, rngs=rngs)
        for _ in range(num_layers)])
    self.head_hidden = CausalConv(features, head_features, 1, "B", num_groups=groups, rngs=rngs)
    self.head_out = CausalConv(head_features, num_channels * num_levels, 1, "B",
                               num_groups=groups, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = images.astype(compute_dtype(self)) * (2.0 / (self.num_levels - 1)) - 1.0  # [B, H, W, C]
    h = self.first(x)  # [B, H, W, F]
    for block in self.blocks:
      h = block(h)
    h = self.head_hidden(jax.nn.relu(h))
    logits = self.head_out(jax.nn.relu(h))  # [B, H, W, C * L], channel-major groups
    return logits.reshape(*images.shape, self.num_levels)  # [B, H, W, C, L]

  # ------------------------------------------------------------ cached sampling
  # Each draw computes every layer at the drawn pixel only: the first layer from the
  # images, the recurrent layers from their state caches (gen_jax.nn.lstm: the rows
  # above, and the row so far); the Diagonal BiLSTM's right-to-left pass runs over a
  # row when the sampler reaches the next one. 1x1 convolutions and residuals act on
  # the pixel's feature vector alone.

  def init_cache(self, images: jax.Array) -> list[dict]:
    num, height, width, _ = images.shape
    return [block.lstm.init_cache(num, height, width) for block in self.blocks]

  def logits_at(self, cache: list[dict], images: jax.Array, row, column):
    """(logits [N, C, L] at pixel (row, column), updated cache)."""
    if self.layer_type == "diagonal_bilstm":  # row - 1 is all drawn: its reverse pass
      cache = jax.lax.cond(
          (column == 0) & (row > 0),
          lambda c: [block.lstm.finish_row(bc, row - 1) for block, bc in zip(self.blocks, c)],
          lambda c: c, cache)
    x = images.astype(compute_dtype(self)) * (2.0 / (self.num_levels - 1)) - 1.0  # [N, H, W, C]
    h = self.first.at(self.first.pad_for_cache(x), row, column)  # [N, F]
    block_caches = []
    for block, block_cache in zip(self.blocks, cache):
      hidden, block_cache = block.lstm.at(block_cache, h, row, column)
      h = h + block.expand(hidden)
      block_caches.append(block_cache)
    logits = self.head_out(jax.nn.relu(self.head_hidden(jax.nn.relu(h))))  # [N, C * L]
    return logits.reshape(-1, self.num_channels, self.num_levels), block_caches

"""The two-dimensional LSTM layers of PixelRNN (van den Oord et al. 2016, sec. 3.1-3.2).

Both layers compute the input-to-state pre-activations of the whole map with
one masked convolution, then run the recurrence as a `lax.scan`:

  [i, f, o, g] = K^is * x  +  K^ss * h_prev          (pre-activations)
  c = sigmoid(f) . c_prev + sigmoid(i) . tanh(g)
  h = sigmoid(o) . tanh(c)

Row LSTM: scanned top to bottom, one row per step. K^is is a causal 1 x k
convolution of the row (columns j-k//2 .. j, mask 'B'); K^ss a width-k 1-D
convolution of the previous row's h; c_prev is the previous row's cell. Pixel
(r, j) thus sees a triangle above it (columns j - (d+1) k//2 .. j + d k//2 of
row r-d), not the whole context.

Diagonal BiLSTM: the map is skewed (row r shifted right by r, `skew`) so that
pixel (r, j)'s left neighbour (r, j-1) and upper neighbour (r-1, j) both lie in
the previous column; the scan runs column by column with a 2 x 1 K^ss over
rows (r-1, r) of the previous column, c_prev is the left neighbour's cell.
K^is is a masked 1 x 1 convolution. The right-to-left direction is the same
layer on the map flipped left-right; its output is shifted down one row before
the two are added, so pixel (r, j) sees all of rows < r through it and all of
row r up to j through the left-to-right direction: the whole context of the
layer's input.

Colour images: hidden units are split into one contiguous group per colour
channel, and each unit's gate pre-activations are laid out next to each other
(features [F, 4], or [F, 2, 4] for the two directions), so the masked K^is
gives every gate of a colour-c unit only the channels <= c of the present
pixel. K^ss reads earlier pixels only, so it is not masked.
"""

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from gen_jax.nn.causal_conv import CausalConv, init_kernel
from gen_jax.nn.gated import HorizontalConv, down_shift, horizontal_at

NUM_GATES = 4  # i, f, o, g: the last axis of a [..., F, 4] pre-activation
FORGET_GATE = 1
# a * tanh(a x) + b: sigmoid(x) = 0.5 tanh(0.5 x) + 0.5 for i, f, o; tanh(x) for g
GATE_SCALE, GATE_OFFSET = (0.5, 0.5, 0.5, 1.0), (0.5, 0.5, 0.5, 0.0)
FORGET_BIAS = 1.0  # a forget gate that starts half open keeps the scan's gradients alive


def lstm_cell(pre_activation: jax.Array, cell: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(h, c) from pre-activations [..., F, 4] (i, f, o, g) and the previous cell [..., F].

  c = sigmoid(f) c_prev + sigmoid(i) tanh(g);  h = sigmoid(o) tanh(c).
  The three sigmoids and the tanh are one tanh over the whole [..., F, 4] block,
  sigmoid(x) = (1 + tanh(x / 2)) / 2: 4x faster on CPU than four strided calls.
  """
  scale = jnp.array(GATE_SCALE, pre_activation.dtype)  # [4]
  gates = jnp.tanh(pre_activation * scale) * scale + jnp.array(GATE_OFFSET, scale.dtype)
  input_gate, forget_gate, output_gate, candidate = (gates[..., k] for k in range(NUM_GATES))
  cell = forget_gate * cell + input_gate * candidate
  return output_gate * jnp.tanh(cell), cell


def conv1d(x: jax.Array, kernel: jax.Array, padding: tuple[int, int]) -> jax.Array:
  """y[n] = sum_t x[n - lo + t] @ kernel[t], zero outside x.

  x: [B, N, Cin]; kernel: [k, Cin, Cout]; padding (lo, hi) -> [B, N + lo + hi - k + 1, Cout].
  Written as one matmul of the k shifted copies side by side ([B, N', k Cin] @
  [k Cin, Cout]): inside a scan on CPU its backward pass is 3-4x faster than
  lax.conv's (measured on the Row LSTM, batch 64, F = 16).
  """
  taps, in_features, out_features = kernel.shape
  padded = jnp.pad(x, ((0, 0), padding, (0, 0)))  # [B, N + lo + hi, Cin]
  length = padded.shape[1] - taps + 1
  windows = jnp.concatenate([padded[:, t:t + length] for t in range(taps)], -1)  # [B, N', k Cin]
  y = windows.reshape(-1, taps * in_features) @ kernel.reshape(taps * in_features, out_features)
  return y.reshape(*windows.shape[:-1], out_features)


def skew(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, H, W + H - 1, C]: out[:, r, r + j] = x[:, r, j], zeros elsewhere.

  Pad each row with H zeros (width W + H), read the flat rows back with a
  stride one shorter (W + H - 1): row r then starts r elements later.
  """
  batch, height, width, channels = x.shape
  padded = jnp.pad(x, ((0, 0), (0, 0), (0, height), (0, 0)))  # [B, H, W + H, C]
  flat = padded.reshape(batch, height * (width + height), channels)
  return flat[:, :height * (width + height - 1)].reshape(batch, height, width + height - 1,
                                                         channels)


def unskew(x: jax.Array, width: int) -> jax.Array:
  """[B, H, W + H - 1, C] -> [B, H, W, C]: out[:, r, j] = x[:, r, r + j]; inverts `skew`.

  Read the flat rows back with a stride one longer (W + H): row r then starts
  r elements later, at its first skewed pixel.
  """
  batch, height, skewed_width, channels = x.shape
  if skewed_width != width + height - 1:
    raise ValueError(f"a skewed map of height {height} and width {width} has "
                     f"{width + height - 1} columns, got {skewed_width}")
  flat = jnp.pad(x.reshape(batch, height * skewed_width, channels), ((0, 0), (0, height), (0, 0)))
  return flat.reshape(batch, height, width + height, channels)[:, :, :width]


def row_lstm_scan(input_gates: jax.Array, state_kernel: jax.Array) -> jax.Array:
  """The Row LSTM recurrence, one row per scan step, top to bottom.

  pre_r = input_gates_r + conv1d(h_{r-1}, K^ss) (width k, 'same'); h_{-1} = c_{-1} = 0.

  input_gates: [B, H, W, 4F] (unit-major: [F, 4]); state_kernel: [k, F, 4F] -> h [B, H, W, F].
  """
  batch, _, width, gate_features = input_gates.shape
  features = gate_features // NUM_GATES
  half = state_kernel.shape[0] // 2

  def step(carry, gates_row):  # gates_row: [B, W, 4F]
    hidden, cell = carry  # [B, W, F] each: row r-1
    pre = gates_row + conv1d(hidden, state_kernel, (half, half))
    hidden, cell = lstm_cell(pre.reshape(batch, width, features, NUM_GATES), cell)
    return (hidden, cell), hidden

  zeros = jnp.zeros((batch, width, features), input_gates.dtype)
  _, hidden = lax.scan(step, (zeros, zeros), jnp.moveaxis(input_gates, 1, 0))  # [H, B, W, F]
  return jnp.moveaxis(hidden, 0, 1)


def diagonal_lstm_scan(skewed_gates: jax.Array, state_kernel: jax.Array) -> jax.Array:
  """The Diagonal LSTM recurrence on a skewed map, one column per scan step.

  pre[:, r, s] = skewed_gates[:, r, s] + h[:, r-1, s-1] @ K^ss[0] + h[:, r, s-1] @ K^ss[1],
  c_prev = c[:, r, s-1]; h and c are zero before column 0 and above row 0.

  skewed_gates: [B, H, S, 4F] (unit-major: [F, 4]); state_kernel: [2, F, 4F] -> h [B, H, S, F].
  """
  batch, height, _, gate_features = skewed_gates.shape
  features = gate_features // NUM_GATES

  def step(carry, gates_column):  # gates_column: [B, H, 4F]
    hidden, cell = carry  # [B, H, F] each: column s-1
    pre = gates_column + conv1d(hidden, state_kernel, (1, 0))  # rows r-1 and r
    hidden, cell = lstm_cell(pre.reshape(batch, height, features, NUM_GATES), cell)
    return (hidden, cell), hidden

  zeros = jnp.zeros((batch, height, features), skewed_gates.dtype)
  _, hidden = lax.scan(step, (zeros, zeros), jnp.moveaxis(skewed_gates, 2, 0))  # [S, B, H, F]
  return jnp.moveaxis(hidden, 0, 2)


def _open_forget_gates(bias: nnx.Param, gate_shape: tuple[int, ...]) -> None:
  """Sets the forget-gate entries of a conv bias laid out as [F, ..., 4] to FORGET_BIAS."""
  bias.value = bias[...].reshape(gate_shape).at[..., FORGET_GATE].set(
      FORGET_BIAS).reshape(bias.shape)


class RowLSTM(nnx.Module):
  """[B, H, W, Cin] -> h [B, H, W, F]: the Row LSTM (module docstring)."""

  def __init__(self, in_features: int, features: int, kernel_size: int, *,
               num_groups: int = 1, rngs: nnx.Rngs):
    if kernel_size % 2 != 1:
      raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    self.features = features
    self.input_to_state = HorizontalConv(in_features, NUM_GATES * features, kernel_size, "B",
                                         num_groups=num_groups, rngs=rngs)
    _open_forget_gates(self.input_to_state.bias, (features, NUM_GATES))
    self.state_to_state = init_kernel(rngs, (kernel_size, features, NUM_GATES * features),
                                      kernel_size * features)

  def __call__(self, x: jax.Array) -> jax.Array:
    return row_lstm_scan(self.input_to_state(x), self.state_to_state[...])

  # Cached sampling (one pixel at a time, raster order): `at` gives h at one pixel
  # from the layer input there and the state the earlier pixels left, kept in row
  # buffers (`init_cache`): the present row, and the row above in a ring of two rows
  # indexed by row parity. A pixel's channels are drawn one `at` call each: a call
  # rereads what the first one read, so no buffer is read where it is written.

  def init_cache(self, num: int, height: int, width: int) -> dict:
    """input: the present row's layer input, `half` zero columns on the left; hidden
    (`half` zero columns each side), cell: rows r - 1 and r at index parity."""
    del height
    half, features = self.input_to_state.half, self.features
    return {"input": jnp.zeros((num, 1, width + half, self.input_to_state.in_features)),
            "hidden": jnp.zeros((num, 2, width + 2 * half, features)),
            "cell": jnp.zeros((num, 2, width, features))}

  def at(self, cache: dict, x: jax.Array, row, column) -> tuple[jax.Array, dict]:
    """(h [N, F] at (row, column), cache) from the layer input there, x [N, Cin]:

    pre = K^is * x[row, column-half .. column] + sum_t h[row-1, column-half+t] @ K^ss[t],
    c_prev = c[row-1, column]: `row_lstm_scan` at that pixel.
    """
    half, features = self.input_to_state.half, self.features
    above, present = (row + 1) % 2, row % 2
    inputs = write_pixel(cache["input"], x, 0, column + half)
    input_gates = horizontal_at(self.input_to_state, inputs, 0, column)  # [N, 4F]
    hidden_above = read_pixels(cache["hidden"], above, column, 2 * half + 1)  # [N, k, F]
    pre = input_gates + jnp.einsum("nkf,kfg->ng", hidden_above, self.state_to_state[...])
    cell_above = read_pixels(cache["cell"], above, column)[:, 0]  # [N, F]
    hidden, cell = lstm_cell(pre.reshape(-1, features, NUM_GATES), cell_above)
    return hidden, {"input": inputs,
                    "hidden": write_pixel(cache["hidden"], hidden, present, column + half),
                    "cell": write_pixel(cache["cell"], cell, present, column)}


class DiagonalBiLSTM(nnx.Module):
  """[B, H, W, Cin] -> h [B, H, W, F]: left-to-right + down-shifted right-to-left."""

  def __init__(self, in_features: int, features: int, *, num_groups: int = 1,
               rngs: nnx.Rngs):
    self.features = features
    # Both directions' gates from one masked 1x1 convolution, laid out [F, 2, 4]
    # so that all eight pre-activations of a unit share its colour group.
    self.input_to_state = CausalConv(in_features, 2 * NUM_GATES * features, 1, "B",
                                     num_groups=num_groups, rngs=rngs)
    _open_forget_gates(self.input_to_state.bias, (features, 2, NUM_GATES))
    # [direction, tap (row r-1, row r), F, 4F]
    self.state_to_state = init_kernel(rngs, (2, 2, features, NUM_GATES * features), 2 * features)

  def __call__(self, x: jax.Array) -> jax.Array:
    batch, height, width, _ = x.shape
    features = self.features
    gates = self.input_to_state(x).reshape(batch, height, width, features, 2, NUM_GATES)
    gates = jnp.moveaxis(gates, 4, 0).reshape(2, batch, height, width, NUM_GATES * features)
    gates = jnp.stack([gates[0], jnp.flip(gates[1], axis=2)])  # right-to-left: mirrored
    hidden = jax.vmap(diagonal_lstm_scan)(jax.vmap(skew)(gates), self.state_to_state[...])
    hidden = jax.vmap(unskew, in_axes=(0, None))(hidden, width)  # [2, B, H, W, F]
    right_to_left = jnp.flip(hidden[1], axis=2)
    return hidden[0] + down_shift(right_to_left)  # row r sees the reverse pass of rows < r

  # Cached sampling. Unskewed, the left-to-right pass at (r, j) reads h(r-1, j) (tap 0),
  # h(r, j-1) (tap 1) and c(r, j-1); every position of the skewed map outside the image
  # that a pixel reads is zero (left of row r: zero inputs and a zero state from the
  # left). So it runs pixel by pixel (`at`). The right-to-left pass reads h(r-1, j),
  # h(r, j+1), c(r, j+1): the whole row, which only row r + 1 sees (the down-shift),
  # so it runs over a row once all of it is drawn (`finish_row`). Row buffers as in
  # RowLSTM: rows r - 1 and r at index parity where both are read.

  def init_cache(self, num: int, height: int, width: int) -> dict:
    """hidden: the left-to-right h of rows r - 1, r at parity, pixel j at j + 1 (a zero
    column 0); cell: its c on the present row, likewise; reverse_hidden, reverse_gates: the
    right-to-left h and input pre-activations of rows r - 1, r at parity (a pixel's later
    channels rerun `finish_row` of row r - 1 after the first wrote row r's gates)."""
    del height
    features = self.features
    return {"hidden": jnp.zeros((num, 2, width + 1, features)),
            "cell": jnp.zeros((num, 1, width + 1, features)),
            "reverse_hidden": jnp.zeros((num, 2, width, features)),
            "reverse_gates": jnp.zeros((num, 2, width, NUM_GATES * features))}

  def at(self, cache: dict, x: jax.Array, row, column) -> tuple[jax.Array, dict]:
    """(the layer output [N, F] at (row, column), cache) from the layer input there x [N, Cin]:
    the left-to-right h there plus the right-to-left h of (row - 1, column)."""
    features = self.features
    above, present = (row + 1) % 2, row % 2
    gates = self.input_to_state(x).reshape(-1, features, 2, NUM_GATES)  # [N, F, 2, 4]
    forward_gates = gates[:, :, 0].reshape(-1, NUM_GATES * features)
    reverse_gates = gates[:, :, 1].reshape(-1, NUM_GATES * features)
    kernel = self.state_to_state[...]  # [direction, tap, F, 4F]
    hidden_above = read_pixels(cache["hidden"], above, column + 1)[:, 0]  # h(row - 1, column)
    hidden_left = read_pixels(cache["hidden"], present, column)[:, 0]  # h(row, column - 1)
    pre = forward_gates + hidden_above @ kernel[0, 0] + hidden_left @ kernel[0, 1]
    hidden, cell = lstm_cell(pre.reshape(-1, features, NUM_GATES),
                             read_pixels(cache["cell"], 0, column)[:, 0])
    output = hidden + read_pixels(cache["reverse_hidden"], above, column)[:, 0]
    return output, {"hidden": write_pixel(cache["hidden"], hidden, present, column + 1),
                    "cell": write_pixel(cache["cell"], cell, 0, column + 1),
                    "reverse_hidden": cache["reverse_hidden"],
                    "reverse_gates": write_pixel(cache["reverse_gates"], reverse_gates, present,
                                                 column)}

  def finish_row(self, cache: dict, row) -> dict:
    """The right-to-left pass over row `row`, all of it drawn: a scan from its last column,
    pre(j) = gates(j) + h(row-1, j) @ K^ss[1, 0] + h(row, j+1) @ K^ss[1, 1]."""
    num, _, width, features = cache["reverse_hidden"].shape
    kernel = self.state_to_state[...]
    gates = read_pixels(cache["reverse_gates"], row % 2, 0, width)  # [N, W, 4F]
    above = read_pixels(cache["reverse_hidden"], (row + 1) % 2, 0, width)  # [N, W, F]: row - 1
    inputs = gates + above @ kernel[1, 0]

    def step(carry, pre_input):  # pre_input [N, 4F]: column j; carry: column j + 1
      hidden, cell = carry
      pre = pre_input + hidden @ kernel[1, 1]
      hidden, cell = lstm_cell(pre.reshape(num, features, NUM_GATES), cell)
      return (hidden, cell), hidden

    zeros = jnp.zeros((num, features), inputs.dtype)
    _, hidden = lax.scan(step, (zeros, zeros), jnp.moveaxis(inputs, 1, 0), reverse=True)
    hidden = jnp.moveaxis(hidden, 0, 1)[:, None]  # [N, 1, W, F]
    return {**cache, "reverse_hidden": lax.dynamic_update_slice(
        cache["reverse_hidden"], hidden.astype(cache["reverse_hidden"].dtype),
        (0, row % 2, 0, 0))}


def write_pixel(cache: jax.Array, values: jax.Array, row, column) -> jax.Array:
  """cache[:, row, column] = values ([N, C]) at traced indices."""
  return lax.dynamic_update_slice(cache, values[:, None, None, :].astype(cache.dtype),
                                  (0, row, column, 0))


def read_pixels(cache: jax.Array, row, column, width: int = 1) -> jax.Array:
  """cache[:, row, column:column + width] at traced indices: [N, width, C]."""
  num, _, _, features = cache.shape
  return lax.dynamic_slice(cache, (0, row, column, 0), (num, 1, width, features))[:, 0]


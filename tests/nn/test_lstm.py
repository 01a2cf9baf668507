"""PixelRNN's LSTM layers: skew/unskew, and each scan against an explicit loop over pixels."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gen_jax.nn import lstm


@pytest.mark.parametrize("height,width", [(3, 5), (5, 2), (4, 4)])
def test_skew_moves_row_r_right_by_r_and_unskew_inverts_it(height, width):
  x = jax.random.normal(jax.random.key(0), (2, height, width, 3))
  skewed = np.asarray(lstm.skew(x))
  chex.assert_shape(skewed, (2, height, width + height - 1, 3))
  expected = np.zeros_like(skewed)
  for r in range(height):
    expected[:, r, r:r + width] = x[:, r]
  np.testing.assert_array_equal(skewed, expected)
  np.testing.assert_array_equal(np.asarray(lstm.unskew(lstm.skew(x), width)), np.asarray(x))


def test_unskew_rejects_a_map_of_the_wrong_width():
  with pytest.raises(ValueError, match="has 6 columns, got 5"):
    lstm.unskew(jnp.zeros((1, 3, 5, 1)), 4)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def reference_cell(pre, cell):
  """The LSTM equations on one pixel's [F, 4] (i, f, o, g) pre-activations, in numpy."""
  i, f, o, g = sigmoid(pre[:, 0]), sigmoid(pre[:, 1]), sigmoid(pre[:, 2]), np.tanh(pre[:, 3])
  cell = f * cell + i * g
  return o * np.tanh(cell), cell


def test_lstm_cell_saturated_gates():
  cell = jnp.array([0.3, -2.0])
  big = 50.0  # sigmoid(+-50) is 1 or 0 in float32
  keep = jnp.stack([jnp.full(2, -big), jnp.full(2, big), jnp.full(2, big), jnp.zeros(2)], -1)
  hidden, new_cell = lstm.lstm_cell(keep, cell)  # forget open, input closed: c unchanged
  np.testing.assert_allclose(new_cell, cell, rtol=1e-6)
  np.testing.assert_allclose(hidden, np.tanh(cell), rtol=1e-6)
  write = jnp.stack([jnp.full(2, big), jnp.full(2, -big), jnp.full(2, -big),
                     jnp.array([0.5, -1.0])], -1)
  hidden, new_cell = lstm.lstm_cell(write, cell)  # forget closed, input open: c = tanh(g)
  np.testing.assert_allclose(new_cell, np.tanh([0.5, -1.0]), rtol=1e-6)
  np.testing.assert_allclose(hidden, 0.0, atol=1e-6)  # output gate closed


def test_row_lstm_equals_a_loop_over_rows_and_columns():
  batch, height, width, in_features, features, kernel_size = 2, 4, 5, 3, 4, 3
  layer = lstm.RowLSTM(in_features, features, kernel_size, rngs=nnx.Rngs(0))
  x = np.asarray(jax.random.normal(jax.random.key(1), (batch, height, width, in_features)))
  input_kernel = np.asarray(layer.input_to_state.kernel[...])[0]  # [half + 1, Cin, 4F]
  input_bias = np.asarray(layer.input_to_state.bias[...])
  state_kernel = np.asarray(layer.state_to_state[...])  # [k, F, 4F]
  half = kernel_size // 2
  expected = np.zeros((batch, height, width, features))
  for b in range(batch):
    hidden_above, cell_above = np.zeros((width, features)), np.zeros((width, features))
    for r in range(height):
      hidden_row, cell_row = np.zeros((width, features)), np.zeros((width, features))
      for j in range(width):
        pre = input_bias.copy()
        for t in range(half + 1):  # input-to-state: columns j - half .. j of row r
          if 0 <= j - half + t:
            pre += x[b, r, j - half + t] @ input_kernel[t]
        for t in range(kernel_size):  # state-to-state: columns j - half .. j + half of row r - 1
          if 0 <= j - half + t < width:
            pre += hidden_above[j - half + t] @ state_kernel[t]
        hidden_row[j], cell_row[j] = reference_cell(pre.reshape(features, 4), cell_above[j])
      expected[b, r] = hidden_row
      hidden_above, cell_above = hidden_row, cell_row
  np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), expected, rtol=1e-4, atol=1e-5)


def test_diagonal_bilstm_equals_a_loop_over_pixels_without_skewing():
  batch, height, width, in_features, features = 2, 4, 5, 3, 4
  layer = lstm.DiagonalBiLSTM(in_features, features, rngs=nnx.Rngs(0))
  x = np.asarray(jax.random.normal(jax.random.key(1), (batch, height, width, in_features)))
  gates = (x @ np.asarray(layer.input_to_state.row[...])[0, 0]
           + np.asarray(layer.input_to_state.bias[...]))  # the 1x1 input-to-state
  gates = gates.reshape(batch, height, width, features, 2, 4)
  state_kernel = np.asarray(layer.state_to_state[...])  # [direction, (up, beside), F, 4F]

  def direction(d, columns, beside):
    """h[r, j] from h[r - 1, j] (above) and h[r, j + beside], cell from (r, j + beside)."""
    hidden = np.zeros((batch, height + 1, width + 2, features))  # zero border: row -1, columns
    cell = np.zeros_like(hidden)
    for b in range(batch):
      for r in range(height):
        for j in columns:  # padded index: row r + 1, column j + 1
          pre = (gates[b, r, j, :, d].reshape(-1) + hidden[b, r, j + 1] @ state_kernel[d, 0]
                 + hidden[b, r + 1, j + 1 + beside] @ state_kernel[d, 1])
          hidden[b, r + 1, j + 1], cell[b, r + 1, j + 1] = reference_cell(
              pre.reshape(features, 4), cell[b, r + 1, j + 1 + beside])
    return hidden[:, 1:, 1:-1]

  left_to_right = direction(0, range(width), -1)
  right_to_left = direction(1, range(width - 1, -1, -1), +1)
  expected = left_to_right.copy()
  expected[:, 1:] += right_to_left[:, :-1]  # shifted down one row
  np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), expected, rtol=1e-4, atol=1e-5)


def test_row_lstm_rejects_an_even_kernel():
  with pytest.raises(ValueError, match="odd"):
    lstm.RowLSTM(2, 4, 4, rngs=nnx.Rngs(0))

"""The LSTM: the cell against the textbook equations in numpy, the scan against a loop."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gen_jax.nn import recurrent


def numpy_lstm(inputs, input_kernel, recurrent_kernel, bias):
  """Hochreiter & Schmidhuber with a forget gate, one step at a time, in float64 numpy."""
  sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))
  batch, steps, _ = inputs.shape
  hidden_size = recurrent_kernel.shape[0]
  h, c = np.zeros((batch, hidden_size)), np.zeros((batch, hidden_size))
  outputs = []
  for t in range(steps):
    z = inputs[:, t] @ input_kernel + h @ recurrent_kernel + bias
    z = z.reshape(batch, hidden_size, 4)  # the 4H axis is [H, 4]: unit-major, gates i, f, o, g
    i, f, o, g = (z[..., k] for k in range(4))
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    outputs.append(h)
  return np.stack(outputs, 1), h, c


def test_lstm_layer_matches_the_equations_and_an_explicit_loop():
  layer = recurrent.LSTM(5, 7, rngs=nnx.Rngs(0))
  # Non-zero biases so every gate term is exercised.
  layer.bias[...] = jax.random.normal(jax.random.key(3), (28,))
  inputs = jax.random.normal(jax.random.key(1), (3, 9, 5))
  state = recurrent.zero_state(3, 7)
  hiddens, last = layer(layer.project(inputs), state)
  assert hiddens.shape == (3, 9, 7)
  expected, h, c = numpy_lstm(*(np.asarray(a, np.float64) for a in (
      inputs, layer.input_kernel[...], layer.recurrent_kernel[...], layer.bias[...])))
  np.testing.assert_allclose(hiddens, expected, atol=1e-5)
  np.testing.assert_allclose(last.hidden, h, atol=1e-5)
  np.testing.assert_allclose(last.cell, c, atol=1e-5)
  # The scan equals calling the cell in a Python loop.
  looped = []
  for t in range(9):
    state = layer.step(layer.project(inputs[:, t]), state)
    looped.append(state.hidden)
  np.testing.assert_allclose(hiddens, jnp.stack(looped, 1), atol=1e-6)


def test_one_hot_projection_is_a_row_gather():
  layer = recurrent.LSTM(11, 4, rngs=nnx.Rngs(0))
  ids = jnp.array([[0, 3, 10], [7, 7, 1]])
  np.testing.assert_allclose(layer.project_one_hot(ids),
                             layer.project(jax.nn.one_hot(ids, 11)), atol=1e-6)


def test_initialisation():
  layer = recurrent.LSTM(3, 6, rngs=nnx.Rngs(0))
  kernel = np.asarray(layer.recurrent_kernel[...])  # [H, 4H] with orthonormal rows
  np.testing.assert_allclose(kernel @ kernel.T, np.eye(6), atol=1e-5)
  np.testing.assert_array_equal(layer.bias[...], np.tile([0.0, 1.0, 0.0, 0.0], 6))  # [H, 4]: f = 1

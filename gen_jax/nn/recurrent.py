"""An LSTM layer whose time loop is one lax.scan over a precomputed input projection.

The input projection x_t W_x + b does not depend on the recurrence, so it is
one [B*T, D] x [D, 4H] matmul for the whole sequence; only h_{t-1} W_h runs
inside the scan. The cell is nn.lstm's, shared with the PixelRNN layers: the 4H
axis is laid out [H, 4], unit-major, with the gates (input, forget, output,
candidate) of each unit adjacent (Hochreiter & Schmidhuber 1997, with the forget
gate of Gers et al. 2000):

  [i, f, o, g] = reshape(x_t W_x + b + h_{t-1} W_h, [H, 4])
  c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
  h_t = sigmoid(o) * tanh(c_t)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn import lstm


class LSTMState(NamedTuple):
  hidden: jax.Array  # [B, H]
  cell: jax.Array  # [B, H]


def zero_state(batch_size: int, hidden_features: int) -> LSTMState:
  zeros = jnp.zeros((batch_size, hidden_features), jnp.float32)
  return LSTMState(zeros, zeros)


def lstm_cell(state: LSTMState, projected_input: jax.Array,
              recurrent_kernel: jax.Array) -> LSTMState:
  """One step: projected_input [B, 4H] is x_t W_x + b; recurrent_kernel is W_h [H, 4H]."""
  gates = projected_input + state.hidden @ recurrent_kernel  # [B, 4H]
  hidden, cell = lstm.lstm_cell(gates.reshape(*gates.shape[:-1], -1, lstm.NUM_GATES), state.cell)
  return LSTMState(hidden, cell)


def lstm_scan(state: LSTMState, projected_inputs: jax.Array,
              recurrent_kernel: jax.Array) -> tuple[jax.Array, LSTMState]:
  """Runs `lstm_cell` over time: projected_inputs [B, T, 4H] -> (hiddens [B, T, H], last state)."""

  def step(state, projected_input):
    state = lstm_cell(state, projected_input, recurrent_kernel)
    return state, state.hidden

  state, hiddens = jax.lax.scan(step, state, jnp.swapaxes(projected_inputs, 0, 1))
  return jnp.swapaxes(hiddens, 0, 1), state


class LSTM(nnx.Module):
  """One LSTM layer: W_x [D, 4H] (fan-in normal), W_h [H, 4H] (orthonormal rows), b [4H].

  The forget gate's bias starts at nn.lstm.FORGET_BIAS (1), so the initial cell
  keeps most of its memory (Jozefowicz et al. 2015).
  """

  def __init__(self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs):
    self.hidden_features = hidden_features
    self.input_kernel = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), (in_features, 4 * hidden_features)))
    self.recurrent_kernel = nnx.Param(nnx.initializers.orthogonal()(
        rngs.params(), (hidden_features, 4 * hidden_features)))
    self.bias = nnx.Param(jnp.zeros((hidden_features, lstm.NUM_GATES)).at[
        :, lstm.FORGET_GATE].set(lstm.FORGET_BIAS).reshape(-1))  # [4H] laid out [H, 4]

  def project(self, inputs: jax.Array) -> jax.Array:  # [..., D] -> [..., 4H]
    return inputs @ self.input_kernel[...] + self.bias[...]

  def project_one_hot(self, ids: jax.Array) -> jax.Array:
    """project(one_hot(ids)) as a row gather: [...] int -> [..., 4H]."""
    return self.input_kernel[...][ids] + self.bias[...]

  def __call__(self, projected_inputs: jax.Array,
               state: LSTMState) -> tuple[jax.Array, LSTMState]:
    """[B, T, 4H] projected inputs -> (hiddens [B, T, H], last state)."""
    return lstm_scan(state, projected_inputs, self.recurrent_kernel[...])

  def step(self, projected_input: jax.Array, state: LSTMState) -> LSTMState:
    """One time step: [B, 4H] -> the next state."""
    return lstm_cell(state, projected_input, self.recurrent_kernel[...])

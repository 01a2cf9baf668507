"""Character-level LSTM language model (Graves 2013; Karpathy's char-rnn).

p(x_1..x_T | x_0) = prod_t softmax(W h_t + b)[x_{t+1}], with h_t the top state
of a stack of LSTMs over the characters x_0..x_t. The input is a learned
embedding (embedding_features > 0) or the one-hot character (0), which the
first layer reads as a row gather of its input kernel. Dropout (rate
`dropout_rate`, training only) acts between layers and before the softmax,
never on the recurrent connections (Zaremba et al. 2014).

Training is truncated backpropagation through time: each window of
sequence_length + 1 characters starts from a zero state, gradients flow
through all of its steps and no further back, and no state is carried
from one window to the next (windows are shuffled).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from gen_jax.nn.recurrent import LSTM, LSTMState, zero_state


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """x * Bernoulli(1 - rate) / (1 - rate); the identity when rng is None or rate is 0."""
  if rng is None or rate == 0.0:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


class CharRNN(nnx.Module):
  """Token ids [B, T] -> next-character logits [B, T, vocabulary_size]."""

  def __init__(self, *, vocabulary_size: int, embedding_features: int, hidden_features: int,
               num_layers: int, dropout_rate: float = 0.0, rngs: nnx.Rngs):
    self.vocabulary_size, self.hidden_features = vocabulary_size, hidden_features
    self.dropout_rate = dropout_rate
    self.embedding = (nnx.Embed(vocabulary_size, embedding_features, rngs=rngs)
                      if embedding_features else None)
    in_features = embedding_features or vocabulary_size
    self.layers = nnx.List([LSTM(in_features if index == 0 else hidden_features,
                                 hidden_features, rngs=rngs) for index in range(num_layers)])
    self.head = nnx.Linear(hidden_features, vocabulary_size, rngs=rngs)

  def initial_state(self, batch_size: int) -> list[LSTMState]:
    return [zero_state(batch_size, self.hidden_features) for _ in self.layers]

  def project_first(self, ids: jax.Array) -> jax.Array:  # [...] -> [..., 4H]
    first = self.layers[0]
    if self.embedding is None:
      return first.project_one_hot(ids)
    return first.project(self.embedding(ids))

  def __call__(self, ids: jax.Array, state: list[LSTMState] | None = None,
               dropout_rng: jax.Array | None = None) -> tuple[jax.Array, list[LSTMState]]:
    """(logits [B, T, V], last states) of ids [B, T] from `state` (zeros when None)."""
    state = self.initial_state(ids.shape[0]) if state is None else state
    rngs = ([None] * (len(self.layers) + 1) if dropout_rng is None
            else list(jax.random.split(dropout_rng, len(self.layers) + 1)))
    projected = self.project_first(ids)  # [B, T, 4H]
    last_states = []
    for index, (layer, layer_state) in enumerate(zip(self.layers, state)):
      if index:
        projected = layer.project(dropout(hiddens, self.dropout_rate, rngs[index]))
      hiddens, layer_state = layer(projected, layer_state)  # [B, T, H]
      last_states.append(layer_state)
    logits = self.head(dropout(hiddens, self.dropout_rate, rngs[-1]))  # [B, T, V]
    return logits, last_states

  def step(self, ids: jax.Array, state: list[LSTMState]) -> tuple[jax.Array, list[LSTMState]]:
    """One character per sequence: ids [B] -> (logits [B, V], next states); no dropout."""
    projected = self.project_first(ids)  # [B, 4H]
    next_states = []
    for index, (layer, layer_state) in enumerate(zip(self.layers, state)):
      if index:
        projected = layer.project(hidden)
      layer_state = layer.step(projected, layer_state)
      hidden = layer_state.hidden  # [B, H]
      next_states.append(layer_state)
    return self.head(hidden), next_states

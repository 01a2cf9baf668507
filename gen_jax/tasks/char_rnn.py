"""Character-level language models: next-character softmax, bits/char, text samples.

A batch holds windows 'tokens' [B, T+1] and 'weights' [B, T+1] (data/text.py);
the model reads tokens[:, :T] and predicts tokens[:, 1:], scored where
weights[:, 1:] is 1. Eval sums run over scored characters: the trainer's
`num_examples` denominator is their count, so `bits_per_char` is per held-out
character. Samples continue config.sample.prime with temperature sampling and
are written as samples/step_<N>.txt.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data import text
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.char_rnn import CharRNN
from gen_jax.objectives import likelihoods
from gen_jax.tasks.common import (GRAD_ACCUM, Task, eval_params, make_init, make_optimizer,
                                  module_functions, stateless_train_step)


def next_token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """-log softmax(logits[b, t])[targets[b, t]] in nats: logits [B, T, V], targets [B, T] -> [B, T]."""
  batch, steps, vocabulary_size = logits.shape
  return likelihoods.categorical_nll(logits.reshape(-1, vocabulary_size),
                                     targets.reshape(-1)).reshape(batch, steps)


def window_nll(params, tokens, dropout_rng, *, apply_fn) -> jax.Array:
  """Nats [B, T] of tokens[:, 1:] given tokens[:, :-1] from a zero state (truncated BPTT)."""
  logits, _ = apply_fn(params, tokens[:, :-1], None, dropout_rng)  # [B, T, V]
  return next_token_nll(logits, tokens[:, 1:])


def char_rnn_loss(params, batch, rng, *, apply_fn):
  """Mean nats per scored character: sum_bt w_bt nll_bt / sum_bt w_bt."""
  nll = window_nll(params, batch["tokens"], rng, apply_fn=apply_fn)  # [B, T]
  weights = batch["weights"][:, 1:]
  loss = jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1.0)
  return loss, {"bits_per_char": loss / math.log(2.0)}


def char_rnn_log_prob(state, batch, rng, *, apply_fn):
  """log p(scored characters of each window) [B] in nats, exact given the window's first
  character and a zero LSTM state: -sum_t w_t nll_t over t >= 1."""
  del rng
  nll = window_nll(eval_params(state), batch["tokens"], None, apply_fn=apply_fn)  # [B, T]
  return -jnp.sum(nll * batch["weights"][:, 1:], axis=1)


def char_rnn_eval_step(state, batch, rng, *, apply_fn):
  """Sums over the scored characters of real rows; num_examples counts those characters."""
  nats = -jnp.sum(char_rnn_log_prob(state, batch, rng, apply_fn=apply_fn) * batch["mask"])
  return {"bits_per_char": nats / math.log(2.0), "nll_nats": nats,
          "num_examples": jnp.sum(batch["weights"][:, 1:] * batch["mask"][:, None])}


def draw_token(rng: jax.Array, logits: jax.Array, temperature: float) -> jax.Array:
  """x ~ softmax(logits / temperature) over the last axis; temperature 0 is its limit, argmax."""
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  return jax.random.categorical(rng, logits / temperature).astype(jnp.int32)


def sample_text(state, rng, num: int, *, apply_fn, prime: np.ndarray, length: int,
                temperature: float) -> jax.Array:
  """[num, len(prime) + length] token ids: the prime, then `length` drawn characters.

  The prime (all but its last character) sets the LSTM state; each step feeds
  the last character and draws the next with key fold_in(rng, t).
  """
  params = eval_params(state)
  prime = jnp.broadcast_to(jnp.asarray(prime, jnp.int32), (num, len(prime)))  # [N, P]
  _, states = apply_fn(params, prime[:, :-1])

  def step(carry, t):
    token, states = carry
    logits, states = apply_fn(params, token, states, method="step")  # [N, V]
    token = draw_token(jax.random.fold_in(rng, t), logits, temperature)
    return (token, states), token

  _, drawn = jax.lax.scan(step, (prime[:, -1], states), jnp.arange(length))  # [length, N]
  return jnp.concatenate([prime, drawn.T], axis=1)


def write_text_samples(writer, step: int, samples: np.ndarray, *, vocabulary: str) -> str | None:
  """samples/step_<N>.txt: each sample decoded, under a '--- sample i ---' line."""
  body = "\n\n".join(f"--- sample {index} ---\n{text.decode(ids, vocabulary)}"
                     for index, ids in enumerate(np.asarray(samples)))
  return writer.write_text(step, "step", body + "\n")


def check_sample_config(sample_config, vocabulary: str) -> np.ndarray:
  """The prime as token ids, after checking the sampling settings."""
  if not sample_config.prime:
    raise UserError("sample.prime must hold at least one character")
  if sample_config.temperature < 0 or sample_config.length < 1:
    raise UserError(f"sample.temperature={sample_config.temperature} must be >= 0 and "
                    f"sample.length={sample_config.length} >= 1")
  try:
    return text.encode(sample_config.prime, vocabulary)
  except UserError as error:
    raise UserError(f"sample.prime: {error}") from None


def create_char_rnn_task(config, spec: DatasetSpec) -> Task:
  model_config, vocabulary = config.model, spec.vocabulary
  if model_config.num_layers < 1 or model_config.hidden_features < 1:
    raise UserError("model.num_layers and model.hidden_features must be >= 1")
  if not 0 <= model_config.dropout_rate < 1:
    raise UserError(f"model.dropout_rate={model_config.dropout_rate} must be in [0, 1)")
  prime = check_sample_config(config.sample, vocabulary)
  create_params, apply_model = module_functions(lambda rngs: CharRNN(
      vocabulary_size=len(vocabulary), embedding_features=model_config.embedding_features,
      hidden_features=model_config.hidden_features, num_layers=model_config.num_layers,
      dropout_rate=model_config.dropout_rate, rngs=rngs), uniform_heads=("head",))
  tx, schedule = make_optimizer(config.train)
  return Task(
      supports=frozenset({GRAD_ACCUM}),  # float32 only: its LSTM state is carried in float32
      init=make_init(create_params, tx, config.train.ema_decay > 0),
      train_step=stateless_train_step(functools.partial(char_rnn_loss, apply_fn=apply_model), tx,
                                      schedule, config.train),
      eval_step=functools.partial(char_rnn_eval_step, apply_fn=apply_model),
      log_prob=functools.partial(char_rnn_log_prob, apply_fn=apply_model), log_prob_kind="exact",
      sample=functools.partial(sample_text, apply_fn=apply_model, prime=prime,
                               length=config.sample.length,
                               temperature=float(config.sample.temperature)),
      write_samples=functools.partial(write_text_samples, vocabulary=vocabulary))

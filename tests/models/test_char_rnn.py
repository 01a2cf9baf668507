"""char-RNN: causal, scan == step loop, state carries over, memorises a tiny corpus, sampling."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import load_config
from gen_jax import train
from gen_jax.models.char_rnn import CharRNN
from gen_jax.tasks import char_rnn as char_rnn_task
from gen_jax.tasks.common import TrainState, module_functions


@pytest.fixture(scope="module", params=[0, 6], ids=["one_hot", "embedding"])
def model(request):
  """(graphdef, params) of a 2-layer model, built in one compiled call."""
  create_params, _ = module_functions(lambda rngs: CharRNN(
      vocabulary_size=9, embedding_features=request.param, hidden_features=8, num_layers=2,
      rngs=rngs))
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: CharRNN(
      vocabulary_size=9, embedding_features=request.param, hidden_features=8, num_layers=2,
      rngs=nnx.Rngs(0))))
  return graphdef, jax.jit(create_params)(jax.random.key(0))


@jax.jit
def forward_and_loop(model, ids):
  graph, params = model
  model = nnx.merge(graph, params)
  logits, last = model(ids)
  state, looped = model.initial_state(ids.shape[0]), []
  for t in range(ids.shape[1]):
    step_logits, state = model.step(ids[:, t], state)
    looped.append(step_logits)
  # Split in two: the second half from the first half's last state.
  middle = ids.shape[1] // 2
  first, carried = model(ids[:, :middle])
  second, _ = model(ids[:, middle:], carried)
  return logits, last, jnp.stack(looped, 1), state, jnp.concatenate([first, second], 1)


def test_scan_equals_step_loop_and_state_carries_over(model):
  ids = jax.random.randint(jax.random.key(1), (3, 10), 0, 9)
  logits, last, looped, looped_state, split = forward_and_loop(model, ids)
  assert logits.shape == (3, 10, 9)
  np.testing.assert_allclose(logits, looped, atol=1e-5)
  np.testing.assert_allclose(logits, split, atol=1e-5)
  for layer_state, looped_layer in zip(last, looped_state):
    np.testing.assert_allclose(layer_state.hidden, looped_layer.hidden, atol=1e-5)
    np.testing.assert_allclose(layer_state.cell, looped_layer.cell, atol=1e-5)


def test_causal(model):
  """Logits at t depend on characters <= t only, and do depend on character t."""
  ids = jax.random.randint(jax.random.key(2), (1, 12), 0, 9)
  changed = ids.at[:, 6].set((ids[:, 6] + 1) % 9)
  graph, params = model
  base, other = jax.jit(lambda p, x: nnx.merge(graph, p)(x)[0])(
      params, jnp.concatenate([ids, changed]))
  np.testing.assert_array_equal(base[:6], other[:6])
  assert np.all(np.abs(base[6:] - other[6:]).max(-1) > 0)


@functools.partial(jax.jit, static_argnums=(2, 3))
def draws(rng, logits, temperature, num):
  return jax.vmap(lambda key: char_rnn_task.draw_token(key, logits, temperature))(
      jax.random.split(rng, num))


def test_draw_token_temperature():
  logits = jnp.array([[0.3, 1.5, -0.2, 1.4], [2.0, -1.0, 0.0, 1.9]])
  argmax = np.asarray(jnp.argmax(logits, -1))
  np.testing.assert_array_equal(char_rnn_task.draw_token(jax.random.key(0), logits, 0.0), argmax)
  near_zero = draws(jax.random.key(1), logits, 1e-3, 200)
  np.testing.assert_array_equal(near_zero, np.broadcast_to(argmax, near_zero.shape))  # T -> 0
  # At temperature T, frequencies follow softmax(logits / T).
  for temperature in (1.0, 2.5):
    drawn = np.asarray(draws(jax.random.key(2), logits, temperature, 20000))
    frequencies = np.stack([np.bincount(drawn[:, row], minlength=4) / 20000 for row in (0, 1)])
    np.testing.assert_allclose(frequencies, jax.nn.softmax(logits / temperature), atol=0.015)


def test_greedy_sampling_equals_rerunning_the_whole_prefix():
  """sample_text (state carried step to step) == argmax of the full model rerun on the prefix."""
  create_params, apply_fn = module_functions(lambda rngs: CharRNN(
      vocabulary_size=7, embedding_features=0, hidden_features=16, num_layers=2, rngs=rngs))
  params = create_params(jax.random.key(4))
  state = train_state(params)
  prime = np.array([3, 1, 4], np.int32)
  sampled = jax.jit(lambda s, r: char_rnn_task.sample_text(
      s, r, 2, apply_fn=apply_fn, prime=prime, length=8, temperature=0.0))(
          state, jax.random.key(0))
  assert sampled.shape == (2, 11)
  np.testing.assert_array_equal(sampled[:, :3], np.broadcast_to(prime, (2, 3)))
  # Rerun on the whole prefix, zero-padded to 11 (causal: the padding cannot matter).
  rerun = jax.jit(lambda p, ids, t: apply_fn(p, ids)[0][0, t].argmax())
  expected = list(prime)
  for _ in range(8):
    padded = jnp.asarray(expected + [0] * (11 - len(expected)))[None]
    expected.append(int(rerun(params, padded, len(expected) - 1)))
  np.testing.assert_array_equal(sampled[0], expected)


def train_state(params):
  return TrainState(jnp.zeros((), jnp.int32), params, None)


def test_memorises_a_tiny_corpus(tmp_path):
  """A repeated sentence is deterministic given a few characters of context: the model
  learns it to near 0 bits/char on held-out text, and greedy sampling continues it."""
  sentence = "the quick brown fox jumps over the lazy dog. "
  path = tmp_path / "corpus.txt"
  path.write_text(sentence * 12, encoding="utf-8")
  config = load_config("char_rnn.py", "smoke")
  with config.unlocked():
    config.data.text_file, config.data.eval_fraction = str(path), 0.2
    config.data.sequence_length, config.data.eval_context = 24, 12
    config.model.hidden_features, config.model.dropout_rate = 64, 0.0
    config.train.num_steps, config.train.learning_rate = 250, 1e-2
    config.train.warmup_steps, config.train.checkpoint_every = 10, 0
    config.train.eval_batch_size, config.train.progress_bar = 16, False
    config.train.log_every = 250
    config.sample.prime, config.sample.temperature, config.sample.length = "the lazy", 0.0, 30
    config.train.num_samples = 2
  results = train.run(config, str(tmp_path / "run"))
  assert results["eval"]["bits_per_char"] < 0.05
  np.testing.assert_allclose(results["eval"]["nll_nats"],
                             results["eval"]["bits_per_char"] * math.log(2), rtol=1e-5)
  with open(tmp_path / "run" / "samples" / "step_250.txt", encoding="utf-8") as f:
    samples = f.read()
  continuation = (sentence * 2)[sentence.index("the lazy"):][:38]
  assert samples.count(continuation) == 2, samples

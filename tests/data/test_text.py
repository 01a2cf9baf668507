"""Text corpora: vocabulary, exact held-out split, windows, tiny_shakespeare via TFDS, errors."""

import time

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gen_jax.data import load_splits, text
from gen_jax.errors import UserError


def text_config(path="", **overrides):
  config = ml_collections.ConfigDict(dict(
      name="text_file", text_file=str(path), data_dir="", train_split="train", eval_split="test",
      eval_fraction=0.25, sequence_length=6, window_stride=1, eval_context=3,
      max_train_examples=0, max_eval_examples=0))
  config.update(overrides)
  return config


def test_encode_decode_round_trip_and_unknown_characters():
  corpus = "Größe – naïve café\n"
  vocabulary = text.corpus_vocabulary(corpus)
  assert list(vocabulary) == sorted(set(corpus))
  ids = text.encode(corpus, vocabulary)
  assert ids.dtype == np.int32 and text.decode(ids, vocabulary) == corpus
  with pytest.raises(UserError, match=r"characters 'xz' are not in the corpus vocabulary"):
    text.encode("zax", vocabulary)


def test_text_file_splits_hold_out_the_end_and_score_each_character_once(tmp_path):
  corpus = "".join(chr(ord("a") + (i * 7) % 23) for i in range(200))
  path = tmp_path / "corpus.txt"
  path.write_text(corpus, encoding="utf-8")
  config = text_config(path)
  spec = text.text_spec(config)
  vocabulary = spec.vocabulary
  assert vocabulary == "".join(sorted(set(corpus))) and spec.num_levels == len(vocabulary)
  train, held_out = load_splits(config)
  boundary = 150  # the last 25% is held out
  ids = text.encode(corpus, vocabulary)
  # Training windows: every window of the first 150 characters, nothing after.
  tokens = train.features["tokens"]
  assert tokens.shape == (boundary - 6, 7)
  np.testing.assert_array_equal(tokens[-1], ids[boundary - 7:boundary])
  np.testing.assert_array_equal(train.features["weights"][:, 0], 0.0)
  np.testing.assert_array_equal(train.features["weights"][:, 1:], 1.0)
  # Held-out windows score characters 150..199, each exactly once, after >= 3 of context.
  scored = [(row, column) for row, column in zip(*np.nonzero(held_out.features["weights"]))]
  assert min(column for _, column in scored) >= config.eval_context
  scored_ids = [held_out.features["tokens"][row, column] for row, column in scored]
  np.testing.assert_array_equal(scored_ids, ids[boundary:])
  assert len(scored) == len(corpus) - boundary


def test_text_file_errors(tmp_path):
  with pytest.raises(UserError, match="is not a file"):
    text.text_spec(text_config(tmp_path / "missing.txt"))
  latin1 = tmp_path / "latin1.txt"
  latin1.write_bytes("caf\xe9 ".encode("latin-1") * 20)
  with pytest.raises(UserError, match="is not UTF-8 text"):
    text.text_spec(text_config(latin1))
  short = tmp_path / "short.txt"
  short.write_text("abcdefgh")
  with pytest.raises(UserError, match="too short"):
    text.text_spec(text_config(short))
  ok = tmp_path / "ok.txt"
  ok.write_text("abcdefgh" * 10)
  with pytest.raises(UserError, match="eval_context=0"):
    text.text_spec(text_config(ok, eval_context=0))


def test_tiny_shakespeare_missing_fails_fast_with_instructions(tmp_path):
  start = time.perf_counter()
  config = text_config(name="tiny_shakespeare", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(UserError, match="tfds build tiny_shakespeare.*data.text_file=PATH"):
    text.text_spec(config)
  assert time.perf_counter() - start < 5  # no download attempt


def test_tiny_shakespeare_reads_the_tfds_splits(tmp_path):
  config = text_config(name="tiny_shakespeare", data_dir=str(tmp_path), sequence_length=3,
                       eval_context=1)
  with tfds.testing.mock_data(num_examples=1):
    train_text = text.read_tfds_text("tiny_shakespeare", "train", str(tmp_path))
    test_text = text.read_tfds_text("tiny_shakespeare", "test", str(tmp_path))
    spec = text.text_spec(config)
    train, held_out = load_splits(config)
  assert spec.vocabulary == text.corpus_vocabulary(train_text, test_text)
  assert train.features["tokens"].shape == (len(train_text) - 3, 4)
  # The test split is its own sequence: all its characters but the first are scored.
  assert held_out.features["weights"].sum() == len(test_text) - 1

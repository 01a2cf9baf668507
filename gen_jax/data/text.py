"""Character-level text corpora: a local UTF-8 file or TFDS `tiny_shakespeare`.

  text_file         any UTF-8 file (config.data.text_file); the held-out part is
                    its last `data.eval_fraction` of characters.
  tiny_shakespeare  TFDS's corpus, read with tfds.data_source(download=False)
                    when prepared as ArrayRecord; train/eval are data.train_split
                    and data.eval_split.

The vocabulary (DatasetSpec.vocabulary, a str) is the sorted set of
the characters of the whole corpus, training and held-out text together, so
every character of the data has a token and there is no <unk>; a character
outside it elsewhere (a sampling prime) is a UserError naming it.

data.validation_fraction holds out evenly spread blocks of the training text
(`validation_blocks`), which no training window overlaps.

Examples are windows of sequence_length + 1 token ids ('tokens', int32) with
per-position 'weights' (1 = a target to score; position 0 never is). Training
takes every `window_stride`-th window of the training text; evaluation scores
each held-out character once, after at least `eval_context` characters of
context in its window (data.windows.scored_windows).
"""

import math
import os

import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data import sources, windows
from gen_jax.errors import UserError

TINY_SHAKESPEARE_HOW_TO_GET = (
    "prepare it once with TensorFlow and network: `tfds build tiny_shakespeare "
    "--file_format=array_record` (then set TFDS_DATA_DIR or --config.data.data_dir), or train "
    "on a local file: --config.data.name=text_file --config.data.text_file=PATH")


def read_text_file(path: str) -> str:
  if not os.path.isfile(path):
    raise UserError(f"data.text_file={path!r} is not a file")
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError as error:
    raise UserError(f"data.text_file={path!r} is not UTF-8 text ({error.reason} at byte "
                    f"{error.start})") from None
  return text


def read_tfds_text(name: str, split: str, data_dir: str) -> str:
  """The 'text' feature of every example of a prepared TFDS split, concatenated."""
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception:  # pylint: disable=broad-except  # not prepared as ArrayRecord
    raise UserError(f"dataset {name!r} split {split!r} is not on disk as ArrayRecord in "
                    f"{data_dir}: {TINY_SHAKESPEARE_HOW_TO_GET}") from None
  texts = (source[index]["text"] for index in range(len(source)))
  return "".join(t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts)


def read_corpus(data_config) -> tuple[str, str, int]:
  """(training text, held-out series, first held-out position in that series).

  For a file, the held-out series is the whole text, so the first held-out
  characters are scored with the end of the training text as their context.
  """
  if data_config.name == "text_file":
    text = read_text_file(data_config.text_file)
    if not 0 < data_config.eval_fraction < 1:
      raise UserError(f"data.eval_fraction={data_config.eval_fraction} must be in (0, 1)")
    boundary = len(text) - int(round(data_config.eval_fraction * len(text)))
    return text[:boundary], text, boundary
  data_dir = data_config.data_dir or sources.default_data_dir()
  train_text = read_tfds_text(data_config.name, data_config.train_split, data_dir)
  return train_text, read_tfds_text(data_config.name, data_config.eval_split, data_dir), 1


def corpus_vocabulary(*texts: str) -> str:
  """The sorted set of characters of the texts, as one string."""
  return "".join(sorted(set().union(*map(set, texts))))


def code_points(text: str) -> np.ndarray:  # [len(text)] uint32
  return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def encode(text: str, vocabulary: str) -> np.ndarray:
  """Characters -> token ids [len(text)] int32 (positions in the sorted vocabulary)."""
  vocabulary_codes = code_points(vocabulary)
  codes = code_points(text)
  ids = np.searchsorted(vocabulary_codes, codes).astype(np.int32)
  unknown = (ids >= len(vocabulary)) | (vocabulary_codes[np.minimum(ids, len(vocabulary) - 1)]
                                        != codes)
  if unknown.any():
    missing = "".join(sorted(set(np.asarray(list(text))[unknown])))
    raise UserError(f"characters {missing!r} are not in the corpus vocabulary")
  return ids


def decode(ids: np.ndarray, vocabulary: str) -> str:
  return "".join(vocabulary[i] for i in np.asarray(ids).tolist())


def check_window_settings(data_config, train_length: int, held_out_length: int) -> None:
  length = data_config.sequence_length
  if length < 1 or data_config.window_stride < 1:
    raise UserError("data.sequence_length and data.window_stride must be >= 1")
  if not 1 <= data_config.eval_context <= length:
    raise UserError(f"data.eval_context={data_config.eval_context} must be in "
                    f"[1, data.sequence_length={length}]")
  if train_length < length + 1 or held_out_length < 1:
    raise UserError(f"the corpus is too short: {train_length} training characters for windows "
                    f"of {length + 1}, {held_out_length} held-out characters")


def validation_blocks(num_chars: int, data_config) -> list[tuple[int, int]]:
  """[start, end) of the training text's validation blocks: the text cut into blocks of
  8 windows (8 (sequence_length + 1) characters), of which a data.validation_fraction,
  spread evenly, is held out. Interleaved, not the text's end: one document changes
  along its length (GPL-3's end is its upper-case disclaimers), and a contiguous
  validation part would hold out all of one kind of text."""
  fraction = sources.validation_fraction(data_config)
  if not fraction:
    return []
  block = 8 * (data_config.sequence_length + 1)
  count = num_chars // block
  chosen = [i for i in range(count) if math.floor((i + 1) * fraction) > math.floor(i * fraction)]
  if not chosen or len(chosen) == count:
    raise UserError(f"data.validation_fraction={fraction} of {count} blocks of {block} "
                    "training characters leaves no validation or no training text; change it")
  return [(i * block, (i + 1) * block) for i in chosen]


def training_segments(num_chars: int, blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
  """[start, end) of the training text between the validation blocks."""
  edges = [0, *[edge for block in blocks for edge in block], num_chars]
  return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]


def text_spec(data_config) -> sources.DatasetSpec:
  train_text, held_out, start = read_corpus(data_config)
  check_window_settings(data_config, len(train_text), len(held_out) - start)
  vocabulary = corpus_vocabulary(train_text, held_out)
  window = (data_config.sequence_length + 1,)
  return sources.DatasetSpec(
      image_shape=None, num_levels=len(vocabulary), num_classes=0,
      how_to_get=TINY_SHAKESPEARE_HOW_TO_GET,
      features={"tokens": (window, "int32"), "weights": (window, "float32")},
      load=load_text_splits, holds_out_validation=True, vocabulary=vocabulary)


def load_text_splits(data_config, held_out: str = "test") -> tuple[dict, dict]:
  """({'tokens', 'weights'} of training windows, the same of held-out windows); the
  vocabulary is the whole corpus's (text_spec's), whichever part is held out. With
  data.validation_fraction, training windows lie inside the training segments only
  (`validation_blocks`), and 'validation' scores each block's characters once, with
  the text before the block as context."""
  train_text, series, start = read_corpus(data_config)
  vocabulary = corpus_vocabulary(train_text, series)  # text_spec's
  blocks = validation_blocks(len(train_text), data_config)
  segments = training_segments(len(train_text), blocks)
  length = data_config.sequence_length + 1
  check_window_settings(data_config, max(b - a for a, b in segments), len(series) - start)
  ids = encode(train_text, vocabulary)
  parts = [windows.sliding_windows(ids[a:b], length, data_config.window_stride)
           for a, b in segments if b - a >= length]
  train_tokens = parts[0] if len(parts) == 1 else np.concatenate(parts)  # one: a view
  target_weights = np.ones(length, np.float32)
  target_weights[0] = 0.0  # the first character of a window has no prediction
  train = {"tokens": train_tokens,
           "weights": np.broadcast_to(target_weights, train_tokens.shape)}
  if held_out == "validation":
    scored = [windows.scored_windows(ids[:b], length, a, data_config.eval_context)
              for a, b in blocks]
    eval_tokens, eval_weights = (np.concatenate(parts) for parts in zip(*scored))
  else:
    eval_tokens, eval_weights = windows.scored_windows(
        encode(series, vocabulary), length, start, data_config.eval_context)
  return train, {"tokens": eval_tokens, "weights": eval_weights}

sources.register("text_file", text_spec)
sources.register("tiny_shakespeare", text_spec)

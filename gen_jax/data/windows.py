"""Fixed-length windows of one long sequence (text, a time series) as examples.

Training takes every `stride`-th window of the training segment. Evaluation
must count each held-out position exactly once, yet give each one some
context: `scored_windows` lays windows over the series so that every position
from `start` on is scored in exactly one window, with at least `context`
earlier positions of that window in front of it (when the series has them).
Both return zero-copy views or small arrays, so a long corpus costs no
[num_windows, length] copy.
"""

import numpy as np


def sliding_windows(values: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
  """values[s : s + length] for s = 0, stride, 2 * stride, ...: [N, length], a read-only view."""
  if len(values) < length:
    raise ValueError(f"a sequence of {len(values)} values has no window of length {length}")
  return np.lib.stride_tricks.sliding_window_view(values, length)[::stride]


def scored_windows(values: np.ndarray, length: int, start: int,
                   context: int) -> tuple[np.ndarray, np.ndarray]:
  """Windows covering positions start.. of `values`, each position scored once.

  Window n starts at s_n and scores the positions it is the first to reach:
  s_n = clip(next - context, 0, len - length), where `next` is the first
  position not yet scored, so a scored position has >= context earlier
  positions in its window (all of them when fewer than `context` exist).

  Args:
    values: [L] the whole sequence (the part before `start` is context only).
    length: the window length.
    start: the first position to score.
    context: the context wanted before each scored position; < length.

  Returns:
    windows [N, length] and weights [N, length] float32 (1 = score this position).
  """
  if not 0 <= context < length:
    raise ValueError(f"context={context} must be in [0, window length {length})")
  if len(values) < length:
    raise ValueError(f"a sequence of {len(values)} values has no window of length {length}")
  starts, weights = [], []
  position = start
  while position < len(values):
    window_start = min(max(position - context, 0), len(values) - length)
    weight = np.zeros(length, np.float32)
    weight[position - window_start:] = 1.0
    starts.append(window_start)
    weights.append(weight)
    position = window_start + length
  index = np.asarray(starts, np.int64)[:, None] + np.arange(length)
  return values[index], np.stack(weights) if weights else np.zeros((0, length), np.float32)

"""Windows over one long sequence: exact held-out coverage with context, zero-copy training views."""

import numpy as np
import pytest

from gen_jax.data import windows


@pytest.mark.parametrize("length,window,start,context", [
    (50, 8, 20, 3), (50, 8, 20, 7), (50, 8, 0, 4), (50, 8, 2, 5), (9, 8, 5, 1), (37, 5, 36, 4)])
def test_scored_windows_score_every_position_once_with_context(length, window, start, context):
  values = np.arange(length) * 10  # values identify their positions
  chunks, weights = windows.scored_windows(values, window, start, context)
  assert chunks.shape == weights.shape and chunks.shape[1] == window
  counts = np.zeros(length, int)
  for chunk, weight in zip(chunks, weights):
    first = chunk[0] // 10
    np.testing.assert_array_equal(chunk, values[first:first + window])  # a real slice
    scored = np.flatnonzero(weight)
    assert scored.size and np.all(np.diff(scored) == 1)  # one contiguous run per window
    counts[first + scored] += 1
    # each scored position sees `context` earlier values of its window (or all there are)
    assert scored[0] >= min(context, first + scored[0])
  np.testing.assert_array_equal(counts, (np.arange(length) >= start).astype(int))


def test_scored_windows_reject_bad_settings():
  with pytest.raises(ValueError, match="context"):
    windows.scored_windows(np.arange(20), 5, 10, 5)
  with pytest.raises(ValueError, match="no window"):
    windows.scored_windows(np.arange(4), 5, 1, 2)


def test_sliding_windows_are_strided_views():
  values = np.arange(30, dtype=np.int32)
  view = windows.sliding_windows(values, 7, stride=3)
  assert np.shares_memory(view, values)  # no [N, length] copy of a long corpus
  np.testing.assert_array_equal(view[:, 0], np.arange(0, 24, 3))
  np.testing.assert_array_equal(view[4], values[12:19])

"""Checkpointer: round trip, keep-N, and never destroying what it cannot read."""

import glob
import os

import chex
import jax
import jax.numpy as jnp
import pytest

from gen_jax.checkpointing import Checkpointer
from gen_jax.errors import UserError


def tree(value):
  return {"w": jnp.full((3, 2), value, jnp.float32), "step": jnp.asarray(int(value), jnp.int32)}


def abstract():
  return jax.eval_shape(lambda: tree(0.0))


def break_arrays(directory):
  for path in glob.glob(os.path.join(directory, "state", "**", "*"), recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"not a checkpoint")


def test_round_trip_and_keep_n(tmp_path):
  checkpointer = Checkpointer(str(tmp_path / "ckpt"), max_to_keep=2)
  assert checkpointer.restore_latest(abstract()) is None  # empty: init from scratch
  for step in (1, 2, 3):
    checkpointer.save(step, tree(float(step)), {"step": step, "data_position": step})
  checkpointer.wait()
  assert sorted(os.listdir(tmp_path / "ckpt")) == ["2", "3"]
  restored, metadata = checkpointer.restore_latest(abstract())
  chex.assert_trees_all_equal(restored, tree(3.0))
  assert metadata == {"step": 3, "data_position": 3}
  checkpointer.close()


def test_all_unreadable_is_an_error_and_moves_nothing(tmp_path):
  checkpointer = Checkpointer(str(tmp_path / "ckpt"))
  for step in (1, 2):
    checkpointer.save(step, tree(float(step)), {"step": step})
  checkpointer.close()
  for step in ("1", "2"):
    break_arrays(str(tmp_path / "ckpt" / step))
  with pytest.raises(UserError, match=r"no readable checkpoint .*steps \[2, 1\]"):
    Checkpointer(str(tmp_path / "ckpt")).restore_latest(abstract())
  assert sorted(os.listdir(tmp_path / "ckpt")) == ["1", "2"]
  assert not os.path.exists(str(tmp_path / "ckpt_corrupt"))

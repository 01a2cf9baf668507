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


def test_garbled_values_are_caught_by_the_saved_digests(tmp_path):
  """Bytes overwritten inside an array file still decode (Orbax checks only the index);
  the sha256 per leaf in the metadata catches them."""
  checkpointer = Checkpointer(str(tmp_path / "ckpt"))
  values = {"w": jax.random.normal(jax.random.key(0), (4096,)), "step": jnp.asarray(2)}
  checkpointer.save(1, tree(1.0) | {"w": values["w"] + 1}, {"step": 1})
  checkpointer.save(2, values, {"step": 2})
  checkpointer.close()
  files = [p for p in glob.glob(str(tmp_path / "ckpt" / "2" / "state" / "**" / "*"),
                                recursive=True) if os.path.isfile(p)]
  largest = max(files, key=os.path.getsize)
  data = bytearray(open(largest, "rb").read())
  data[len(data) // 2:len(data) // 2 + 8] = b"\xff" * 8
  open(largest, "wb").write(bytes(data))
  abstract_values = jax.eval_shape(lambda: values)
  restored, metadata = Checkpointer(str(tmp_path / "ckpt")).restore_latest(abstract_values)
  assert metadata["step"] == 1
  chex.assert_trees_all_equal(restored["w"], values["w"] + 1)
  assert os.listdir(tmp_path / "ckpt_corrupt") == ["2"]


def test_a_full_disk_is_found_before_orbax_writes(tmp_path, monkeypatch):
  import collections
  import shutil
  from gen_jax import checkpointing
  checkpointer = Checkpointer(str(tmp_path / "ckpt"))
  checkpointer.save(1, tree(1.0), {"step": 1})
  usage = collections.namedtuple("usage", "total used free")
  monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100, 90, 10))  # 28 B needed
  with pytest.raises(checkpointing.CheckpointWriteError,
                     match=r"^checkpoint at step 2 could not be written: no space left on device "
                           r"\(.*ckpt: 0.0 MiB free, .*\); step 1 is the last saved"):
    checkpointer.save(2, tree(2.0), {"step": 2})
  checkpointer.close()
  assert sorted(os.listdir(tmp_path / "ckpt")) == ["1"]  # nothing half-written

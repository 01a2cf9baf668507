"""Checkpointer: round trip, keep-N, and never destroying what it cannot read."""

import glob
import os
import re

import chex
import jax
import jax.numpy as jnp
import pytest

from conftest import smoke_config
from gen_jax import train
from gen_jax.checkpointing import CheckpointLayoutError, Checkpointer
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


def test_a_tree_of_another_layout_is_a_layout_error_not_corrupt(tmp_path):
  # The tree saved differs from the one asked for (an older state layout): a one-line
  # UserError saying so, and nothing moved aside as if it were corrupt.
  checkpointer = Checkpointer(str(tmp_path / "ckpt"))
  checkpointer.save(1, tree(1.0), {"step": 1})
  checkpointer.close()
  other = jax.eval_shape(lambda: {"params": {"w": jnp.zeros((3, 2))}, "step": jnp.zeros((), int)})
  with pytest.raises(CheckpointLayoutError, match=r"step 1 in .* predates the one-state change") \
      as error:
    Checkpointer(str(tmp_path / "ckpt")).restore_latest(other)
  assert "\n" not in str(error.value) and str(tmp_path) in str(error.value)
  assert os.listdir(tmp_path / "ckpt") == ["1"] and not os.path.exists(tmp_path / "ckpt_corrupt")


# The trees GANState and VQState saved before every family's state became one TrainState.
OLD_LAYOUTS = {
    "dcgan.py": {"step": jnp.zeros((), jnp.int32), "generator": {"w": jnp.zeros((2,))},
                 "discriminator": {"w": jnp.zeros((2,))}, "generator_opt_state": {},
                 "discriminator_opt_state": {}, "generator_ema": {"w": jnp.zeros((2,))}},
    "vqvae.py": {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.zeros((2,))},
                 "opt_state": {}, "cluster_size": {"latent": jnp.zeros((4,))},
                 "cluster_sum": {"latent": jnp.zeros((4, 2))},
                 "reconstruction_variance": jnp.zeros((1,))},
}


@pytest.mark.parametrize("filename", sorted(OLD_LAYOUTS))
def test_a_run_with_checkpoints_of_the_old_state_layout_says_so(tmp_path, tiny_idx, filename):
  config = smoke_config(filename, "smoke", tiny_idx)
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  train.write_config(config, workdir)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
  checkpointer.save(4, {"state": OLD_LAYOUTS[filename], "rng": jax.random.PRNGKey(0)},
                    {"step": 4})
  checkpointer.close()
  with pytest.raises(UserError, match=re.escape(workdir) + " holds another state layout.*"
                                      "start a new --workdir"):
    train.run(config, workdir, mode="eval")

"""Runs that meet faults: bad workdirs, full disks, two trainers, changed configs,
garbled checkpoints, kills between a checkpoint and what follows it (issue 12, 8-16)."""

import errno
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from conftest import REPO, read_only, tiny_pixelcnn_config
from gen_jax import checkpointing, parallel, runs, train
from gen_jax.errors import NonFiniteError, UserError


def records(workdir, split=None):
  return runs.read_metrics(workdir, split)


@pytest.fixture(scope="module")
def trained(tiny_idx, tmp_path_factory):
  """(config, workdir) of a finished 6-step run (log every step, checkpoints at 3 and 6)."""
  config = tiny_pixelcnn_config(tiny_idx, num_steps=6, log_every=1, checkpoint_every=3,
                                eval_every=0, sample_every=0, num_samples=2)
  with config.unlocked():
    config.train.lr_schedule = "constant"  # so that a shorter run is a prefix of it
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  train.run(config, workdir)
  return config, workdir


def copy_of(trained, tmp_path):
  config, workdir = trained
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  return config.copy_and_resolve_references(), copy


# 8. A workdir that cannot hold a run; a read-only run can still be evaluated.

def test_a_workdir_that_is_a_file_or_read_only_is_a_one_line_error(trained, tmp_path):
  config, _ = trained
  (tmp_path / "file").write_text("not a directory")
  with pytest.raises(UserError, match=r"--workdir=.*file is a file, not a directory"):
    train.run(config, str(tmp_path / "file"))
  config, workdir = copy_of(trained, tmp_path)
  config_json = open(os.path.join(workdir, "config.json")).read()
  with read_only(workdir):
    with pytest.raises(UserError, match=r"--workdir=.* cannot be written \(Read-only file"):
      train.run(config, workdir)
    with pytest.raises(UserError, match=r"is read-only: pass --output_dir=DIR for the eval"):
      train.run(config, workdir, mode="eval")
    results = train.run(config, workdir, mode="eval", output_dir=str(tmp_path / "out"))
    train.run(config, workdir, mode="sample", output_dir=str(tmp_path / "out"))
  assert open(os.path.join(workdir, "config.json")).read() == config_json
  (final,) = [r for r in records(workdir, "eval") if r["step"] == 6]
  np.testing.assert_allclose(results["eval"]["bits_per_dim"], final["bits_per_dim"], rtol=1e-6)
  assert [r["step"] for r in records(str(tmp_path / "out"))] == [6]
  assert os.path.exists(tmp_path / "out" / "samples" / "sample_step_6_1.png")


def test_eval_does_not_rewrite_config_json(trained, tmp_path):
  config, workdir = copy_of(trained, tmp_path)
  path = os.path.join(workdir, "config.json")
  os.utime(path, (0, 0))
  with config.unlocked():
    config.train.eval_batch_size = 8  # an eval setting: allowed, and not stored
  train.run(config, workdir, mode="eval")
  assert os.stat(path).st_mtime == 0 and json.load(open(path))["train"]["eval_batch_size"] == 16


# 9. A checkpoint that cannot be written: one line, the last saved step named.

def test_a_failed_checkpoint_write_names_the_step_and_the_last_saved(trained, tmp_path,
                                                                     monkeypatch):
  from orbax.checkpoint._src.serialization import serialization
  config, workdir = copy_of(trained, tmp_path)
  with config.unlocked():
    config.train.num_steps = 12
  real_write = serialization.async_serialize_from_host

  async def full_disk_after_step_9(*args, **kwargs):
    if os.path.isdir(os.path.join(workdir, "checkpoints", "9")):  # saving step 12
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/full/disk")
    return await real_write(*args, **kwargs)

  monkeypatch.setattr(serialization, "async_serialize_from_host", full_disk_after_step_9)
  with pytest.raises(checkpointing.CheckpointWriteError) as error:
    train.run(config, workdir)
  message = str(error.value)
  assert message.startswith("checkpoint at step 12 could not be written: no space left on "
                            "device (/full/disk); step 9 is the last saved"), message
  assert "\n" not in message
  monkeypatch.undo()
  assert max(r["step"] for r in records(workdir, "train")) == 12  # the metrics are kept
  with config.unlocked():
    config.train.num_steps = 9
  assert train.restore_run(config, workdir)[1] == 9  # the tmp directory of 12 is ignored


# 11. One trainer per workdir.

def test_a_second_trainer_is_refused_and_a_dead_ones_lock_is_not_in_the_way(trained, tmp_path):
  from gen_jax import workdir as workdir_lib
  config, workdir = copy_of(trained, tmp_path)
  holder = subprocess.Popen(  # another process holds the lock, as a running trainer does
      [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
       "from gen_jax import workdir; workdir.WorkdirLock(sys.argv[2]).acquire();"
       "print('locked', flush=True); time.sleep(600)", REPO, workdir],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    before = os.listdir(os.path.join(workdir, "checkpoints"))
    with pytest.raises(UserError, match=rf"another trainer is writing this workdir: process "
                                        rf"{holder.pid} on .* holds .*train.lock"):
      train.run(config, workdir)
    assert os.listdir(os.path.join(workdir, "checkpoints")) == before
    with pytest.raises(UserError, match=r"a trainer \(process .*\) is writing .*--output_dir"):
      train.run(config, workdir, mode="eval")  # its eval record would interleave
    train.run(config, workdir, mode="sample")  # new files only: not blocked
  finally:
    holder.kill()  # like kill -9: the kernel drops its flock
    holder.wait()
  assert os.path.exists(os.path.join(workdir, workdir_lib.LOCK_NAME))  # left behind ...
  train.run(config, workdir, mode="eval")  # ... but stale
  with config.unlocked():
    config.train.num_steps = 7
  train.run(config, workdir)
  assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_NAME))  # released


def test_a_lock_without_flock_is_stale_when_its_pid_is_gone(tmp_path, monkeypatch):
  from gen_jax import workdir as workdir_lib
  def no_flock(fd, operation):
    raise OSError(errno.ENOLCK, "no locks available")
  monkeypatch.setattr(fcntl, "flock", no_flock)
  with workdir_lib.WorkdirLock(str(tmp_path)):
    with pytest.raises(UserError, match=rf"process {os.getpid()} on .*delete that file"):
      workdir_lib.WorkdirLock(str(tmp_path)).acquire()
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True).stdout.strip()
  with open(tmp_path / workdir_lib.LOCK_NAME, "w") as f:
    json.dump({"pid": int(dead), "host": os.uname().nodename}, f)
  with workdir_lib.WorkdirLock(str(tmp_path)):
    assert json.load(open(tmp_path / workdir_lib.LOCK_NAME))["pid"] == os.getpid()


# 12. A resume checks the config against config.json before writing anything.

def test_resume_with_another_model_is_refused_before_anything_is_written(trained, tmp_path,
                                                                          caplog):
  config, workdir = copy_of(trained, tmp_path)
  stored = open(os.path.join(workdir, "config.json")).read()
  changed = config.copy_and_resolve_references()
  with changed.unlocked():
    changed.model.features, changed.data.binarization = 16, "fixed"
    changed.data.validation_fraction = 0.25  # the held-out examples were trained on
    changed.train.num_steps = 9
  with pytest.raises(UserError, match=r"another model or data than this config: "
                                      r"data.binarization \('none' -> 'fixed'\), "
                                      r"data.validation_fraction \(0.0 -> 0.25\), "
                                      r"model.features \(8 -> 16\); use a new --workdir"):
    train.run(changed, workdir)
  assert open(os.path.join(workdir, "config.json")).read() == stored
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  with config.unlocked():
    config.train.batch_size, config.train.num_steps = 8, 7  # was 16
  one_device = parallel.create_mesh(jax.devices()[:1])
  train.run(config, workdir, mesh=one_device)  # accepted, with warnings about the data order
  assert "train.batch_size changed 16 -> 8" in caplog.text and "epoch is skipped" in caplog.text
  assert "step 6 was saved with 2 devices, this run has 1: the data order is unchanged" in (
      caplog.text)
  assert json.load(open(os.path.join(workdir, "config.json")))["train"]["batch_size"] == 8


# 13. Garbled values are caught by the digests saved beside each checkpoint.

def garble_values(step_directory):
  """Overwrites 16 bytes in the middle of the largest array file: still decodable."""
  files = [p for p in glob.glob(os.path.join(step_directory, "state", "**", "*"), recursive=True)
           if os.path.isfile(p)]
  largest = max(files, key=os.path.getsize)
  data = bytearray(open(largest, "rb").read())
  middle = len(data) // 2
  data[middle:middle + 16] = np.random.default_rng(0).integers(0, 256, 16, np.uint8).tobytes()
  open(largest, "wb").write(bytes(data))


def test_garbled_checkpoint_is_moved_aside_and_the_previous_one_used(trained, tmp_path):
  config, workdir = copy_of(trained, tmp_path)
  garble_values(os.path.join(workdir, "checkpoints", "6"))
  train.run(config, workdir)  # falls back to step 3 and trains 4..6 again
  assert os.listdir(os.path.join(workdir, "checkpoints_corrupt")) == ["6"]  # kept
  # ... to the state of the run that was never garbled (a resumed run is the same run).
  chex.assert_trees_all_equal(train.restore_run(config, workdir),
                              train.restore_run(config, trained[1]))


# 14. A resume drops the records logged after the restored step.

def test_resumed_metrics_are_one_trajectory(trained, tmp_path):
  config, workdir = copy_of(trained, tmp_path)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "6"))  # killed after logging 4..6
  train.run(config, workdir)
  steps = [r["step"] for r in records(workdir, "train")]
  assert steps == [1, 2, 3, 4, 5, 6]
  np.testing.assert_allclose([r["loss"] for r in records(workdir, "train")],
                             [r["loss"] for r in records(trained[1], "train")], rtol=1e-5)


# 15. A rerun finishes what the last step owes.

def test_a_run_killed_before_its_final_eval_and_grid_finishes_them(trained, tmp_path):
  config, workdir = copy_of(trained, tmp_path)
  kept = [json.dumps(r) for r in records(workdir) if r["split"] != "eval"]
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.write("\n".join(kept) + "\n")
  os.remove(os.path.join(workdir, "samples", "step_6.png"))
  results = train.run(config, workdir)
  (final,) = records(workdir, "eval")
  assert final["step"] == 6 and final["bits_per_dim"] == results["eval"]["bits_per_dim"]
  (expected,) = records(trained[1], "eval")
  np.testing.assert_allclose(final["bits_per_dim"], expected["bits_per_dim"], rtol=1e-6)
  assert os.path.exists(os.path.join(workdir, "samples", "step_6.png"))
  train.run(config, workdir)  # nothing owed now: nothing repeated
  assert len(records(workdir, "eval")) == 1


# 16. Messages that must not mislead.

def test_a_non_finite_stop_before_any_checkpoint_says_there_is_none(tiny_idx, tmp_path):
  config = tiny_pixelcnn_config(tiny_idx, num_steps=4, log_every=1, checkpoint_every=100,
                                learning_rate=1e30, warmup_steps=0, grad_clip_norm=0.0)
  with pytest.raises(NonFiniteError, match=r"no checkpoint was saved before it") as error:
    train.run(config, str(tmp_path / "run"))
  assert "last good checkpoint" not in str(error.value)


def test_the_classifier_hint_never_points_into_another_runs_directory(tmp_path):
  from gen_jax.tasks import classifier
  (tmp_path / "config.json").write_text(json.dumps({"model": {"name": "dcgan"}}))
  with pytest.raises(UserError, match=r"is a 'dcgan' run") as error:
    classifier.load_feature_network(str(tmp_path), min_accuracy=0.8, image_shape=(28, 28, 1))
  assert f"--workdir {tmp_path}" not in str(error.value) and "new DIR" in str(error.value)

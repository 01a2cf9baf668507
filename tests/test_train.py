"""The trainer: workdir contract, exact resume, sharding invariance, failure handling."""

import glob
import json
import os

import chex
import jax
import numpy as np
import pytest
from PIL import Image

from conftest import tiny_pixelcnn_config
from gen_jax import parallel, tasks, train
from gen_jax.errors import NonFiniteError, UserError
from gen_jax.nn import causal_conv


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_run_writes_the_workdir_contract(tiny_idx, tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_pixelcnn_config(tiny_idx, num_steps=6, log_every=2, checkpoint_every=3)
  results = train.run(config, workdir)
  assert json.load(open(os.path.join(workdir, "config.json")))["model"]["name"] == "pixelcnn"
  records = read_metrics(workdir)
  train_steps = [r["step"] for r in records if r["split"] == "train"]
  assert train_steps == [2, 4, 6]
  (final_eval,) = [r for r in records if r["split"] == "eval"]
  assert final_eval["step"] == 6 and 0 < final_eval["bits_per_dim"] < 9
  np.testing.assert_allclose(final_eval["bits_per_dim"], results["eval"]["bits_per_dim"])
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  grid = Image.open(os.path.join(workdir, "samples", "step_6.png"))
  assert grid.size == (2 * 29 + 1, 2 * 29 + 1)  # 4 samples of 28x28, 1-pixel borders
  assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))

  # --mode eval reproduces the final evaluation from the checkpoint; --mode sample draws.
  again = train.run(config, workdir, mode="eval")
  np.testing.assert_allclose(again["eval"]["bits_per_dim"], final_eval["bits_per_dim"], rtol=1e-6)
  # --mode sample never replaces the grid training wrote at that step (issue 12, item 16).
  trained_grid = open(os.path.join(workdir, "samples", "step_6.png"), "rb").read()
  for _ in range(2):
    train.run(config, workdir, mode="sample")
  assert open(os.path.join(workdir, "samples", "step_6.png"), "rb").read() == trained_grid
  for k in (1, 2):
    grid = Image.open(os.path.join(workdir, "samples", f"sample_step_6_{k}.png"))
    assert grid.size == (2 * 29 + 1, 2 * 29 + 1)


def test_resumed_run_equals_uninterrupted_run(tiny_idx, tmp_path):
  config = tiny_pixelcnn_config(tiny_idx, num_steps=6, checkpoint_every=2, eval_every=0)
  with config.unlocked():
    config.train.ema_decay = 0.9  # the EMA must resume too
    # We stop the first run by lowering num_steps, so the schedule must not depend on it.
    config.train.lr_schedule = "constant"
  train.run(config, str(tmp_path / "straight"))
  with config.unlocked():
    config.train.num_steps = 4
  train.run(config, str(tmp_path / "resumed"))  # stops at 4 ...
  with config.unlocked():
    config.train.num_steps = 6
  train.run(config, str(tmp_path / "resumed"))  # ... resumes from 4 to 6
  straight, step_a = train.restore_run(config, str(tmp_path / "straight"))
  resumed, step_b = train.restore_run(config, str(tmp_path / "resumed"))
  assert step_a == step_b == 6
  # Bitwise on CPU: params, Adam moments, EMA, step.
  chex.assert_trees_all_equal(straight, resumed)


@pytest.mark.parametrize("tap_gradient", [False, True])
def test_sharded_step_equals_single_device_step(tiny_idx, monkeypatch, tap_gradient):
  assert jax.device_count() >= 2, "conftest asks for 2 CPU devices"
  taps = []
  if tap_gradient:  # the per-tap kernel gradient (peer-size layers) on these tiny layers
    monkeypatch.setattr(causal_conv, "TAP_GRADIENT_MIN_FEATURES", 1)
    monkeypatch.setattr(causal_conv, "TAP_GRADIENT_MIN_POSITIONS", 1)
    tap_conv = causal_conv.tap_conv
    monkeypatch.setattr(causal_conv, "tap_conv", lambda *args: taps.append(1) or tap_conv(*args))
  config = tiny_pixelcnn_config(tiny_idx)
  task = tasks.create_task(config, train.dataset_spec(config.data))
  # Levels 0..127 only: on uniform data a model that starts uniform has head gradients that
  # cancel to rounding noise (count = 49 of 12544 per level), which Adam's g / sqrt(v)
  # amplifies to different updates under different reduction orders.
  images = np.random.default_rng(0).integers(0, 128, (16, 28, 28, 1), dtype=np.uint8)
  outputs = []
  for devices in (jax.devices()[:1], jax.devices()[:2]):
    mesh = parallel.create_mesh(devices)
    replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    batch = parallel.to_global({"image": images}, mesh)
    state = jax.jit(task.init, out_shardings=replicated)(jax.random.PRNGKey(0), batch)
    step = jax.jit(task.train_step, in_shardings=(replicated, sharded, replicated),
                   out_shardings=(replicated, replicated))
    for _ in range(2):
      state, metrics = step(state, batch, jax.random.PRNGKey(1))
    assert len(batch["image"].sharding.device_set) == len(devices)
    outputs.append(jax.device_get((state, metrics)))
  assert bool(taps) == tap_gradient
  chex.assert_trees_all_close(outputs[0], outputs[1], rtol=2e-5, atol=1e-6)


def test_train_step_traces_once(tiny_idx):
  config = tiny_pixelcnn_config(tiny_idx)
  task = tasks.create_task(config, train.dataset_spec(config.data))
  mesh = parallel.create_mesh()
  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  step = jax.jit(chex.assert_max_traces(task.train_step, n=1),
                 in_shardings=(replicated, sharded, replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)
  batch = train.example_batch(config, train.dataset_spec(config.data), mesh)
  state = jax.jit(task.init, out_shardings=replicated)(jax.random.PRNGKey(0), batch)
  for _ in range(3):  # a retrace (e.g. a step counter changing type) would raise
    state, _ = step(state, batch, jax.random.PRNGKey(1))


def test_batch_size_that_does_not_divide_devices_keeps_checkpoints(tiny_idx, tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_pixelcnn_config(tiny_idx, num_steps=2, checkpoint_every=2)
  train.run(config, workdir)
  with config.unlocked():
    config.train.batch_size = 3
  with pytest.raises(UserError, match=r"train.batch_size=3 does not divide over 2 devices"):
    train.run(config, workdir)
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["2"]
  with config.unlocked():
    config.train.batch_size = 4
  with pytest.raises(UserError, match=r"unknown mode 'bogus' for pixelcnn; use one of train"):
    train.run(config, workdir, mode="bogus")
  with config.unlocked():
    config.data.name = "fashion_mnits"
  with pytest.raises(UserError, match=r"unknown data.name 'fashion_mnits'"):
    train.run(config, workdir)


def corrupt(directory):
  """Overwrites every file of a checkpoint's array data with garbage."""
  for path in glob.glob(os.path.join(directory, "state", "**", "*"), recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"\x00garbage" * 8)


def test_corrupt_latest_checkpoint_falls_back_and_is_kept(tiny_idx, tmp_path, caplog):
  workdir = str(tmp_path / "run")
  config = tiny_pixelcnn_config(tiny_idx, num_steps=4, checkpoint_every=2)
  train.run(config, workdir)
  corrupt(os.path.join(workdir, "checkpoints", "4"))
  with config.unlocked():
    config.train.num_steps = 6
  results = train.run(config, workdir)
  assert "checkpoint at step 4 is unreadable" in caplog.text
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4", "6"]
  assert os.listdir(os.path.join(workdir, "checkpoints_corrupt")) == ["4"]  # kept, not deleted
  assert results["train"]["loss"] > 0
  train_steps = [r["step"] for r in read_metrics(workdir) if r["split"] == "train"]
  assert train_steps[-1] == 6


def test_non_finite_loss_stops_with_the_step_named(tiny_idx, tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_pixelcnn_config(tiny_idx, num_steps=10, log_every=1, checkpoint_every=1,
                                learning_rate=1e30, warmup_steps=0, grad_clip_norm=0.0)
  # (a zero-initialised head moves first: the gradient norm can overflow before the loss)
  with pytest.raises(NonFiniteError,
                     match=r"non-finite .*(loss|grad_norm).* at step (\d+)") as error:
    train.run(config, workdir)
  bad_step = int(error.value.args[0].split(" at step ")[1].split()[0])
  saved = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")))
  assert saved and max(saved) < bad_step  # only good states were saved
  state, _ = train.restore_run(config, workdir)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_colour_data_end_to_end_with_mock_tfds(tiny_idx, tmp_path):
  """cifar10 (32x32x3, R->G->B ordering) through the trainer on TFDS mock data."""
  import tensorflow_datasets as tfds
  config = tiny_pixelcnn_config(tiny_idx, num_steps=2, checkpoint_every=2, num_samples=2)
  with config.unlocked():
    config.data.name, config.data.idx_dir = "cifar10", ""
    config.model.features, config.model.head_features = 12, 12  # divisible by 2 x 3 groups
  with tfds.testing.mock_data(num_examples=32):
    results = train.run(config, str(tmp_path / "run"))
  assert 0 < results["eval"]["bits_per_dim"] < 9
  grid = Image.open(os.path.join(tmp_path, "run", "samples", "step_2.png"))
  assert grid.mode == "RGB" and grid.size == (2 * 33 + 1, 33 + 1)


def test_sample_mode_writes_a_completion_grid_that_keeps_the_observed_half(tiny_idx, tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_pixelcnn_config(tiny_idx, num_steps=2, checkpoint_every=2, num_samples=3)
  train.run(config, workdir)
  train.run(config, workdir, mode="sample")
  grid = np.asarray(Image.open(os.path.join(workdir, "samples", "completion_2.png")))
  cell = lambda row, col: grid[1 + row * 29:1 + row * 29 + 28, 1 + col * 29:1 + col * 29 + 28]
  for col in range(3):
    original, observed, completed = cell(0, col), cell(1, col), cell(2, col)
    np.testing.assert_array_equal(observed[:14], original[:14])
    assert np.all(observed[14:] == 128)
    np.testing.assert_array_equal(completed[:14], original[:14])  # the top half is kept
  # The eval split's first images are what was completed.
  from gen_jax.data import sources
  images, _ = sources.read_split("fashion_mnist", "test", data_dir=config.data.data_dir,
                                 idx_dir=config.data.idx_dir)
  np.testing.assert_array_equal(cell(0, 0), images[0, :, :, 0])

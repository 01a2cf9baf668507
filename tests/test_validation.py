"""The validation split (data.validation_fraction) and the step picked on it
(train.select_metric): disjoint from training and test data on every kind of
dataset that has one, the picked step's state is what eval reads, and a resumed
run picks what an uninterrupted one does."""

import os
import shutil

import chex
import numpy as np
import pytest

from conftest import load_config, read_only, tiny_pixelcnn_config
import jax

from gen_jax import config_defaults, data, parallel, runs, train
from gen_jax.data import text
from gen_jax.errors import UserError


def with_validation(config, fraction=0.25, metric="", mode="min"):
  with config.unlocked():
    config.data.validation_fraction = fraction
    config.train.select_metric, config.train.select_mode = metric, mode
  return config


def test_image_validation_is_the_tail_of_the_training_split(tiny_idx):
  config = tiny_pixelcnn_config(tiny_idx).data
  whole, test_before = data.load_splits(config)
  with config.unlocked():
    config.validation_fraction = 0.25
  train_for_test, test = data.load_splits(config, "test")
  train_for_validation, validation = data.load_splits(config, "validation")
  boundary = len(whole) - len(whole) // 4
  for split in (train_for_test, train_for_validation):  # one training set, either way
    np.testing.assert_array_equal(split.images, whole.images[:boundary])
  np.testing.assert_array_equal(validation.images, whole.images[boundary:])
  np.testing.assert_array_equal(validation.labels, whole.labels[boundary:])
  np.testing.assert_array_equal(test.images, test_before.images)
  with config.unlocked():
    config.validation_fraction = 0.0
  with pytest.raises(UserError, match="needs data.validation_fraction > 0"):
    data.load_splits(config, "validation")
  with config.unlocked():
    config.validation_fraction = 1.5
  with pytest.raises(UserError, match=r"data.validation_fraction=1.5 must be in \[0, 1\)"):
    data.load_splits(config)


def test_text_validation_scores_interleaved_blocks_once_and_never_trains_on_them(tmp_path):
  corpus = "".join(chr(ord("a") + (i * 7) % 23) for i in range(200))
  path = tmp_path / "corpus.txt"
  path.write_text(corpus, encoding="utf-8")
  config = config_defaults.base_config().data
  with config.unlocked():
    config.update(dict(name="text_file", text_file=str(path), eval_fraction=0.25,
                       sequence_length=2, window_stride=1, eval_context=1,
                       validation_fraction=0.2))
  vocabulary = text.text_spec(config).vocabulary
  ids = text.encode(corpus, vocabulary)
  # 150 training characters in blocks of 8 windows of 3 characters: six blocks of 24 (6
  # characters left over); floor((i + 1) f) > floor(i f) holds out block 4, characters 96-119
  assert text.validation_blocks(150, config) == [(96, 120)]
  train_split, validation = data.load_splits(config, "validation")
  _, test = data.load_splits(config, "test")
  expected = np.concatenate([np.lib.stride_tricks.sliding_window_view(ids[a:b], 3)
                             for a, b in ((0, 96), (120, 150))])
  np.testing.assert_array_equal(train_split.features["tokens"], expected)

  def scored(split):
    rows, columns = np.nonzero(split.features["weights"])
    assert columns.min() >= config.eval_context
    return split.features["tokens"][rows, columns]
  np.testing.assert_array_equal(scored(validation), ids[96:120])
  np.testing.assert_array_equal(scored(test), ids[150:])  # unchanged by validation
  with config.unlocked():  # a block each time: 0.5 of 6 blocks is blocks 1, 3, 5
    config.validation_fraction = 0.5
  assert text.validation_blocks(150, config) == [(24, 48), (72, 96), (120, 144)]
  with config.unlocked():
    config.validation_fraction, config.sequence_length = 0.1, 20
  with pytest.raises(UserError, match="leaves no validation or no training text"):
    data.load_splits(config, "validation")  # one block of 168: none to hold out


def test_semi_supervised_validation_keeps_every_label_and_none_is_trained_on(tiny_idx):
  idx_dir, data_dir, _ = tiny_idx
  config = config_defaults.base_config().data
  config.update(dict(name="semi_supervised", base_name="fashion_mnist", num_labelled=10,
                     labelled_fraction=0.5, label_seed=0, validation_fraction=0.25))
  config.idx_dir, config.data_dir = idx_dir, data_dir
  train_split, validation = data.load_splits(config, "validation")
  with config.unlocked():
    config.name, config.validation_fraction = "fashion_mnist", 0.0
  whole, _ = data.load_splits(config)
  boundary = len(whole) - len(whole) // 4
  np.testing.assert_array_equal(validation.images, whole.images[boundary:])
  np.testing.assert_array_equal(validation.labels, whole.labels[boundary:])  # all labels
  trained = {image.tobytes() for image in train_split.images}
  assert trained == {image.tobytes() for image in whole.images[:boundary]}


def test_validation_is_refused_where_a_dataset_has_none_and_selection_needs_it(tiny_idx):
  config_ar = load_config("ar_p.py", "smoke")
  with config_ar.unlocked():
    config_ar.data.validation_fraction = 0.1
  with pytest.raises(UserError, match="data.name=ar_process has no validation split: set "
                     "data.validation_fraction=0"):
    data.load_splits(config_ar.data, "validation")
  config = with_validation(tiny_pixelcnn_config(tiny_idx), fraction=0.0, metric="bits_per_dim")
  with pytest.raises(UserError, match="never on the test split: set data.validation_fraction"):
    train.run(config, "/nonexistent/never/written")


def picked_run(tiny_idx, workdir, mode="min", metric="bits_per_dim", num_steps=8, mesh=None):
  config = with_validation(tiny_pixelcnn_config(
      tiny_idx, num_steps=num_steps, eval_every=2, checkpoint_every=2, keep_checkpoints=10),
      metric=metric, mode=mode)
  with config.unlocked():
    config.train.lr_schedule = "constant"  # num_steps is lowered to stop a run early
  train.run(config, workdir, mesh=mesh)
  return config


@pytest.mark.parametrize("mode", ["min", "max"])
def test_the_picked_step_is_the_best_validation_eval_and_eval_reads_it(tiny_idx, tmp_path, mode):
  workdir = str(tmp_path / mode)
  config = picked_run(tiny_idx, workdir, mode)
  evals = runs.read_metrics(workdir, "validation")
  assert [r["step"] for r in evals] == [2, 4, 6, 8] and not runs.read_metrics(workdir, "eval")
  values = [r["bits_per_dim"] for r in evals]
  best = evals[int(np.argmin(values) if mode == "min" else np.argmax(values))]["step"]
  if mode == "max":
    assert best < 8  # the worst validation eval, not the last step: picking is not "last"
  picked, step = runs.restore_state(config, workdir)
  assert step == best and sorted(os.listdir(os.path.join(workdir, "best"))) == [str(best)]
  # Bitwise the periodic checkpoint of that step (the newest once the later ones are gone).
  upto = str(tmp_path / f"{mode}_upto_best")
  shutil.copytree(workdir, upto)
  for later in [s for s in os.listdir(os.path.join(upto, "checkpoints")) if int(s) > best]:
    shutil.rmtree(os.path.join(upto, "checkpoints", later))
  periodic, periodic_step = train.restore_run(config, upto)
  assert periodic_step == best
  chex.assert_trees_all_equal(picked, periodic)
  output = str(tmp_path / f"{mode}_eval")
  results = train.run(config, workdir, mode="eval", output_dir=output)
  (record,) = runs.read_metrics(output, "eval")
  assert record["step"] == best and results["eval"]["bits_per_dim"] == record["bits_per_dim"]
  with config.unlocked():
    config.train.select_metric = ""  # unset: the last step
  assert runs.restore_state(config, workdir)[1] == 8


@pytest.mark.parametrize("mode", ["min", "max"])
def test_a_resumed_run_picks_what_an_uninterrupted_run_picks(tiny_idx, tmp_path, mode):
  straight = str(tmp_path / "straight")
  config = picked_run(tiny_idx, straight, mode)
  resumed = str(tmp_path / "resumed")
  picked_run(tiny_idx, resumed, mode, num_steps=4)  # stopped at step 4 ...
  picked_run(tiny_idx, resumed, mode, num_steps=8)  # ... and resumed to 8
  # A kill -9 after the eval at 6 that left no checkpoint past 4: the best kept past the
  # restored step is dropped, and the evals are redone.
  lost = str(tmp_path / "lost")
  shutil.copytree(straight, lost)
  for step in ("6", "8"):
    shutil.rmtree(os.path.join(lost, "checkpoints", step))
  picked_run(tiny_idx, lost, mode, num_steps=8)
  state, step = runs.restore_state(config, straight)
  assert (step > 4) == (mode == "min")  # min: a best past the restored step was dropped
  for workdir in (resumed, lost):
    other, other_step = runs.restore_state(config, workdir)
    assert other_step == step
    chex.assert_trees_all_equal(other, state)
    assert ([r["bits_per_dim"] for r in runs.read_metrics(workdir, "validation")] ==
            [r["bits_per_dim"] for r in runs.read_metrics(straight, "validation")])


def test_an_unknown_select_metric_is_a_user_error_naming_the_metrics(tiny_idx, tmp_path):
  with pytest.raises(UserError, match=r"train.select_metric=accuracy is not one of the eval "
                     r"metrics \(bits_per_dim"):
    picked_run(tiny_idx, str(tmp_path / "run"), metric="accuracy", num_steps=2)
  assert os.path.isdir(os.path.join(str(tmp_path / "run"), "checkpoints", "2"))  # kept


def test_two_devices_pick_the_step_one_device_picks_and_a_read_only_run_reads_it(tiny_idx,
                                                                              tmp_path):
  assert jax.device_count() >= 2, "conftest asks for 2 CPU devices"
  picked = {}
  for count in (1, 2):
    workdir = str(tmp_path / f"devices_{count}")
    config = picked_run(tiny_idx, workdir, "max",
                        mesh=parallel.create_mesh(jax.devices()[:count]))
    picked[count] = runs.restore_state(config, workdir)
  assert picked[1][1] == picked[2][1]  # the same step, and a state equal to rounding (Adam's
  # g / sqrt(v) amplifies the reduction order's rounding in near-zero head gradients to
  # ~1e-6 on this random data: test_train.py's sharded-step test explains)
  chex.assert_trees_all_close(*(jax.device_get(p[0]) for p in picked.values()), rtol=2e-5,
                              atol=5e-6)
  workdir, output = str(tmp_path / "devices_2"), str(tmp_path / "read_only_eval")
  with read_only(workdir):  # --mode eval of a read-only run reads best/, writes nothing there
    train.run(config, workdir, mode="eval", output_dir=output)
  (record,) = runs.read_metrics(output, "eval")
  assert record["step"] == picked[2][1]

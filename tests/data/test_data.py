"""Data: the IDX -> TFDS build, deterministic batches, exact eval coverage, clear errors."""

import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gen_jax.data import image_split, TrainBatches, eval_batches, idx_builder, pipeline, sources
from gen_jax.errors import UserError


def test_idx_build_round_trip(tiny_idx):
  idx_dir, data_dir, arrays = tiny_idx
  for split in ("train", "test"):
    images, labels = sources.read_split("fashion_mnist", split, data_dir=data_dir, idx_dir=idx_dir)
    expected_images, expected_labels = arrays[split]
    assert images.shape == (len(expected_images), 28, 28, 1) and images.dtype == np.uint8
    # ArrayRecord may reorder examples: compare as multisets of (image, label).
    got = sorted((im.tobytes(), int(lb)) for im, lb in zip(images, labels))
    want = sorted((im[..., None].tobytes(), int(lb)) for im, lb in zip(expected_images, expected_labels))
    assert got == want
  # Built once, as a TFDS dataset that TFDS itself can open.
  path = idx_builder.prepared_dir("fashion_mnist", data_dir)
  assert path is not None
  assert len(tfds.builder_from_directory(path).as_data_source("test")) == len(arrays["test"][0])


def test_prepared_build_is_reused_without_idx_files(tiny_idx, tmp_path):
  idx_dir, data_dir, arrays = tiny_idx
  sources.read_split("fashion_mnist", "train", data_dir=data_dir, idx_dir=idx_dir)
  images, _ = sources.read_split("fashion_mnist", "train", data_dir=data_dir,
                                 idx_dir=str(tmp_path / "nothing_here"))
  assert len(images) == len(arrays["train"][0])


def test_read_idx_rejects_corrupt_header(tmp_path):
  path = tmp_path / "bad-images-idx3-ubyte"
  path.write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + b"\x00" * 16)
  with pytest.raises(ValueError, match="header"):
    idx_builder.read_idx(str(path))


def test_missing_dataset_fails_fast_with_instructions(tmp_path):
  start = time.perf_counter()
  with pytest.raises(UserError, match="not on disk.*apt-get install -y dataset-fashion-mnist"):
    sources.read_split("fashion_mnist", "train", data_dir=str(tmp_path / "tfds"),
                       idx_dir=str(tmp_path / "no_idx"))
  with pytest.raises(UserError, match="cifar10.*tfds build cifar10"):
    sources.read_split("cifar10", "train", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(UserError, match="unknown dataset"):
    sources.read_split("imagenette", "train")
  assert time.perf_counter() - start < 10  # never a download retry loop


def test_mock_tfds_source_is_read(tmp_path):
  with tfds.testing.mock_data(num_examples=12):
    images, labels = sources.read_split("mnist", "train", data_dir=str(tmp_path))
  assert images.shape == (12, 28, 28, 1) and labels.shape == (12,)


def _split(num=50):
  images = np.arange(num, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1), np.uint8)
  return image_split(images, np.arange(num, dtype=np.int32))


def test_train_batches_are_a_function_of_seed_and_step():
  split = _split()
  a = TrainBatches(split, global_batch_size=8, seed=3)
  b = TrainBatches(split, global_batch_size=8, seed=3)
  for step in (0, 5, 7, 1, 13):  # any order: no hidden iterator state
    np.testing.assert_array_equal(a(step)["label"], b(step)["label"])
  assert not np.array_equal(a(0)["label"], TrainBatches(split, global_batch_size=8, seed=4)(0)["label"])


def test_each_epoch_is_a_permutation_and_epochs_differ():
  split = _split(48)
  batches = TrainBatches(split, global_batch_size=8, seed=0)
  epochs = [np.concatenate([batches(e * 6 + s)["label"] for s in range(6)]) for e in range(2)]
  for labels in epochs:
    np.testing.assert_array_equal(np.sort(labels), np.arange(48))
  assert not np.array_equal(epochs[0], epochs[1])


def test_processes_partition_the_global_batch():
  split = _split()
  whole = TrainBatches(split, global_batch_size=8, seed=1)
  parts = [TrainBatches(split, global_batch_size=8, seed=1, process_index=p, process_count=2)
           for p in range(2)]
  for step in range(4):
    np.testing.assert_array_equal(np.concatenate([p(step)["label"] for p in parts]),
                                  whole(step)["label"])


def test_eval_batches_cover_the_split_exactly_once():
  split = _split(50)
  seen = []
  for batch in eval_batches(split, global_batch_size=16):
    assert batch["image"].shape[0] == 16
    seen.extend(batch["label"][batch["mask"] > 0])
    assert np.all(batch["image"][batch["mask"] == 0] == 0)
  np.testing.assert_array_equal(np.sort(seen), np.arange(50))


def test_binarization():
  rng = np.random.default_rng(0)
  images = np.array([[0, 127, 128, 255]], np.uint8)
  np.testing.assert_array_equal(pipeline.binarize(images, "fixed", rng), [[0, 0, 1, 1]])
  draws = np.stack([pipeline.binarize(images, "dynamic", rng) for _ in range(4000)])
  np.testing.assert_allclose(draws.mean(0), images / 255.0, atol=0.03)
  assert set(np.unique(draws)) <= {0, 1}


def test_real_fashion_mnist_when_installed(tmp_path):
  """Debian's files, when present (make test installs them as root), build to 60000 + 10000."""
  if not idx_builder.has_idx_files("/usr/share/datasets/fashion-mnist"):
    pytest.skip("dataset-fashion-mnist is not installed (make test installs it as root)")
  images, labels = sources.read_split("fashion_mnist", "test", data_dir=str(tmp_path))
  assert images.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))


def test_data_layer_bad_input_is_a_user_error_naming_the_key(tmp_path):
  from gen_jax.data import corruptions
  images = np.zeros((2, 8, 8, 1), np.uint8)
  with pytest.raises(UserError, match="train.batch_size=3 exceeds the 2 training"):
    TrainBatches(image_split(images), global_batch_size=3, seed=0)
  with pytest.raises(UserError, match=r"eval.block_size=9 must be in \[1, 8\]"):
    corruptions.masked_block(images, 9, np.random.default_rng(0))
  garbage = tmp_path / "train-images-idx3-ubyte"
  garbage.write_bytes(b"not an idx file")
  with pytest.raises(UserError, match="data.idx_dir"):
    idx_builder.read_idx(str(garbage))

"""A TFDS builder for MNIST-format IDX files on local disk (no download).

Debian's `dataset-fashion-mnist` installs the original Fashion-MNIST IDX files,
re-gzipped (so TFDS's registered checksums do not match them). This builder
decodes the arrays and writes them once as an ArrayRecord TFDS dataset,
`<data_dir>/idx_images/<name>/1.0.0`, which is then read through
`tfds.builder_from_directory(...).as_data_source(split)` like any other TFDS
data source, without TensorFlow.
"""

import gzip
import os
import struct

import numpy as np
import tensorflow_datasets as tfds

from gen_jax.errors import UserError

_IMAGE_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
_LABEL_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_file(directory: str, stem: str) -> str | None:
  """The path of `stem` or `stem.gz` in `directory`, or None."""
  for name in (stem + ".gz", stem):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def read_idx(path: str) -> np.ndarray:
  """Decodes one IDX file (optionally gzipped) of unsigned bytes."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  magic, = struct.unpack(">i", data[:4])
  if magic not in (_IMAGE_MAGIC, _LABEL_MAGIC):
    raise UserError(f"{path} is not an IDX file of unsigned bytes (magic {magic}): check "
                    "data.idx_dir")
  ndim = magic & 0xFF
  shape = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
  array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
  if array.size != int(np.prod(shape)):
    raise UserError(f"{path}: header says {shape} but holds {array.size} bytes (truncated?): "
                    "check data.idx_dir")
  return array.reshape(shape)


def read_idx_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """([N, 28, 28, 1] uint8 images, [N] int64 labels) of one split."""
  image_stem, label_stem = SPLIT_FILES[split]
  image_path = find_idx_file(directory, image_stem)
  label_path = find_idx_file(directory, label_stem)
  if image_path is None or label_path is None:
    raise FileNotFoundError(f"no {image_stem}[.gz] / {label_stem}[.gz] in {directory}")
  images, labels = read_idx(image_path), read_idx(label_path)
  if len(images) != len(labels):
    raise UserError(f"data.idx_dir={directory}: {len(images)} images but {len(labels)} labels")
  return images[..., None], labels.astype(np.int64)


def has_idx_files(directory: str | None) -> bool:
  return bool(directory) and all(
      find_idx_file(directory, stem) for pair in SPLIT_FILES.values() for stem in pair)


class IdxImages(tfds.core.GeneratorBasedBuilder):
  """MNIST-format IDX images (fashion_mnist, mnist) built from a local directory."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Built from local IDX files."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="fashion_mnist", description="Fashion-MNIST"),
      tfds.core.BuilderConfig(name="mnist", description="MNIST"),
  ]

  def __init__(self, *, idx_dir: str | None = None, **kwargs):
    self._idx_dir = idx_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"{self.builder_config.name} from local IDX files.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split) for split in SPLIT_FILES}

  def _generate_examples(self, split):
    images, labels = read_idx_split(self._idx_dir, split)
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": image, "label": label}


def build_from_idx(name: str, idx_dir: str, data_dir: str) -> str:
  """Writes `name` from the IDX files in `idx_dir` into `data_dir`; returns its path."""
  builder = IdxImages(config=name, idx_dir=idx_dir, data_dir=data_dir, file_format="array_record")
  try:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  except FileExistsError:  # another process (multi-process job) finished the same build first
    if prepared_dir(name, data_dir) is None:
      raise
  return builder.data_dir


def prepared_dir(name: str, data_dir: str) -> str | None:
  """The directory of an already built IDX dataset, or None."""
  path = os.path.join(data_dir, "idx_images", name, str(IdxImages.VERSION))
  return path if os.path.isfile(os.path.join(path, "dataset_info.json")) else None

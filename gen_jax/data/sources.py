"""Where each dataset comes from, resolved without ever waiting on a download.

Order of preference for `read_split(name, split, ...)`:
  1. a TFDS dataset prepared in ArrayRecord format under the TFDS data dir
     (`tfds build NAME --file_format=array_record`), read with
     `tfds.data_source(..., download=False)`;
  2. for MNIST-format datasets, the gen_jax IDX build in the data dir, made on
     first use from local IDX files (Debian's dataset-fashion-mnist by default);
  3. otherwise a one-line error saying how to get the data.
"""

import dataclasses
import os
from typing import Callable

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data import idx_builder
from gen_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class TimeSeries:
  """One univariate series (data/timeseries.py): all of it, and where it splits."""
  values: np.ndarray  # [L] float32: the training part, then the held-out part
  boundary: int  # the first held-out index
  true_parameters: dict | None  # a generated AR(p) process's {'intercept', 'coefficients',
  #                               'noise_std'}; None for a series read from a file


@dataclasses.dataclass(frozen=True)
class Factors:
  """The generative factors of a procedural dataset's 'factors' feature (data/sprites.py)."""
  names: tuple[str, ...]  # one per column of 'factors'
  sizes: tuple[int, ...]  # the number of values each factor takes


@dataclasses.dataclass(frozen=True)
class VQStage1:
  """The VQ-VAE run whose codes a 'vq_codes' dataset holds (tasks/vq_prior.py)."""
  config: ml_collections.ConfigDict  # the run's config.json
  image_spec: "DatasetSpec"  # the images it encodes
  scales: tuple[str, ...]  # its code maps, coarsest first: ('latent',) or ('top', 'bottom')
  latent_shapes: dict[str, tuple[int, int]]  # code map name -> (h, w)


@dataclasses.dataclass(frozen=True)
class M1Features:
  """The VAE run (M1) whose posterior a semi_supervised dataset holds instead of pixels
  (data.m1_workdir, tasks/m1_features.py)."""
  workdir: str
  config: ml_collections.ConfigDict  # the run's config.json
  active_units: tuple[int, ...]  # the latent units kept, indices into M1's z
  image_shape: tuple[int, ...]  # the images it encodes


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Static facts about a dataset the models need before any data is read.

  Image datasets give `image_shape` and get the features {'image', 'label'}.
  Other data (text, time series, procedural images with factors) give their
  `features` and a `load(data_config) -> (train, eval)` of feature dicts;
  a spec that depends on the config (a sequence length, a corpus's alphabet)
  is registered as a function data_config -> DatasetSpec instead. The last
  fields are what one kind of dataset carries beside its examples, None for
  the others.
  """
  image_shape: tuple[int, ...] | None  # (H, W, C); None for non-image data
  num_levels: int  # distinct values per sub-pixel (or token): 256 for 8-bit, 2 for binary
  num_classes: int  # 0 when unlabelled
  default_idx_dir: str | None = None  # local MNIST-format files, if any
  how_to_get: str = ""
  # name -> (shape of one example, numpy dtype name); None = image (+ label)
  features: dict[str, tuple[tuple[int, ...], str]] | None = None
  load: Callable | None = None  # (data_config) -> (train, eval) dicts of [N, ...] arrays
  # load takes (data_config, held_out) and, with data.validation_fraction > 0, holds part
  # of its training data out as the 'validation' split (image data always can)
  holds_out_validation: bool = False
  vocabulary: str | None = None  # text: the sorted characters; token id i is vocabulary[i]
  series: TimeSeries | None = None  # ar_process, csv_series
  factors: Factors | None = None  # sprites
  num_labelled: int | None = None  # semi_supervised: training examples that keep their label
  stage1: VQStage1 | None = None  # vq_codes
  m1: M1Features | None = None  # semi_supervised over an M1's features (data.m1_workdir)

  def example_features(self) -> dict[str, tuple[tuple[int, ...], str]]:
    if self.features is not None:
      return dict(self.features)
    features = {"image": (tuple(self.image_shape), "uint8")}
    if self.num_classes:
      features["label"] = ((), "int32")
    return features


_PREPARE = ("prepare it once with TensorFlow and network: "
            "`tfds build {name} --file_format=array_record` (then set TFDS_DATA_DIR or "
            "--config.data.data_dir)")
DATASETS = {
    "fashion_mnist": DatasetSpec(
        (28, 28, 1), 256, 10, "/usr/share/datasets/fashion-mnist",
        "install the IDX files with `apt-get install -y dataset-fashion-mnist`, or set "
        "--config.data.idx_dir to a directory holding them, or " + _PREPARE),
    "mnist": DatasetSpec(
        (28, 28, 1), 256, 10, None,
        "set --config.data.idx_dir to a directory with the MNIST IDX files "
        "(train-images-idx3-ubyte.gz, ...), or " + _PREPARE),
    "binarized_mnist": DatasetSpec((28, 28, 1), 2, 0, None, _PREPARE),
    "cifar10": DatasetSpec((32, 32, 3), 256, 10, None, _PREPARE),
}


def register(name: str, spec: "DatasetSpec | Callable") -> None:
  """Adds a dataset: a DatasetSpec, or a function data_config -> DatasetSpec."""
  DATASETS[name] = spec


def get_spec(data_config) -> DatasetSpec:
  """The spec of data_config.name, resolved against the config when it depends on it."""
  if data_config.name not in DATASETS:
    raise UserError(f"unknown data.name {data_config.name!r}; "
                    f"known: {', '.join(sorted(DATASETS))}")
  spec = DATASETS[data_config.name]
  return spec if isinstance(spec, DatasetSpec) else spec(data_config)


HELD_OUT = ("test", "validation")


def validation_fraction(data_config) -> float:
  """data.validation_fraction, checked (0 = no validation split)."""
  fraction = data_config.get("validation_fraction", 0.0)
  if not 0 <= fraction < 1:
    raise UserError(f"data.validation_fraction={fraction} must be in [0, 1)")
  return fraction


def validation_boundary(num_train: int, data_config) -> int:
  """Where the validation part of `num_train` training examples starts: the last
  data.validation_fraction of them are held out (0 = none)."""
  fraction = validation_fraction(data_config)
  boundary = num_train - int(round(fraction * num_train))
  if fraction and not 0 < boundary < num_train:
    raise UserError(f"data.validation_fraction={fraction} of {num_train} training examples "
                    "leaves no validation or no training data; change it")
  return boundary


def split_off_validation(features: dict, data_config, held_out: str) -> tuple[dict, dict | None]:
  """(training part, validation part or None) of a training split's features."""
  num_train = len(next(iter(features.values())))
  boundary = validation_boundary(num_train, data_config)
  validation = ({name: values[boundary:] for name, values in features.items()}
                if held_out == "validation" else None)
  return {name: values[:boundary] for name, values in features.items()}, validation


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def read_features(data_config, split: str) -> dict[str, np.ndarray]:
  """{'image'[, 'label']} of one split of data_config's image dataset."""
  images, labels = read_split(data_config.name, split, data_dir=data_config.data_dir or None,
                              idx_dir=data_config.idx_dir or None)
  return {"image": images} if labels is None else {"image": images, "label": labels}


def _read_source(source) -> tuple[np.ndarray, np.ndarray | None]:
  """All examples of a random-access source as arrays (the splits fit in memory)."""
  try:
    examples = source.__getitems__(list(range(len(source))))  # one bulk read
  except TypeError:  # sources without bulk reads (e.g. tfds.testing.mock_data's)
    examples = [source[i] for i in range(len(source))]
  images = np.stack([np.asarray(ex["image"], np.uint8) for ex in examples])
  if images.ndim == 3:
    images = images[..., None]
  labels = (np.asarray([ex["label"] for ex in examples], np.int32)
            if "label" in examples[0] else None)
  return images, labels


def read_split(name: str, split: str, *, data_dir: str | None = None,
               idx_dir: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
  """([N, H, W, C] uint8 images, [N] int32 labels or None) of one split."""
  if name not in DATASETS:
    raise UserError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
  spec = DATASETS[name]
  data_dir = data_dir or default_data_dir()
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception:  # pylint: disable=broad-except  # not prepared as ArrayRecord: next way
    source = None
  if source is not None:
    return _read_source(source)
  idx_dir = idx_dir or spec.default_idx_dir
  if name in idx_builder.IdxImages.builder_configs:
    path = idx_builder.prepared_dir(name, data_dir)
    if path is None and idx_builder.has_idx_files(idx_dir):
      path = idx_builder.build_from_idx(name, idx_dir, data_dir)
    if path is not None:
      return _read_source(tfds.builder_from_directory(path).as_data_source(split))
  where = f"no ArrayRecord TFDS build in {data_dir}" + (
      f", no IDX files in {idx_dir}" if name in idx_builder.IdxImages.builder_configs else "")
  raise UserError(f"dataset {name!r} is not on disk ({where}): "
                  f"{spec.how_to_get.format(name=name)}")

"""In-memory splits, deterministic batches and per-process slicing.

The splits this codebase trains on fit in host memory, and indexing an array is
the fastest loader there is (see TOOLCHAIN.md), so a split is read once and
every batch is a function of (seed, step): epoch e's order is a permutation
drawn from (seed, e), step s takes the s-th global batch of it, and process p of
P keeps the p-th contiguous slice. The data position of a run is therefore just
its step, and a resumed run reads exactly the batches an uninterrupted one
would have.
"""

import dataclasses
import queue
import threading
from typing import Iterator

import numpy as np

from gen_jax.data import sources
from gen_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Split:
  """A split held in memory: feature name -> [N, ...] array ('image', 'label', ...)."""
  features: dict[str, np.ndarray]

  def __len__(self) -> int:
    return len(next(iter(self.features.values())))

  @property
  def images(self) -> np.ndarray | None:  # [N, H, W, C] uint8
    return self.features.get("image")

  @property
  def labels(self) -> np.ndarray | None:  # [N] int32
    return self.features.get("label")

  def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[indices] for name, values in self.features.items()}

  def head(self, limit: int) -> "Split":
    """The first `limit` examples (all when limit is 0)."""
    return self if not limit else Split({k: v[:limit] for k, v in self.features.items()})


def image_split(images: np.ndarray, labels: np.ndarray | None = None) -> Split:
  return Split({"image": images} if labels is None else {"image": images, "label": labels})


def load_splits(data_config, held_out: str = "test") -> tuple[Split, Split]:
  """(train, held-out) splits of `data_config.name`, optionally truncated.

  held_out='test' is data.eval_split; 'validation' is the data.validation_fraction
  of the training data that is held out (an image dataset's last examples; a loader
  with `holds_out_validation` picks its own part), which the training split then
  lacks (it lacks it for 'test' too: a run's training data is one thing).
  """
  if held_out not in sources.HELD_OUT:
    raise ValueError(f"held_out={held_out!r}")
  spec = sources.get_spec(data_config)
  fraction = data_config.get("validation_fraction", 0.0)
  if held_out == "validation" and not fraction:
    raise UserError("a validation split needs data.validation_fraction > 0")
  if spec.load is not None and fraction and not spec.holds_out_validation:
    raise UserError(f"data.name={data_config.name} has no validation split: set "
                    "data.validation_fraction=0")
  if spec.holds_out_validation:
    train, evaluation = (Split(features) for features in spec.load(data_config, held_out))
  elif spec.load is not None:
    train, evaluation = (Split(features) for features in spec.load(data_config))
  else:
    train, validation = sources.split_off_validation(
        sources.read_features(data_config, data_config.train_split), data_config, held_out)
    evaluation = (validation if held_out == "validation" else
                  sources.read_features(data_config, data_config.eval_split))
    train, evaluation = (image_split(split["image"], split.get("label"))
                         for split in (train, evaluation))
  return (train.head(data_config.max_train_examples),
          evaluation.head(data_config.max_eval_examples))


def binarize(images: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
  """8-bit images -> {0, 1}: 'fixed' thresholds at 128, 'dynamic' draws Bernoulli(x/255)."""
  if mode == "none":
    return images
  if mode == "fixed":
    return (images >= 128).astype(np.uint8)
  if mode == "dynamic":
    return (rng.random(images.shape, np.float32) < images / np.float32(255)).astype(np.uint8)
  raise ValueError(f"unknown binarization {mode!r}")


def model_inputs(images: np.ndarray, binarization: str, seed: int, *stream: int) -> np.ndarray:
  """8-bit images [N, H, W, C] as a model sees them: `binarize` with a generator drawn
  from (seed, *stream). The one preprocessing of every path where a model reads
  data (training and eval batches, completion, reconstruction, encoding for
  metrics): a binarized model never sees 0..255 pixels."""
  return binarize(images, binarization, np.random.default_rng([seed, *stream]))


def replace_with_noise(values: np.ndarray, rate: float, num_levels: int,
                       rng: np.random.Generator) -> np.ndarray:
  """Each entry kept with probability 1 - rate, else replaced by a uniform draw from
  {0, ..., num_levels - 1}: the perturbed inputs a background model trains on
  (Ren et al. 2019, likelihood ratios for out-of-distribution detection)."""
  replaced = rng.random(values.shape) < rate
  noise = rng.integers(0, num_levels, values.shape)
  return np.where(replaced, noise, values).astype(values.dtype)


def noise_levels(spec: sources.DatasetSpec) -> dict[str, int]:
  """{feature: levels} of what background noise replaces: the integer inputs a model
  scores (images, codes, tokens), never labels or float side information."""
  return {name: spec.num_levels for name, (_, dtype) in spec.example_features().items()
          if np.issubdtype(np.dtype(dtype), np.integer) and "label" not in name}


class TrainBatches:
  """Global batch `step` of a split, as this process's slice (drop-remainder epochs).

  noise_levels {feature: levels} with noise_rate > 0 replaces that fraction of the
  features' entries by uniform noise, after binarization (data.background_noise_rate).
  """

  def __init__(self, split: Split, *, global_batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1, binarization: str = "none",
               noise_rate: float = 0.0, noise_levels: dict[str, int] | None = None):
    self.steps_per_epoch = len(split) // global_batch_size
    if self.steps_per_epoch == 0:
      raise UserError(f"train.batch_size={global_batch_size} exceeds the {len(split)} training "
                      f"examples (images, windows or rows) of this data: set train.batch_size "
                      f"to at most {len(split)}")
    self.split, self.global_batch_size, self.seed = split, global_batch_size, seed
    self.process_index, self.process_count = process_index, process_count
    self.binarization = binarization
    self.noise_rate, self.noise_levels = noise_rate, dict(noise_levels or {})
    self._epoch, self._order = -1, None

  def _epoch_order(self, epoch: int) -> np.ndarray:
    if epoch != self._epoch:  # cache the current epoch's permutation
      rng = np.random.default_rng([self.seed, epoch])
      self._epoch, self._order = epoch, rng.permutation(len(self.split))
    return self._order

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    epoch, position = divmod(step, self.steps_per_epoch)
    local = self.global_batch_size // self.process_count
    start = position * self.global_batch_size + self.process_index * local
    batch = self.split.take(self._epoch_order(epoch)[start:start + local])
    if "image" in batch:
      batch["image"] = model_inputs(batch["image"], self.binarization, self.seed, step,
                                    self.process_index, 1)
    if self.noise_rate > 0:
      rng = np.random.default_rng([self.seed, step, self.process_index, 3])
      for name, num_levels in sorted(self.noise_levels.items()):
        batch[name] = replace_with_noise(batch[name], self.noise_rate, num_levels, rng)
    return batch


def eval_batches(split: Split, *, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1, binarization: str = "none",
                 seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """The whole split in order, the last batch zero-padded; `mask` marks real rows."""
  local = global_batch_size // process_count
  for batch_index, start in enumerate(range(0, len(split), global_batch_size)):
    indices = np.arange(start + process_index * local, start + (process_index + 1) * local)
    mask = indices < len(split)
    batch = split.take(np.where(mask, indices, 0))  # padding repeats example 0
    if "image" in batch:
      batch["image"] = model_inputs(batch["image"], binarization, seed, batch_index,
                                    process_index, 2)
    batch["mask"] = mask.astype(np.float32)
    yield batch


def prefetch(iterator: Iterator, size: int = 2) -> Iterator:
  """Runs `iterator` (e.g. host batching + device transfer) `size` items ahead in a thread."""
  buffer: queue.Queue = queue.Queue(maxsize=size)
  done = object()

  def produce():
    try:
      for item in iterator:
        buffer.put(item)
    except BaseException as error:  # pylint: disable=broad-except  # re-raised in the consumer
      buffer.put(error)
    buffer.put(done)

  threading.Thread(target=produce, daemon=True).start()
  while (item := buffer.get()) is not done:
    if isinstance(item, BaseException):
      raise item
    yield item

"""TFDS data sources, the offline IDX builder, batching and per-process slicing.

TFDS is imported only under this package.
"""

from gen_jax.data.pipeline import (Split, eval_batches, image_split, load_splits, TrainBatches,
                                   prefetch)
from gen_jax.data.sources import DATASETS, DatasetSpec, get_spec, register

__all__ = ["DATASETS", "DatasetSpec", "Split", "eval_batches", "get_spec", "image_split",
           "load_splits", "prefetch", "register", "TrainBatches"]

from gen_jax.data import sprites  # noqa: E402  (procedural data registers itself)

register("sprites", sprites.sprites_spec)

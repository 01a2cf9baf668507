"""TFDS data sources, the offline IDX builder, batching and per-process slicing.

TFDS is imported only under this package.
"""

from gen_jax.data.pipeline import (ImageSplit, eval_batches, load_splits, TrainBatches,
                                   prefetch)
from gen_jax.data.sources import DATASETS, DatasetSpec

__all__ = ["DATASETS", "DatasetSpec", "ImageSplit", "eval_batches", "load_splits",
           "prefetch", "TrainBatches"]

"""TFDS data sources, the offline IDX builder, batching and per-process slicing.

TFDS is imported only under this package.
"""

from gen_jax.data.pipeline import (Split, eval_batches, image_split, load_splits,
                                   model_inputs, noise_levels,
                                   TrainBatches, prefetch)
from gen_jax.data.sources import DATASETS, DatasetSpec, get_spec, register
from gen_jax.data import text, timeseries  # noqa: F401  # register their datasets

__all__ = ["DATASETS", "DatasetSpec", "Split", "eval_batches", "get_spec", "image_split",
           "load_splits", "model_inputs", "noise_levels", "prefetch", "register", "TrainBatches"]

from gen_jax.data import semi_supervised, sprites  # noqa: E402  (datasets built in gen_jax)

register("sprites", sprites.sprites_spec)
register("semi_supervised", semi_supervised.semi_supervised_spec)

"""Image completion by an autoregressive model: --mode complete (and part of --mode sample).

The first train.num_samples eval images, as eval feeds them to the model (eval's
binarization), keep their top half; the model redraws the rest in raster order
(Task.complete). samples/completion_<step>.png has three rows: the inputs, the
observed part (unobserved sub-pixels grey) and the completions, shown on 0..255.
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gen_jax import runs
from gen_jax.objectives.likelihoods import to_uint8


def completion_grid(originals: np.ndarray, start: int, completions: np.ndarray) -> np.ndarray:
  """Rows of originals, observed parts (unobserved sub-pixels grey) and completions."""
  num = len(originals)
  observed = originals.reshape(num, -1).copy()
  observed[:, start:] = 128
  return np.concatenate([originals, observed.reshape(originals.shape), completions])


def write_completions(run: runs.Run, rng, num: int, writer) -> np.ndarray:
  """Completes the bottom half of the first `num` eval images: samples/completion_<step>.png.
  Returns the completions (the model's levels)."""
  run.require("completion", "complete")
  split = run.eval_split().head(num)
  inputs = run.model_inputs(split.images, split.labels)
  labels = None if split.labels is None else jnp.asarray(split.labels)
  height, width, channels = inputs.shape[1:]
  start = (height // 2) * width * channels  # observe the top half
  complete = jax.jit(run.task.complete, static_argnums=4)
  completions = np.asarray(jax.device_get(
      complete(run.state, rng, jnp.asarray(inputs), labels, start)))
  highest = run.image_levels - 1
  grid = completion_grid(to_uint8(inputs, 0, highest), start, to_uint8(completions, 0, highest))
  logging.info("wrote %s", writer.write_images(run.step, "completion", grid,
                                               num_columns=len(inputs)))
  return completions


def complete_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  write_completions(run, rng, run.config.train.num_samples, writer)
  return {}

"""--mode fid_floor: the FID/KID a perfect generator would get in a classifier's features.

Compares eval.num_fid_samples real training images (drawn with the run's seed)
with the eval split, in the feature space of a trained `classifier` run
(tasks/classifier.py): the floor a generator's `fid` can reach in that space.
"""

import numpy as np

from gen_jax import data, runs
from gen_jax.errors import UserError
from gen_jax.evaluation import fid
from gen_jax.tasks import classifier
from gen_jax.tasks.common import eval_params, module_functions


def fid_floor_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  """FID/KID and class histogram of real training images vs the eval split."""
  del rng, writer
  config = run.config
  if config.model.name != classifier.MODEL_NAME:
    raise UserError(f"--mode fid_floor needs a {classifier.MODEL_NAME!r} run (its features "
                    f"define the FID); {run.workdir} is a {config.model.name!r} run")
  _, apply_fn = module_functions(classifier.create_classifier_module(config.model, run.spec))
  network = classifier.feature_network(apply_fn, eval_params(run.state))
  batch_size = config.train.eval_batch_size
  train_split, eval_split = data.load_splits(config.data)
  reference = fid.ReferenceSet.from_features(
      fid.image_features(network, eval_split.images, batch_size)[0])
  num = min(config.eval.num_fid_samples, len(train_split))
  chosen = np.random.default_rng(config.seed).choice(len(train_split), num, replace=False)
  return fid.compare_to_reference(network, reference, train_split.images[chosen], config.eval,
                                  batch_size, int(eval_split.labels.max()) + 1)

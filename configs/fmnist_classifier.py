"""The Fashion-MNIST classifier whose penultimate features define gen_jax's FID/KID.

  python -m gen_jax.main --config configs/fmnist_classifier.py --workdir workdirs/fmnist_classifier
  # FID/KID of 10k real training images against the test split (the floor):
  python -m gen_jax.main --config configs/fmnist_classifier.py \
      --workdir workdirs/fmnist_classifier --mode fid_floor
"""

import ml_collections

from gen_jax import config_defaults

SMOKE = {"model.features": 4, "model.feature_dim": 8, "eval.num_fid_samples": 64,
         "eval.kid_subsets": 2, "eval.kid_subset_size": 32}


def get_config(arg=None):
  config = config_defaults.base_config()
  config_defaults.classifier_recipe(config)  # the network and optimizer (CAS trains it too)
  config.train.num_steps = 2000
  config.train.eval_every = 0
  config.train.checkpoint_every = 1000
  config.train.sample_every = 0

  config.eval = ml_collections.ConfigDict()  # for --mode fid_floor
  config.eval.num_fid_samples = 10_000
  config.eval.kid_subsets = 100
  config.eval.kid_subset_size = 1000
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

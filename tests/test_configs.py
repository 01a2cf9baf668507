"""Every config loads, locks, validates and has a :smoke variant."""

import glob
import os

import pytest

from conftest import REPO, load_config
from gen_jax import parallel, tasks, train

CONFIG_FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "configs", "*.py")))


@pytest.mark.parametrize("filename", CONFIG_FILES)
@pytest.mark.parametrize("arg", [None, "smoke"])
def test_config_is_locked_and_valid(filename, arg):
  config = load_config(filename, arg)
  for key in ("seed", "data.name", "train.num_steps", "train.batch_size", "train.log_every",
              "train.eval_every", "train.checkpoint_every", "train.sample_every"):
    node = config
    for part in key.split("."):
      node = node[part]
  with pytest.raises(AttributeError):
    config.train.batchsize = 3  # locked: a typo is an error
  train.validate_config(config, parallel.create_mesh())
  tasks.create_task(config, train.dataset_spec(config.data))


def test_unknown_variant():
  with pytest.raises(ValueError, match="unknown config variant 'smok'"):
    load_config("pixelcnn.py", "smok")

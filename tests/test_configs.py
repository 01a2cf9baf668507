"""Every config loads, locks, validates and has a :smoke variant."""

import glob
import math
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


SMOKE_VARIANTS = [(f, "smoke") for f in CONFIG_FILES] + [("gated_pixelcnn.py", "conditional_smoke")]


@pytest.mark.parametrize("filename,arg", SMOKE_VARIANTS)
def test_smoke_variant_trains_evaluates_and_samples(filename, arg, tiny_idx, tmp_path):
  config = load_config(filename, arg)
  idx_dir, data_dir, _ = tiny_idx
  with config.unlocked():
    config.data.idx_dir, config.data.data_dir = idx_dir, data_dir
    config.train.num_steps, config.train.checkpoint_every = 4, 4
    config.train.eval_batch_size, config.train.progress_bar = 16, False
  results = train.run(config, str(tmp_path / "run"))
  assert results["eval"] and all(math.isfinite(v) for v in results["eval"].values())
  if "bits_per_dim" in results["eval"]:
    assert 0 < results["eval"]["bits_per_dim"] < 9
  assert glob.glob(str(tmp_path / "run" / "samples" / "step_4.*"))

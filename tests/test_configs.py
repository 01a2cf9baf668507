"""Every config loads, locks, validates and has a :smoke variant."""

import glob
import math
import os

import pytest

from conftest import REPO, load_config, prerequisites
from gen_jax import parallel, tasks, train

CONFIG_FILES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "configs", "*.py")))


@pytest.mark.parametrize("filename", CONFIG_FILES)
@pytest.mark.parametrize("arg", [None, "smoke"])
def test_config_is_locked_and_valid(filename, arg, smoke_run):
  config = load_config(filename, arg)
  for key in ("seed", "data.name", "train.num_steps", "train.batch_size", "train.log_every",
              "train.eval_every", "train.checkpoint_every", "train.sample_every"):
    node = config
    for part in key.split("."):
      node = node[part]
  with pytest.raises(AttributeError):
    config.train.batchsize = 3  # locked: a typo is an error
  train.validate_config(config, parallel.create_mesh())
  with config.unlocked():  # a run this one builds on (e.g. a VQ prior's VQ-VAE)
    for key, prerequisite in prerequisites(config).items():
      config[key] = smoke_run(prerequisite)[0]
  tasks.create_task(config, train.dataset_spec(config.data))


def test_unknown_variant():
  with pytest.raises(ValueError, match="unknown config variant 'smok'"):
    load_config("pixelcnn.py", "smok")


SMOKE_VARIANTS = [(f, "smoke") for f in CONFIG_FILES] + [("gated_pixelcnn.py", "conditional_smoke")]


@pytest.mark.parametrize("filename,arg", SMOKE_VARIANTS)
def test_smoke_variant_trains_evaluates_and_samples(filename, arg, smoke_run):
  # 4 steps on the tiny data, run once a session (other tests may build on the run)
  workdir, results = smoke_run(filename, arg)
  assert results["eval"] and all(math.isfinite(v) for v in results["eval"].values())
  if "bits_per_dim" in results["eval"]:
    # A VQ prior's bits_per_dim bounds -log2 p(x) by its decoder's term plus its codes'
    # term, and a code of K costs up to log2 K bits: check the decoder's term.
    assert 0 < results["eval"]["bits_per_dim"] - results["eval"].get("prior_bits_per_dim", 0) < 9
  assert glob.glob(os.path.join(workdir, "samples", "step_4.*"))

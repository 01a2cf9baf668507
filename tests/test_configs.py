"""Every config loads, locks, validates and has a :smoke variant."""

import glob
import json
import math
import os

import jax
import pytest

from conftest import REPO, load_config, prerequisites
from gen_jax import config_defaults, parallel, tasks, train
from gen_jax.errors import UserError

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


# Tasks whose train step is their own (two players; codebook statistics): they refuse
# bf16 compute and gradient accumulation rather than ignore them.
OWN_TRAIN_STEP = {"dcgan", "vaegan", "vqvae", "vqvae2"}


@pytest.mark.parametrize("filename", CONFIG_FILES)
def test_precision_and_accumulation_settings_reach_the_train_step(filename, smoke_run):
  """train.compute_dtype=bfloat16 puts bf16 ops in the traced step and grad_accum_steps=4 a
  scan of length 4 (make_train_step's accumulation): no task may drop the settings."""
  config = load_config(filename, "smoke")
  with config.unlocked():
    for key, prerequisite in prerequisites(config).items():
      config[key] = smoke_run(prerequisite)[0]
  spec = train.dataset_spec(config.data)
  batch = {name: jax.ShapeDtypeStruct((config.train.batch_size, *shape), dtype)
           for name, (shape, dtype) in spec.example_features().items()}
  key = jax.random.PRNGKey(0)

  def traced_step(**settings) -> str:
    with config.unlocked():
      config.train.update(settings)
    task = tasks.create_task(config, spec)
    state = jax.eval_shape(task.init, key, batch)
    return str(jax.make_jaxpr(task.train_step)(state, batch, key))

  default = traced_step()
  if config.model.name in OWN_TRAIN_STEP:
    with pytest.raises(UserError, match="set train.compute_dtype=float32 and "
                                        "train.grad_accum_steps=1"):
      traced_step(compute_dtype="bfloat16")
    return
  assert "bf16" not in default
  assert "bf16" in traced_step(compute_dtype="bfloat16")
  accumulated = traced_step(compute_dtype="float32", grad_accum_steps=4)
  assert accumulated.count("length=4") > default.count("length=4")


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


def test_a_run_config_from_before_new_keys_reads_them_as_defaults(tmp_path):
  # A classifier or VQ-VAE trained before train.compute_dtype existed is still usable.
  stored = load_config("fmnist_classifier.py").to_dict()
  del stored["train"]["compute_dtype"], stored["train"]["grad_accum_steps"]
  stored["train"]["batch_size"] = 7
  path = tmp_path / "config.json"
  path.write_text(json.dumps(stored))
  config = config_defaults.read_run_config(str(path))
  assert (config.train.compute_dtype, config.train.grad_accum_steps) == ("float32", 1)
  assert config.train.batch_size == 7 and config.model.to_dict() == stored["model"]
  assert not config.data.to_dict().keys() - stored["data"].keys()

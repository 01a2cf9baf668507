"""Every config loads, locks, validates and has a :smoke variant."""

import ast
import glob
import json
import math
import os

import jax
import ml_collections
import pytest

from conftest import REPO, load_config, provide_prerequisites
from gen_jax import config_defaults, parallel, tasks, train
from gen_jax.errors import UserError
from gen_jax.tasks import common

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
    provide_prerequisites(config, smoke_run)
  tasks.create_task(config, train.dataset_spec(config.data))


def matmul_input_dtypes(jaxpr, found=None) -> list[str]:
  """The dtype of the first operand of every dot_general / conv in `jaxpr`, nested included."""
  found = [] if found is None else found
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
      found.append(str(eqn.invars[0].aval.dtype))
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(inner, "eqns"):
          matmul_input_dtypes(inner, found)
  return found


@pytest.mark.parametrize("filename", CONFIG_FILES)
def test_precision_and_accumulation_settings_reach_the_train_step(filename, smoke_run):
  """With train.compute_dtype=bfloat16 most matrix products and convolutions of the traced
  step take bf16 inputs (the network; losses may stay fp32), and grad_accum_steps=4 adds a
  scan of length 4 (make_train_step's accumulation): no task may silently drop them."""
  config = load_config(filename, "smoke")
  with config.unlocked():
    provide_prerequisites(config, smoke_run)
  spec = train.dataset_spec(config.data)
  batch = {name: jax.ShapeDtypeStruct((config.train.batch_size, *shape), dtype)
           for name, (shape, dtype) in spec.example_features().items()}
  key = jax.random.PRNGKey(0)

  def traced_step(**settings):
    with config.unlocked():
      config.train.update(settings)
    task = tasks.create_task(config, spec)
    state = jax.eval_shape(task.init, key, batch)
    return jax.make_jaxpr(task.train_step)(state, batch, key).jaxpr

  default = traced_step()
  supports = tasks.create_task(config, spec).supports  # the task's declaration decides
  if common.BFLOAT16 in supports:
    assert set(matmul_input_dtypes(default)) == {"float32"}
    mixed = matmul_input_dtypes(traced_step(compute_dtype="bfloat16"))
    assert mixed.count("bfloat16") > len(mixed) / 2, mixed
  else:
    with pytest.raises(UserError, match="set train.compute_dtype=float32"):
      traced_step(compute_dtype="bfloat16")
  with config.unlocked():
    config.train.compute_dtype = "float32"
  if common.GRAD_ACCUM in supports:
    accumulated = traced_step(grad_accum_steps=4)
    assert str(accumulated).count("length=4") > str(default).count("length=4")
  else:
    with pytest.raises(UserError, match="set train.grad_accum_steps=1"):
      traced_step(grad_accum_steps=4)


def config_file_imports(filename: str) -> tuple[set[str], set[str]]:
  """(modules and names it imports, the config_defaults functions it calls)."""
  with open(os.path.join(REPO, "configs", filename)) as f:
    tree = ast.parse(f.read())
  imported, called = set(), set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id == "config_defaults"):
      called.add(node.attr)
  return imported, called


@pytest.mark.parametrize("filename", CONFIG_FILES)
def test_a_config_is_self_contained(filename):
  # Every value a config resolves to is in its file or in config_defaults' shared blocks
  # (base config, smoke shrink, variant helper, FID and classifier settings): it imports
  # no other config file, and config_defaults has no helper that would load one.
  imported, called = config_file_imports(filename)
  assert imported <= {"ml_collections", "gen_jax.config_defaults"}, imported
  assert called <= {"base_config", "finalize", "smoke_variant", "fid_config",
                    "classifier_recipe"}, called


def test_smoke_variant_refuses_a_key_the_config_lacks():
  config = config_defaults.base_config()
  config.model.latent_dim = 32
  config_defaults.smoke_variant({"model.latent_dim": 4})(config)
  assert config.model.latent_dim == 4 and config.train.num_steps == 20  # shrunk too
  with pytest.raises(KeyError, match="model.latent_dims"):
    config_defaults.smoke_variant({"model.latent_dims": 4})(config)


@pytest.mark.parametrize("filename", CONFIG_FILES)
def test_no_two_config_blocks_are_one_object(filename):
  # A block copied from another (vqvae2_prior's two priors) must not alias it.
  seen = set()

  def walk(node):
    assert id(node) not in seen
    seen.add(id(node))
    for value in node.values():
      if isinstance(value, ml_collections.ConfigDict):
        walk(value)

  walk(load_config(filename))


def test_unknown_variant():
  with pytest.raises(ValueError, match="unknown config variant 'smok'"):
    load_config("pixelcnn.py", "smok")


SMOKE_VARIANTS = [(f, "smoke") for f in CONFIG_FILES] + [("gated_pixelcnn.py", "conditional_smoke"),
                                                          ("semi_supervised_vae.py", "m1m2_smoke")]


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

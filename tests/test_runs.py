"""The runs module: a trained run as an object, and the import floors it keeps."""

import ast
import os

import jax
import numpy as np

from gen_jax import runs
from tests.conftest import REPO

LOWER_FLOORS = ("tasks", "data", "models", "objectives", "nn")
UPPER_MODULES = {"gen_jax.train", "gen_jax.main", "gen_jax.bench", "gen_jax.reproduce"}


def imported_modules(path: str) -> set[str]:
  """Every module a Python file imports, at any depth (function-level imports too)."""
  tree = ast.parse(open(path).read())
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f"{node.module}.{alias.name}" for alias in node.names)
  return names


def above_runs(modules: set[str]) -> set[str]:
  """The modules of `modules` on a floor above runs.py: the trainer, the entry points and
  the applications (a package: its submodules too)."""
  return {m for m in modules
          if m in UPPER_MODULES or m == "gen_jax.applications"
          or m.startswith("gen_jax.applications.")}


def test_lower_floors_never_import_the_trainer_entry_points_or_applications():
  offenders = []
  for floor in LOWER_FLOORS:
    for root, _, files in os.walk(os.path.join(REPO, "gen_jax", floor)):
      for name in files:
        if name.endswith(".py"):
          path = os.path.join(root, name)
          bad = above_runs(imported_modules(path))
          offenders += [f"{os.path.relpath(path, REPO)} imports {m}" for m in sorted(bad)]
  runs_imports = imported_modules(os.path.join(REPO, "gen_jax", "runs.py"))
  offenders += [f"gen_jax/runs.py imports {m}" for m in sorted(above_runs(runs_imports))]
  assert not offenders, offenders


def test_applications_import_runs_and_below_never_the_trainer():
  """gen_jax/applications/ sits beside train.py: it reaches a trained model through runs."""
  offenders = []
  directory = os.path.join(REPO, "gen_jax", "applications")
  for name in sorted(os.listdir(directory)):
    if name.endswith(".py"):
      bad = imported_modules(os.path.join(directory, name)) & (UPPER_MODULES | {"gen_jax.workdir"})
      offenders += [f"gen_jax/applications/{name} imports {m}" for m in sorted(bad)]
  assert not offenders, offenders


def test_no_module_of_the_package_is_over_400_lines():
  """Issue 13: a file a reader can hold in mind; split a module before it grows past 400."""
  long = []
  for root, _, files in os.walk(os.path.join(REPO, "gen_jax")):
    for name in [n for n in files if n.endswith(".py")]:
      with open(os.path.join(root, name)) as f:
        count = sum(1 for _ in f)
      if count > 400:
        long.append(f"{os.path.relpath(os.path.join(root, name), REPO)}: {count} lines")
  assert not long, long


def test_import_graph_check_sees_function_level_imports(tmp_path):
  path = tmp_path / "m.py"
  path.write_text("def f():\n  from gen_jax import train\n  return train\n")
  assert "gen_jax.train" in imported_modules(str(path))
  path.write_text("def f():\n  from gen_jax.applications import latent_space\n")
  assert above_runs(imported_modules(str(path))) == {"gen_jax.applications",
                                                     "gen_jax.applications.latent_space"}


def test_a_loaded_run_restores_the_trained_state_and_samples(smoke_run):
  workdir, _ = smoke_run("pixelcnn.py")
  run = runs.load(workdir)
  assert run.step == run.config.train.num_steps
  evals = run.metrics("eval")
  assert evals and evals[-1]["step"] == run.step
  assert runs.last_eval_metric(workdir, "bits_per_dim") == evals[-1]["bits_per_dim"]
  images = run.sample(3, jax.random.PRNGKey(1))
  assert images.shape == (3, *run.spec.image_shape) and images.dtype == np.uint8
  again = run.sample(3, jax.random.PRNGKey(1))
  np.testing.assert_array_equal(images, again)

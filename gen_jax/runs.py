"""A run directory as an object: its config, task, restored state and metrics.

What stage 2 (VQ priors, FID's classifier), the Python API and every
evaluation of a trained model build on. It imports neither `train` nor `main`.

  run = runs.load("workdirs/pixelcnn")
  images = run.sample(16, jax.random.key(0))     # uint8 [16, H, W, C]
"""

import dataclasses
import json
import os

import jax
import numpy as np

from gen_jax import checkpointing, config_defaults, data, parallel, tasks
from gen_jax.errors import UserError


def dataset_spec(data_config) -> data.DatasetSpec:
  """The dataset's static facts after preprocessing (binarized data has 2 levels)."""
  spec = data.get_spec(data_config)  # unknown names are a UserError
  if data_config.binarization == "none":
    return spec
  if spec.image_shape is None or spec.num_levels != 256:
    raise UserError(f"data.binarization={data_config.binarization} applies to 8-bit images; "
                    f"{data_config.name} has {spec.num_levels} levels "
                    f"{'per pixel' if spec.image_shape else '(not images)'}: "
                    "set data.binarization=none")
  return dataclasses.replace(spec, num_levels=2)


def example_batch(config, spec: data.DatasetSpec, mesh) -> dict:
  """A global batch with the data's shapes and dtypes (zeros), for init and restore."""
  local = config.train.batch_size // jax.process_count()
  batch = {name: np.zeros((local, *shape), dtype)
           for name, (shape, dtype) in spec.example_features().items()}
  return parallel.to_global(batch, mesh)


def run_keys(config, mesh):
  """(init, train, eval, sample) keys of a run, replicated on `mesh`."""
  return parallel.replicate(jax.random.split(jax.random.PRNGKey(config.seed), 4), mesh)


def abstract_checkpoint(task, init_rng, train_rng, example_batch, mesh) -> dict:
  """ShapeDtypeStructs (replicated) of what a checkpoint holds: {'state', 'rng'}."""
  replicated = parallel.replicated(mesh)
  abstract = {"state": jax.eval_shape(task.init, init_rng, example_batch),
              "rng": jax.ShapeDtypeStruct(train_rng.shape, train_rng.dtype)}
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), abstract)


def read_config(workdir: str):
  """The resolved config a run stored in workdir/config.json (newer keys at defaults)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise UserError(f"{workdir} holds no run (no config.json)")
  return config_defaults.read_run_config(path)


def read_metrics(workdir: str, split: str | None = None) -> list[dict]:
  """The records of workdir/metrics.jsonl in order (only `split`'s when given)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if split is None or r.get("split") == split]


def last_eval_metric(workdir: str, name: str) -> float | None:
  """The newest eval value of metric `name` in workdir/metrics.jsonl, or None."""
  values = [r[name] for r in read_metrics(workdir, "eval") if name in r]
  return float(values[-1]) if values else None


def restore_state(config, workdir: str, mesh=None, task=None):
  """(state, step) of the newest readable checkpoint of the run in `workdir`."""
  mesh = mesh or parallel.create_mesh()
  spec = dataset_spec(config.data)
  task = task or tasks.create_task(config, spec)
  init_rng, train_rng, _, _ = run_keys(config, mesh)
  # Read-only: a reader never cleans or moves what a trainer of that run may be writing.
  checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    restored = checkpointer.restore_latest(abstract_checkpoint(
        task, init_rng, train_rng, example_batch(config, spec, mesh), mesh))
  finally:
    checkpointer.close()
  if restored is None:
    raise UserError(f"no checkpoint in {checkpointer.directory}")
  return restored[0]["state"], int(restored[1]["step"])


@dataclasses.dataclass
class Run:
  """A trained run: config, dataset spec, task, restored state and its step."""
  workdir: str
  config: object
  spec: data.DatasetSpec
  task: object
  state: object
  step: int
  mesh: object

  def metrics(self, split: str | None = None) -> list[dict]:
    return read_metrics(self.workdir, split)

  def sample(self, num: int, rng, labels=None) -> np.ndarray:
    """uint8 [num, H, W, C] (or the family's sample type) drawn from the run's model."""
    if labels is not None:
      return np.asarray(jax.device_get(self.task.sample(self.state, rng, num, labels)))
    sample = jax.jit(self.task.sample, static_argnums=2)
    return np.asarray(jax.device_get(sample(self.state, rng, num)))

  def complete(self, images, rng, start: int, labels=None, seed: int = 0) -> np.ndarray:
    """Redraws sub-pixels start.. of 8-bit `images` (raster order, as the dataset stores
    them) from the model, after the run's own preprocessing (data.model_inputs: a
    binarized model completes the binarized images). Returns the model's levels."""
    if self.task.complete is None:
      raise UserError(f"{self.config.model.name} cannot complete images")
    inputs = data.model_inputs(np.asarray(images), self.config.data.binarization, seed)
    complete = jax.jit(self.task.complete, static_argnums=4)
    return np.asarray(jax.device_get(complete(self.state, rng, inputs, labels, start)))


def load(workdir: str, config=None, mesh=None) -> Run:
  """The run in `workdir` at its newest checkpoint (`config` overrides the stored one)."""
  config = config if config is not None else read_config(workdir)
  mesh = mesh or parallel.create_mesh()
  spec = dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  state, step = restore_state(config, workdir, mesh, task)
  return Run(workdir, config, spec, task, state, step, mesh)

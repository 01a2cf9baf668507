"""A run directory as an object: its config, task, restored state and metrics.

What stage 2 (VQ priors, FID's classifier), the Python API and every
evaluation of a trained model build on. It imports neither `train` nor `main`.

  run = runs.load("workdirs/pixelcnn")
  images = run.sample(16, jax.random.key(0))     # uint8 [16, H, W, C]
  nats = run.log_prob(test_images)               # [N] log p(x) (or the task's bound)
  bits = run.bits_per_dim(test_images)           # [N], eval's bits/dim per image

Images passed in are 8-bit [N, H, W, C] (or [N, H, W]) and go through eval's
preprocessing (binarization with eval's seeds, batches of train.eval_batch_size
padded and sharded over the mesh as eval's are), so `log_prob` of the test split
is eval's per-example score and its mean eval's bits/dim.
"""

import dataclasses
import json
import math
import os
from typing import Callable

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


def checkpoint_directory(config, workdir: str) -> str:
  """Where a trained run's state is read from: workdir/best, the step picked on the
  validation split, when config.train.select_metric is set; else workdir/checkpoints."""
  return os.path.join(workdir, "best" if config.train.get("select_metric") else "checkpoints")


def training_evals(workdir: str) -> list[dict]:
  """The evals a training run wrote: on its validation split ('validation') when it has
  one, else on the eval split ('eval')."""
  records = read_metrics(workdir)
  return ([r for r in records if r.get("split") == "validation"] or
          [r for r in records if r.get("split") == "eval"])


def restore_state(config, workdir: str, mesh=None, task=None):
  """(state, step) of the run in `workdir`: its newest readable checkpoint, or the one
  picked on validation (checkpoint_directory)."""
  mesh = mesh or parallel.create_mesh()
  spec = dataset_spec(config.data)
  task = task or tasks.create_task(config, spec)
  init_rng, train_rng, _, _ = run_keys(config, mesh)
  # Read-only: a reader never cleans or moves what a trainer of that run may be writing.
  directory = checkpoint_directory(config, workdir)
  if not os.path.isdir(directory):
    raise UserError(f"no checkpoint in {directory}")
  checkpointer = checkpointing.Checkpointer(directory, read_only=True)
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
  compiled: dict = dataclasses.field(default_factory=dict, repr=False)  # name -> jit'd fn
  loaded_eval_split: object = dataclasses.field(default=None, repr=False)  # see eval_split

  def metrics(self, split: str | None = None) -> list[dict]:
    return read_metrics(self.workdir, split)

  def eval_split(self) -> data.Split:
    """The eval split of the 8-bit images the model reads (a VQ prior's: its stage 1's),
    as stored (no preprocessing), loaded once."""
    if self.loaded_eval_split is None:
      self.loaded_eval_split = data.load_splits(self.image_data_config)[1]
    return self.loaded_eval_split

  def require(self, purpose: str, *hooks: str) -> None:
    """A UserError naming `purpose` unless the task has every one of `hooks`."""
    missing = [hook for hook in hooks if getattr(self.task, hook) is None]
    if missing:
      raise UserError(f"{purpose} needs a model with {' and '.join(missing)}; "
                      f"{self.config.model.name} has no {missing[0]}")

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

  @property
  def image_data_config(self):
    """The data config of the images the model scores (a VQ prior's: its stage 1's)."""
    if self.spec.stage1 is None:
      return self.config.data
    return tasks.vq_prior.image_data_config(self.spec.stage1.config, self.config.data)

  @property
  def image_spec(self) -> data.DatasetSpec:
    """The spec of the images the model scores (a VQ prior's: its stage 1's images)."""
    return self.spec if self.spec.stage1 is None else self.spec.stage1.image_spec

  @property
  def image_shape(self) -> tuple[int, ...]:
    spec = self.image_spec
    if spec.image_shape is None:
      raise UserError(f"{self.config.model.name} does not model images")
    return tuple(spec.image_shape)

  def check_images(self, images, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    """8-bit images as uint8 [N, H, W, C] of the model's shape (a UserError otherwise)."""
    images = np.asarray(images)
    if images.shape[1:] == self.image_shape[:-1] and self.image_shape[-1] == 1:
      images = images[..., None]
    if images.shape[1:] != self.image_shape or not len(images):
      raise UserError(f"images of shape {images.shape}: this run models [N, "
                      f"{', '.join(map(str, self.image_shape))}] images")
    if images.min() < 0 or images.max() > 255 or not np.all(np.equal(np.mod(images, 1), 0)):
      raise UserError("images must hold 8-bit integer levels 0..255")
    conditional = bool(self.config.model.get("class_conditional", False))
    if conditional and labels is None:
      raise UserError(f"{self.config.model.name} is class-conditional: pass labels")
    return images.astype(np.uint8), np.asarray(labels, np.int32) if conditional else None

  def map_batches(self, name: str, fn: Callable, images, labels=None, rng=None) -> object:
    """fn(state, batch, rng) -> [B, ...] pytree over `images` in eval's batches (eval's
    binarization, padding and sharding), concatenated; compiled once per `name`.
    rng: the run's eval key when None (eval's draws)."""
    images, labels = self.check_images(images, labels)
    if name not in self.compiled:
      replicated = parallel.replicated(self.mesh)
      self.compiled[name] = jax.jit(
          fn, in_shardings=(replicated, parallel.batch_sharded(self.mesh), replicated),
          out_shardings=replicated)
    if rng is not None and jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
      rng = jax.random.key_data(rng)  # the tasks take raw (uint32) keys, as train's are
    rng = (run_keys(self.config, self.mesh)[2] if rng is None
           else parallel.replicate(rng, self.mesh))
    outputs = [jax.device_get(self.compiled[name](
        self.state, parallel.to_global(batch, self.mesh), rng)) for batch in data.eval_batches(
            data.image_split(images, labels), global_batch_size=self.config.train.eval_batch_size,
            process_index=jax.process_index(), process_count=jax.process_count(),
            binarization=self.image_data_config.binarization, seed=self.config.seed)]
    # eval_batches pads the last batch only: the real rows are the first len(images)
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:len(images)], *outputs)

  def log_prob_fn(self, kind: str | None = None) -> Callable:
    """(state, image batch, rng) -> [B] nats: the task's log_prob, or the bound `kind`."""
    task = self.task
    if kind is not None and kind != task.log_prob_kind:
      if kind not in task.other_log_probs:
        raise UserError(f"{self.config.model.name} has no log_prob kind {kind!r}; it has "
                        f"{', '.join([task.log_prob_kind, *task.other_log_probs])}")
      score = task.other_log_probs[kind]
    elif task.log_prob is None:
      raise UserError(f"{self.config.model.name} assigns no likelihood (no log_prob)")
    else:
      score = task.log_prob
    if task.image_batch is None:
      return score
    return lambda state, batch, rng: score(
        state, {**task.image_batch(state, batch["image"]), "mask": batch["mask"]}, rng)

  def log_prob(self, images, rng=None, labels=None, kind: str | None = None) -> np.ndarray:
    """[N] float64 nats: log p(x) of 8-bit images, or the bound self.task.log_prob_kind
    names ('elbo', 'vq-bound', ...; `kind` picks another, e.g. 'iwae-20'). rng: the
    run's eval key when None (then the test split scores as eval scores it)."""
    return np.asarray(self.map_batches(f"log_prob/{kind}", self.log_prob_fn(kind), images,
                                       labels, rng), np.float64)

  def bits_per_dim(self, images, rng=None, labels=None, kind: str | None = None) -> np.ndarray:
    """[N] -log2 p(x) / D, D = H W C: eval's bits/dim, per image."""
    return -self.log_prob(images, rng, labels, kind) / (math.prod(self.image_shape)
                                                        * math.log(2.0))

  def encode(self, images, labels=None):
    """Codes of 8-bit images, preprocessed as eval's (VAE: posterior means [N, Z];
    VQ-VAE: {level: code indices [N, h, w]})."""
    if self.task.encode is None:
      raise UserError(f"{self.config.model.name} has no encoder")
    encode = self.task.encode
    return self.map_batches("encode", lambda state, batch, rng: encode(
        state, batch["image"], batch.get("label")), images, labels)

  @property
  def image_levels(self) -> int:
    """Levels of the images the model reads (2 when binarized, 256 for 8-bit data)."""
    return self.image_spec.num_levels

  def model_inputs(self, images, labels=None) -> np.ndarray:
    """8-bit images as eval feeds them to the model (eval's binarization): uint8 levels
    0..image_levels-1 (likelihoods.to_uint8(x, 0, run.image_levels - 1) shows them
    on 0..255)."""
    return self.map_batches("model_inputs", lambda state, batch, rng: batch["image"], images,
                            labels)

  def reconstruct(self, images, labels=None) -> np.ndarray:
    """uint8 8-bit decode(encode(x)) of 8-bit images through eval's preprocessing (VAE:
    the decoder mean at the posterior mean; VQ-VAE: the decoded nearest codes)."""
    self.require("reconstruction", "encode", "decode")
    encode, decode = self.task.encode, self.task.decode
    return self.map_batches("reconstruct", lambda state, batch, rng: decode(
        state, encode(state, batch["image"], batch.get("label")), batch.get("label")),
        images, labels)

  def encode_latents(self, images, labels=None) -> np.ndarray:
    """[N, Z] float points of the continuous latent space (Task.encode_latents) of 8-bit
    images through eval's preprocessing."""
    self.require("a continuous latent space", "encode_latents", "decode_latents")
    encode = self.task.encode_latents
    return self.map_batches("encode_latents", lambda state, batch, rng: encode(
        state, batch["image"], batch.get("label")), images, labels)

  def decode_latents(self, latents, labels=None) -> np.ndarray:
    """uint8 8-bit images [N, H, W, C] of latents [N, Z] (Task.decode_latents)."""
    self.require("a continuous latent space", "encode_latents", "decode_latents")
    if "decode_latents" not in self.compiled:
      self.compiled["decode_latents"] = jax.jit(self.task.decode_latents)
    conditional = bool(self.config.model.get("class_conditional", False))
    labels = np.asarray(labels, np.int32) if conditional and labels is not None else None
    return np.asarray(jax.device_get(self.compiled["decode_latents"](
        self.state, np.asarray(latents, np.float32), labels)))

  def posterior(self, images, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """(means [N, Z], log-variances [N, Z]) of q(z|x) of 8-bit images through eval's
    preprocessing (the VAEs)."""
    self.require("a Gaussian posterior q(z|x)", "posterior")
    posterior = self.task.posterior
    return self.map_batches("posterior", lambda state, batch, rng: posterior(
        state, batch["image"], batch.get("label")), images, labels)

  def decode(self, codes, labels=None) -> np.ndarray:
    """uint8 images [N, H, W, C] of codes (VAE: decoder means; VQ-VAE: rounded means)."""
    if self.task.decode is None:
      raise UserError(f"{self.config.model.name} has no decoder")
    conditional = bool(self.config.model.get("class_conditional", False))
    labels = np.asarray(labels, np.int32) if conditional and labels is not None else None
    return np.asarray(jax.device_get(jax.jit(self.task.decode)(self.state, codes, labels)))


def load(workdir: str, config=None, mesh=None) -> Run:
  """The run in `workdir` at its newest checkpoint (`config` overrides the stored one)."""
  config = config if config is not None else read_config(workdir)
  mesh = mesh or parallel.create_mesh()
  spec = dataset_spec(config.data)
  task = tasks.create_task(config, spec)
  state, step = restore_state(config, workdir, mesh, task)
  return Run(workdir, config, spec, task, state, step, mesh)

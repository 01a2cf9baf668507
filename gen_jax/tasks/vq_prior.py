"""Stage 2 of VQ-VAE / VQ-VAE-2: Gated PixelCNN priors over the codes of a trained stage 1.

Data: the dataset 'vq_codes' (registered in gen_jax/tasks/__init__.py) is the
stage-1 run's image data turned into codes. Given data.vqvae_workdir (a
reference to config.vqvae_workdir), the newest stage-1 checkpoint encodes the
train and eval images once; the codes, and each image's decoder NLL
-log p(x | codes) (the stage-1 discretized Gaussian), are cached in the stage-1
workdir, codes/<step>_<key>.npz, keyed by the checkpoint step, the stage-1
config and the splits, and reused by every prior trained on that run.

Model: one CodePrior per scale, top first; a scale after the first is
conditioned on the codes of the one before (VQ-VAE-2: bottom | top). The
priors train together: disjoint parameters, the loss is their summed NLL. The
state's params also hold a frozen copy of the stage-1 parameters (restored when
the task is created), so eval and sampling need nothing outside the checkpoint:

  params = {"priors": {scale: ...}, "vqvae": stage-1 {"model", "codebooks"}}

Eval: `bits_per_dim` = (-log p(codes) - log p(x | codes)) / (D ln 2) with D the
image's dimensions: an upper bound on the 8-bit data's -log2 p(x) / D, since
p(x) = sum_z p(z) p(x | z) >= p(codes) p(x | codes). Its parts are reported as
`prior_bits_per_dim` and `decoder_bits_per_dim`, and `<scale>_bits_per_code`.
"""

import dataclasses
import functools
import hashlib
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from gen_jax import checkpointing, config_defaults, data, runs, sampling
from gen_jax.data.sources import DatasetSpec, VQStage1
from gen_jax.errors import UserError
from gen_jax.models.code_prior import CodePrior
from gen_jax.models.vqvae import MODELS
from gen_jax.objectives import likelihoods
from gen_jax.tasks import vq
from gen_jax.tasks.common import (Task, eval_params, make_init, make_optimizer, module_functions,
                                  stateless_train_step)

DATASET = "vq_codes"
STAGE1_FOR_PRIOR = {"vqvae_prior": "vqvae", "vqvae2_prior": "vqvae2"}


# ------------------------------------------------------------------ the stage-1 run

def read_vqvae_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config of the stage-1 run in `workdir` (its config.json)."""
  if not workdir:
    raise UserError("config.vqvae_workdir is not set: train stage 1 first (python -m "
                    "gen_jax.main --config configs/vqvae.py --workdir DIR) and pass "
                    "--config.vqvae_workdir=DIR")
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise UserError(f"config.vqvae_workdir={workdir} holds no stage-1 run (no {path}); "
                    "train configs/vqvae.py or configs/vqvae2.py there first")
  config = config_defaults.read_run_config(path)
  name = config.model.name
  if name not in MODELS:
    raise UserError(f"config.vqvae_workdir={workdir} holds a {name!r} run, not a VQ-VAE "
                    f"({' or '.join(MODELS)})")
  return config


def image_data_config(stage1, data_config) -> ml_collections.ConfigDict:
  """The stage-1 run's data, with this run's splits, limits and (if set) data dirs."""
  image_config = ml_collections.ConfigDict(stage1.data.to_dict())
  for key in ("train_split", "eval_split", "max_train_examples", "max_eval_examples"):
    image_config[key] = data_config[key]
  for key in ("data_dir", "idx_dir"):  # the data may have moved since stage 1
    if data_config[key]:
      image_config[key] = data_config[key]
  return image_config


def image_spec(stage1) -> DatasetSpec:
  spec = data.get_spec(stage1.data)
  if stage1.data.binarization != "none":
    spec = dataclasses.replace(spec, num_levels=2)
  return spec


def stage1_step(workdir: str) -> int:
  """The step of the stage-1 run's newest checkpoint."""
  step = checkpointing.newest_step(workdir)
  if step is None:
    raise UserError(f"config.vqvae_workdir={workdir} has no checkpoint yet; let stage 1 train")
  return step


def restore_stage1(stage1, workdir: str):
  """(stage-1 TrainState, step) of the newest checkpoint, as a clear error when unusable."""
  stage1_step(workdir)  # no checkpoint at all: say so plainly
  try:
    return runs.restore_state(stage1, workdir)
  except UserError as error:
    raise UserError(f"config.vqvae_workdir={workdir}: {error}") from None


# ------------------------------------------------------------------ the codes dataset

def encode(state, images, *, apply_fn, settings: vq.VQSettings):
  """images -> ({scale: codes [B, h, w]}, decoder NLL -log p(x | codes) [B] nats)."""
  mean, _, codes, _ = vq.autoencode(state.params, images, apply_fn=apply_fn, settings=settings)
  nll = vq.decoder_nll(images, mean, state.aux["reconstruction_variance"], settings.num_levels)
  return codes, nll


def extract_codes(encode_fn, state, split: data.Split, scales, batch_size: int,
                  binarization: str) -> dict[str, np.ndarray]:
  """{'codes_<scale>': [N, h, w] int16, 'decoder_nll': [N] float32} of a whole split."""
  parts = {f"codes_{scale}": [] for scale in scales} | {"decoder_nll": []}
  for batch in data.eval_batches(split, global_batch_size=batch_size, binarization=binarization):
    codes, nll = jax.device_get(encode_fn(state, batch["image"]))
    keep = batch["mask"] > 0
    for scale in scales:
      parts[f"codes_{scale}"].append(codes[scale][keep].astype(np.int16))
    parts["decoder_nll"].append(nll[keep].astype(np.float32))
  return {name: np.concatenate(values) for name, values in parts.items()}


def codes_cache_path(workdir: str, step: int, stage1, image_config) -> str:
  """codes/<step>_<key>.npz, the key a hash of what decides the codes: the stage-1 model
  and data settings and the splits read (not, e.g., its logging settings)."""
  decisive = stage1.model.to_json(sort_keys=True) + image_config.to_json(sort_keys=True)
  key = hashlib.sha256(decisive.encode()).hexdigest()[:12]
  return os.path.join(workdir, "codes", f"{step}_{key}.npz")


def load_codes(data_config) -> tuple[dict, dict]:
  """(train, eval) feature dicts of the codes, from the cache or extracted once."""
  workdir = data_config.vqvae_workdir
  stage1 = read_vqvae_config(workdir)
  image_config = image_data_config(stage1, data_config)
  path = codes_cache_path(workdir, stage1_step(workdir), stage1, image_config)
  if not os.path.exists(path):
    state, step = restore_stage1(stage1, workdir)
    spec = image_spec(stage1)
    create_params, apply_fn, scales, _ = vq.create_vq_model(stage1.model, spec)
    del create_params
    settings = vq.create_vq_settings(stage1.model, spec, scales)
    encode_fn = jax.jit(functools.partial(encode, apply_fn=apply_fn, settings=settings))
    splits = data.load_splits(image_config)
    extracted = [extract_codes(encode_fn, state, split, scales, stage1.train.eval_batch_size,
                               stage1.data.binarization) for split in splits]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = path + ".tmp.npz"
    np.savez(temporary, **{f"train/{k}": v for k, v in extracted[0].items()},
             **{f"eval/{k}": v for k, v in extracted[1].items()})
    os.replace(temporary, path)
    logging.info("extracted the codes of step %d of %s into %s", step, workdir, path)
  with np.load(path) as stored:
    splits = [{name.split("/", 1)[1]: stored[name].astype(np.int32 if "codes" in name
                                                            else np.float32)
               for name in stored.files if name.startswith(prefix + "/")}
              for prefix in ("train", "eval")]
  return splits[0], splits[1]


def codes_spec(data_config) -> DatasetSpec:
  """The 'vq_codes' dataset of the run in data_config.vqvae_workdir (read from its config.json)."""
  stage1 = read_vqvae_config(data_config.vqvae_workdir)
  spec = image_spec(stage1)
  model_class = MODELS[stage1.model.name]
  latent_shapes = model_class.latent_shapes(spec.image_shape, stage1.model.num_downsamples)
  features = {f"codes_{scale}": (latent_shapes[scale], "int32") for scale in model_class.scales}
  features["decoder_nll"] = ((), "float32")
  return DatasetSpec(
      image_shape=None, num_levels=stage1.model.codebook_size, num_classes=0, features=features,
      load=load_codes,
      stage1=VQStage1(config=stage1, image_spec=spec, scales=model_class.scales,
                      latent_shapes=latent_shapes))


# ------------------------------------------------------------------ the priors

def prior_logits(apply_fns, params, batch, scales):
  """{scale: logits [B, h, w, K]}, each scale after the first given the codes before it."""
  logits = {}
  for index, scale in enumerate(scales):
    condition = batch[f"codes_{scales[index - 1]}"] if index else None
    logits[scale] = apply_fns[scale](params["priors"][scale], batch[f"codes_{scale}"], condition)
  return logits


def prior_nll(apply_fns, params, batch, scales) -> dict:
  """{scale: -log p(codes of the scale | coarser codes) [B] nats}."""
  logits = prior_logits(apply_fns, params, batch, scales)
  return {scale: likelihoods.categorical_nll(logits[scale], batch[f"codes_{scale}"])
          for scale in scales}


def prior_loss(params, batch, rng, *, apply_fns, scales, latent_shapes, num_dims):
  """The priors' NLL of the codes in bits per image dimension (batch mean)."""
  del rng
  nll = prior_nll(apply_fns, params, batch, scales)
  metrics = {f"{scale}_bits_per_code":
             jnp.mean(nll[scale]) / (math.prod(latent_shapes[scale]) * math.log(2.0))
             for scale in scales}
  bits = jnp.mean(likelihoods.bits_per_dim(sum(nll.values()), num_dims))
  return bits, {**metrics, "prior_bits_per_dim": bits}


def prior_eval_step(state, batch, rng, *, apply_fns, scales, latent_shapes, num_dims):
  """Sums over the real rows: the bound bits_per_dim, its two parts, bits per code by scale."""
  del rng
  mask = batch["mask"]
  nll = prior_nll(apply_fns, eval_params(state), batch, scales)
  prior_bits = likelihoods.bits_per_dim(sum(nll.values()), num_dims)  # [B]
  decoder_bits = likelihoods.bits_per_dim(batch["decoder_nll"], num_dims)
  sums = {"bits_per_dim": jnp.sum((prior_bits + decoder_bits) * mask),
          "prior_bits_per_dim": jnp.sum(prior_bits * mask),
          "decoder_bits_per_dim": jnp.sum(decoder_bits * mask),
          "num_examples": jnp.sum(mask)}
  for scale in scales:
    per_code = nll[scale] / (math.prod(latent_shapes[scale]) * math.log(2.0))
    sums[f"{scale}_bits_per_code"] = jnp.sum(per_code * mask)
  return sums


def prior_log_prob(state, batch, rng, *, apply_fns, scales, latent_shapes, num_dims):
  """The 'vq-bound' [B] in nats: log p(codes) + log p(x | codes) <= log p(x), from the
  priors (EMA params) and the batch's stage-1 decoder NLL (eval's bits_per_dim)."""
  del rng, latent_shapes, num_dims
  nll = prior_nll(apply_fns, eval_params(state), batch, scales)
  return -(sum(nll.values()) + batch["decoder_nll"])


def image_codes(state, images, *, apply_fn, settings, variance, scales) -> dict:
  """The batch prior_log_prob reads, from images [B, H, W, C]: the frozen stage-1 model's
  codes and decoder NLL (`variance`: stage 1's reconstruction variance)."""
  mean, _, codes, _ = vq.autoencode(state.params["vqvae"], images, apply_fn=apply_fn,
                                    settings=settings)
  batch = {f"codes_{scale}": codes[scale] for scale in scales}
  batch["decoder_nll"] = vq.decoder_nll(images, mean, variance, settings.num_levels)
  return batch


def sample_scale(apply_prior, params, rng, num, shape, condition, *, cached: bool):
  """Codes [num, h, w] of one scale by ancestral sampling (cached: one position per layer)."""
  grid = jnp.zeros((num, *shape, 1), jnp.int32)
  if cached:
    return sampling.sample_autoregressive_cached(
        lambda codes: apply_prior(params, codes, condition, method="init_cache"),
        lambda cache, codes, row, column: apply_prior(params, cache, codes, row, column,
                                                      method="logits_at"),
        rng, grid)[..., 0]
  logits_fn = lambda codes: apply_prior(params, codes[..., 0], condition)[..., None, :]
  return sampling.sample_autoregressive(logits_fn, rng, grid)[..., 0]


def prior_sample(state, rng, num: int, *, apply_prior, decode_fn, scales, latent_shapes,
                 num_levels: int, cached: bool = True, decode: bool = True):
  """uint8 8-bit images [num, H, W, C]: codes from the priors (top first), decoded by the
  frozen stage-1 decoder (vq.decode_codes); decode=False: the codes, {scale: [num, h, w]}
  (what `gen_jax.bench` times)."""
  priors = eval_params(state)["priors"]
  codes = {}
  for index, scale in enumerate(scales):
    condition = codes[scales[index - 1]] if index else None
    codes[scale] = sample_scale(apply_prior[scale], priors[scale],
                                jax.random.fold_in(rng, index), num, latent_shapes[scale],
                                condition, cached=cached)
  if not decode:
    return codes
  # state.params, not the EMA: the frozen copy is exact there. uint8 8-bit images, as
  # stage 1's decode hook returns them.
  return vq.decode_codes(state.params["vqvae"], codes, apply_fn=decode_fn, num_levels=num_levels)


def create_code_prior(prior_config, num_codes: int, conditioned: bool):
  return lambda rngs: CodePrior(
      num_codes=num_codes, features=prior_config.features, num_layers=prior_config.num_layers,
      kernel_size=prior_config.kernel_size, first_kernel_size=prior_config.first_kernel_size,
      skip_features=prior_config.skip_features, head_features=prior_config.head_features,
      embed_features=prior_config.embed_features,
      condition_num_codes=num_codes if conditioned else 0,
      condition_features=prior_config.condition_features,
      condition_residual=prior_config.condition_residual, rngs=rngs)


def check_prior_config(config, spec: DatasetSpec):
  """The stage-1 run must be the kind this prior models, its scales those configured."""
  if spec.stage1 is None:
    raise UserError(f"{config.model.name} trains on data.name={DATASET!r}, not "
                    f"{config.data.name!r}")
  stage1, scales = spec.stage1.config, spec.stage1.scales
  expected = STAGE1_FOR_PRIOR[config.model.name]
  if stage1.model.name != expected:
    raise UserError(f"config.vqvae_workdir={config.vqvae_workdir} holds a {stage1.model.name!r} "
                    f"run; {config.model.name} needs a {expected!r} run (configs/"
                    f"{config.vqvae_config})")
  if set(config.model.priors.keys()) != set(scales):
    raise UserError(f"model.priors has scales {sorted(config.model.priors.keys())}; the "
                    f"stage-1 run has {list(scales)}")
  for index, scale in enumerate(scales):
    if index and config.model.priors[scale].condition_features <= 0:
      raise UserError(f"model.priors.{scale}.condition_features must be > 0 (the {scale} "
                      f"prior is conditioned on the {scales[index - 1]} codes)")
  if config.data.binarization != "none":
    raise UserError(f"data.binarization={config.data.binarization!r}: codes are not "
                    "binarized (stage 1's own data.binarization applies to its images)")


def create_vq_prior_task(config, spec: DatasetSpec) -> Task:
  check_prior_config(config, spec)
  stage1, scales = spec.stage1.config, spec.stage1.scales
  latent_shapes, images = spec.stage1.latent_shapes, spec.stage1.image_spec
  codebook_size = spec.num_levels  # the codes' distinct values
  create_fns, apply_fns = {}, {}
  for index, scale in enumerate(scales):
    create_fns[scale], apply_fns[scale] = module_functions(
        create_code_prior(config.model.priors[scale], codebook_size, conditioned=index > 0))
  _, decode_fn, _, _ = vq.create_vq_model(stage1.model, images)
  # Restored now, outside any trace (init runs under jit / eval_shape).
  stage1_state = jax.device_get(restore_stage1(stage1, config.vqvae_workdir)[0])
  vqvae_params = stage1_state.params

  def create_params(rng):
    with vq.draws_compile_fast():
      priors = {scale: create_fns[scale](jax.random.fold_in(rng, index))
                for index, scale in enumerate(scales)}
    return {"priors": priors, "vqvae": vqvae_params}

  tx, schedule = make_optimizer(config.train)
  tx = optax.multi_transform({"gradient": tx, "frozen": optax.set_to_zero()},
                             {"priors": "gradient", "vqvae": "frozen"})
  bound = dict(apply_fns=apply_fns, scales=scales, latent_shapes=latent_shapes,
               num_dims=math.prod(images.image_shape))
  sample = functools.partial(prior_sample, apply_prior=apply_fns, decode_fn=decode_fn,
                             scales=scales, latent_shapes=latent_shapes,
                             num_levels=images.num_levels)
  return Task(
      init=make_init(create_params, tx, config.train.ema_decay > 0),
      train_step=stateless_train_step(functools.partial(prior_loss, **bound), tx, schedule,
                                      config.train),
      eval_step=functools.partial(prior_eval_step, **bound),
      log_prob=functools.partial(prior_log_prob, **bound), log_prob_kind="vq-bound",
      image_batch=functools.partial(
          image_codes, apply_fn=decode_fn, settings=vq.create_vq_settings(stage1.model, images,
                                                                          scales),
          variance=np.asarray(stage1_state.aux["reconstruction_variance"]), scales=scales),
      sample=sample,
      sample_naive=functools.partial(sample, cached=False))

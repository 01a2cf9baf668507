"""What a trained latent-variable model's codes are used for, one function per --mode.

Every function takes a restored run (runs.Run) and reads the eval split through
eval's preprocessing (a binarized model encodes the binarized images, never
0..255 pixels); each serves every family whose task has the hooks it needs
(tasks/common.Task): the VAEs, CVAE, beta-VAE, the autoencoder and VQ-VAE.

  reconstruct   encode, decode: grid of the inputs as the model sees them (8-bit)
                above their reconstructions; `psnr` of the reconstructions against
                those inputs (binarized: 0 / 255) over eval.num_examples images
  interpolate   encode_latents, decode_latents: rows test image a, decodes of
                (1 - t) z_a + t z_b for t in [0, 1], test image b
  attributes    encode_latents, decode_latents: alpha * (mean code of class `to` -
                mean code of class `from`) added to class-`from` images
  traverse      posterior, decode_latents: per image, row r varies the latent with
                the r-th largest mean KL(q(z_d|x) || N(0, 1)), the others at the
                image's posterior mean

Grids go to samples/<name>_<step>.png. Settings are config.eval's (num_images,
num_examples, interpolation_steps, attribute_from / attribute_to, traversal_limit /
traversal_steps). A key the config lacks reads its APPLICATION_DEFAULTS value: the VAE
configs' traversal_limit / traversal_steps, and every key of a run whose config.json
was written before its config had an eval block (VQ-VAE runs before issue 13).
"""

import numpy as np

from gen_jax import runs
from gen_jax.errors import UserError
from gen_jax.evaluation import disentanglement
from gen_jax.objectives import elbo, reconstruction
from gen_jax.objectives.likelihoods import to_uint8

APPLICATION_DEFAULTS = {
    "num_images": 10, "num_examples": 1000, "interpolation_steps": 8,
    "attribute_from": 0, "attribute_to": 2, "traversal_limit": 2.5, "traversal_steps": 9,
    "noise_std": 0.2, "salt_and_pepper_fraction": 0.1, "block_size": 10}


def setting(run: runs.Run, name: str):
  """config.eval.<name>, or its APPLICATION_DEFAULTS value when the config has none."""
  return run.config.get("eval", {}).get(name, APPLICATION_DEFAULTS[name])


def eval_head(run: runs.Run, num: int) -> tuple[np.ndarray, np.ndarray | None]:
  """(8-bit images, labels or None) of the first `num` eval examples (all when num is 0)."""
  split = run.eval_split().head(num)
  return split.images, split.labels


def num_images(run: runs.Run) -> int:
  value = setting(run, "num_images")
  if value <= 0:
    raise UserError(f"eval.num_images={value} must be > 0")
  return value


def shown(run: runs.Run, images, labels) -> np.ndarray:
  """uint8 8-bit: the images as the model reads them (eval's binarization), for grids."""
  return to_uint8(run.model_inputs(images, labels), 0, run.image_levels - 1)


def reconstruct_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  """Grid of inputs / reconstructions; `psnr` of the reconstructions against the inputs."""
  del rng
  run.require("--mode reconstruct", "encode", "decode")
  images, labels = eval_head(run, setting(run, "num_examples"))
  inputs, restored = shown(run, images, labels), run.reconstruct(images, labels)
  columns = min(num_images(run), len(images))
  writer.write_images(run.step, "reconstruct",
                      np.concatenate([inputs[:columns], restored[:columns]]), num_columns=columns)
  return {"psnr": float(np.mean(reconstruction.psnr(inputs, restored)))}


def interpolate_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  """Rows: image a, decodes along the straight line from z_a to z_b, image b (a
  conditional model decodes every step with a's label)."""
  del rng
  run.require("--mode interpolate", "encode_latents", "decode_latents")
  steps = setting(run, "interpolation_steps")
  if steps < 2:
    raise UserError(f"eval.interpolation_steps={steps} must be >= 2")
  num_pairs = min(num_images(run), len(run.eval_split()) // 2)
  if num_pairs == 0:
    raise UserError("interpolate needs at least 2 eval images")
  images, labels = eval_head(run, 2 * num_pairs)
  codes = run.encode_latents(images, labels)  # [2P, Z]
  start, end = codes[:num_pairs], codes[num_pairs:]
  weights = np.linspace(0.0, 1.0, steps)[None, :, None]  # [1, T, 1]
  path = (1 - weights) * start[:, None] + weights * end[:, None]  # [P, T, Z]
  path_labels = None if labels is None else np.repeat(labels[:num_pairs], steps)
  decoded = run.decode_latents(path.reshape(-1, codes.shape[-1]), path_labels)
  decoded = decoded.reshape(num_pairs, steps, *images.shape[1:])
  inputs = shown(run, images, labels)
  grid = np.concatenate([inputs[:num_pairs, None], decoded, inputs[num_pairs:, None]], 1)
  writer.write_images(run.step, "interpolate", grid.reshape(-1, *images.shape[1:]),
                      num_columns=grid.shape[1])
  return {}


def attribute_vector(codes: np.ndarray, labels: np.ndarray, source: int, target: int) -> np.ndarray:
  """mean(z | y = target) - mean(z | y = source) over codes [N, Z] with labels [N]."""
  return codes[labels == target].mean(0) - codes[labels == source].mean(0)


def attributes_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  """Rows: one eval image of class eval.attribute_from, then decodes of its code plus
  alpha * the attribute vector for alpha in 0, 0.25, ..., 1.5; a conditional model gets
  one more column, its code decoded with the label `to` (the class changed, the code kept)."""
  del rng
  run.require("--mode attributes", "encode_latents", "decode_latents")
  source, target = setting(run, "attribute_from"), setting(run, "attribute_to")
  images, labels = eval_head(run, setting(run, "num_examples"))
  if labels is None:
    raise UserError("attributes needs a labelled eval split")
  for name, value in (("attribute_from", source), ("attribute_to", target)):
    if not np.any(labels == value):
      raise UserError(f"eval.{name}={value}: no eval image has that label")
  codes = run.encode_latents(images, labels)
  vector = attribute_vector(codes, labels, source, target)
  chosen = np.flatnonzero(labels == source)[:num_images(run)]
  alphas = np.linspace(0.0, 1.5, 7)
  shifted = codes[chosen][:, None] + alphas[None, :, None] * vector  # [R, A, Z]
  decode_labels = np.full(shifted.shape[:2], source)
  if run.task.num_classes:
    shifted = np.concatenate([shifted, codes[chosen][:, None]], 1)
    decode_labels = np.concatenate([decode_labels, np.full((len(chosen), 1), target)], 1)
  decoded = run.decode_latents(shifted.reshape(-1, codes.shape[-1]), decode_labels.reshape(-1))
  decoded = decoded.reshape(len(chosen), -1, *images.shape[1:])
  grid = np.concatenate([shown(run, images, labels)[chosen][:, None], decoded], 1)
  writer.write_images(run.step, f"attributes_{source}_to_{target}",
                      grid.reshape(-1, *images.shape[1:]), num_columns=grid.shape[1])
  return {"attribute_vector_norm": float(np.linalg.norm(vector))}


def traversal_grids(means: np.ndarray, log_variances: np.ndarray, decode, *, limit: float,
                    steps: int, num: int) -> tuple[list[np.ndarray], np.ndarray]:
  """([num] grids [Z * steps, H, W, C], mean KL per latent [Z]) of posteriors [N, Z].

  Grid i, row r: image i's posterior mean with the latent of the r-th largest mean
  KL(q(z_d|x) || N(0, 1)) set to linspace(-limit, limit, steps); decode: z [M, Z] ->
  uint8 images [M, H, W, C].
  """
  kl_per_latent = np.asarray(elbo.gaussian_kl_to_standard_normal(
      means[..., None], log_variances[..., None])).mean(0)  # [Z]
  order = np.argsort(-kl_per_latent)
  values = np.linspace(-limit, limit, steps)
  grids = []
  for index in range(min(num, len(means))):
    latents = disentanglement.traversal_latents(means[index], order, values)  # [Z, S, Z]
    grids.append(np.asarray(decode(index, latents.reshape(-1, latents.shape[-1]))))
  return grids, kl_per_latent


def traverse_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  """samples/traversal<i>_<step>.png for the first eval.num_images images; the latents'
  order comes from eval.num_examples images. Metrics: each latent's mean KL
  (`kl_nats_latent<d>`) and the number above 0.1 nats (`active_latents`)."""
  del rng
  run.require("--mode traverse", "posterior", "decode_latents")
  limit, steps = setting(run, "traversal_limit"), setting(run, "traversal_steps")
  if steps < 2 or limit <= 0:
    raise UserError("eval.traversal_steps must be >= 2 and eval.traversal_limit > 0")
  images, labels = eval_head(run, setting(run, "num_examples"))
  means, log_variances = run.posterior(images, labels)

  def decode(index, latents):
    return run.decode_latents(latents, None if labels is None else
                              np.full(len(latents), labels[index]))

  grids, kl_per_latent = traversal_grids(means, log_variances, decode, limit=limit, steps=steps,
                                         num=num_images(run))
  for index, grid in enumerate(grids):
    writer.write_images(run.step, f"traversal{index}", grid, num_columns=steps)
  return {"active_latents": float(np.sum(kl_per_latent > 0.1)),
          **{f"kl_nats_latent{d}": float(kl) for d, kl in enumerate(kl_per_latent)}}

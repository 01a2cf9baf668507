"""Generated data as training data: Classification Accuracy Score and augmentation.

CAS (Ravuri & Vinyals, NeurIPS 2019) trains a classifier f only on generated
pairs (x~, y), x~ ~ p_model(x | y), N of each class y, and reports its
accuracy on the real test split:

  theta = argmin_theta sum_(x~, y) CE(f_theta(x~), y)
  cas_accuracy = mean_((x, y) in real test) [argmax_k f_theta(x)_k = y]

beside `real_accuracy`, the same network, recipe and budget trained on N
real training images of each class. The network is configs/fmnist_classifier.py's
(config_defaults.classifier_recipe); the budget is config.cas. Augmentation
in the low-data regime: for each M in cas.augment_real_per_class, the
classifier trained on M real images per class alone vs on those M plus the
generated set.

  python -m gen_jax.main --config configs/cvae.py --workdir DIR --mode cas \
      [--config.cas.num_per_class=500] [--config.cas.augment_real_per_class="()"]

Writes cas.json (cas.output_dir, default the workdir) and a grid of the
generated set (samples/cas_<step>.png, one row per class). A model of
binarized images (CVAE, M2) generates its Bernoulli means p(x_i = 1 | y, z)
as 8-bit intensities: dynamic binarization draws x_i = 1 with probability
intensity / 255, so the mean is the 8-bit image's counterpart. The real
images are always the 8-bit ones (M2's: its base dataset, with every label).
"""

import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gen_jax import config_defaults, data
from gen_jax.data import semi_supervised
from gen_jax.errors import UserError
from gen_jax.tasks import classifier
from gen_jax.tasks.common import eval_params, module_functions

CONDITIONAL_FAMILIES = ("dcgan (configs/dcgan.py:conditional), vae (configs/cvae.py), "
                        "gated_pixelcnn (configs/gated_pixelcnn.py:conditional), "
                        "semi_supervised_vae")


def balanced_labels(num_per_class: int, num_classes: int) -> np.ndarray:
  """[K * N] int32: N of each of the K classes, class-major (0, 0, ..., 1, 1, ...)."""
  return np.repeat(np.arange(num_classes, dtype=np.int32), num_per_class)


def generate_labelled_set(generate: Callable, rng, labels: np.ndarray,
                          batch_size: int) -> np.ndarray:
  """uint8 [len(labels), H, W, C]: image i drawn by the model for class labels[i].

  generate(rng, labels [B]) -> uint8 [B, H, W, C] is called on batches of
  `batch_size` labels (the last padded with class 0, its extra rows dropped, so
  one compiled sampler serves every call), batch b with fold_in(rng, b).
  """
  batch_size = min(batch_size, len(labels))
  images = []
  for index, start in enumerate(range(0, len(labels), batch_size)):
    chunk = labels[start:start + batch_size]
    padded = np.concatenate([chunk, np.zeros(batch_size - len(chunk), chunk.dtype)])
    batch = np.asarray(jax.device_get(generate(jax.random.fold_in(rng, index), padded)))
    images.append(batch[:len(chunk)])
  return np.concatenate(images)


def balanced_subset(labels: np.ndarray, num_per_class: int, num_classes: int,
                    seed: int) -> np.ndarray:
  """Sorted indices of min(N, count of k) examples of each class k, drawn without
  replacement from `seed`."""
  rng = np.random.default_rng(seed)
  chosen = [rng.choice(np.flatnonzero(labels == k), min(num_per_class, np.sum(labels == k)),
                       replace=False) for k in range(num_classes)]
  return np.sort(np.concatenate(chosen))


def class_accuracies(predicted: np.ndarray, labels: np.ndarray, num_classes: int):
  """(accuracy, [K] accuracy on the examples of each class; NaN for an absent class)."""
  correct = predicted == labels
  per_class = np.array([correct[labels == k].mean() if np.any(labels == k) else np.nan
                        for k in range(num_classes)])
  return float(correct.mean()), per_class


def classifier_config(cas_config, seed: int):
  """configs/fmnist_classifier.py's network and recipe with config.cas's budget."""
  config = config_defaults.base_config()
  config_defaults.classifier_recipe(config)
  config.train.num_steps = cas_config.num_steps
  config.train.batch_size = cas_config.batch_size
  config.seed = seed
  return config


class ClassifierTrainer:
  """Trains the CAS classifier from scratch on a labelled image set and tests it.

  Every training set gets the same network, initialisation (from `seed`),
  optimizer and number of updates; a set smaller than the batch is used whole
  at each step. The train step is compiled once per batch shape.
  """

  def __init__(self, config, spec: data.DatasetSpec):
    self.config, self.num_classes = config, spec.num_classes
    self.task = classifier.create_classifier_task(config, spec)
    _, apply_fn = module_functions(classifier.create_classifier_module(config.model, spec))
    self.train_step = jax.jit(self.task.train_step, donate_argnums=0)
    self.predict = jax.jit(lambda params, images: jnp.argmax(apply_fn(params, images), -1))

  def train(self, images: np.ndarray, labels: np.ndarray):
    """The classifier's parameters after config.train.num_steps steps on (images, labels)."""
    train = self.config.train
    batches = data.TrainBatches(data.image_split(images, labels.astype(np.int32)),
                                global_batch_size=min(train.batch_size, len(images)),
                                seed=self.config.seed)
    init_rng, train_rng = jax.random.split(jax.random.PRNGKey(self.config.seed))
    state = self.task.init(init_rng, None)
    for step in range(train.num_steps):
      state, _ = self.train_step(state, batches(step), train_rng)
    return eval_params(state)

  def test(self, params, split: data.Split):
    """(accuracy, [K] per-class accuracy) on `split` (padded batches, padding dropped)."""
    predicted = []
    for batch in data.eval_batches(split, global_batch_size=self.config.train.eval_batch_size):
      predicted.append(np.asarray(self.predict(params, batch["image"]))[batch["mask"] > 0])
    return class_accuracies(np.concatenate(predicted), split.labels, self.num_classes)

  def train_and_test(self, images, labels, test_split: data.Split):
    started = time.time()
    accuracy, per_class = self.test(self.train(images, labels), test_split)
    logging.info("cas: %d training images -> test accuracy %.4f (%.1f s)", len(images),
                 accuracy, time.time() - started)
    return accuracy, per_class


def evaluate_generated_data(generate: Callable, rng, train_split: data.Split,
                            test_split: data.Split, trainer: ClassifierTrainer, *,
                            num_per_class: int, sample_batch_size: int,
                            augment_real_per_class=(), seed: int = 0) -> tuple[dict, np.ndarray]:
  """(report, generated images): CAS vs real accuracy, and augmentation for each M.

  generate(rng, labels [B]) -> uint8 [B, H, W, C]. The real comparison set and
  each low-data set take N (or M) training images of each class from `seed`.
  """
  num_classes = trainer.num_classes
  labels = balanced_labels(num_per_class, num_classes)
  started = time.time()
  images = generate_labelled_set(generate, rng, labels, sample_batch_size)
  logging.info("cas: generated %d images in %.1f s", len(images), time.time() - started)
  cas_accuracy, cas_per_class = trainer.train_and_test(images, labels, test_split)
  real = balanced_subset(train_split.labels, num_per_class, num_classes, seed)
  real_accuracy, real_per_class = trainer.train_and_test(
      train_split.images[real], train_split.labels[real], test_split)
  report = {"cas_accuracy": cas_accuracy, "real_accuracy": real_accuracy,
            "cas_per_class": cas_per_class.tolist(), "real_per_class": real_per_class.tolist(),
            "num_generated": len(images), "num_real": len(real),
            "num_per_class": num_per_class, "augmentation": []}
  for real_per_class_count in augment_real_per_class:
    few = balanced_subset(train_split.labels, real_per_class_count, num_classes, seed)
    few_images, few_labels = train_split.images[few], train_split.labels[few]
    alone, _ = trainer.train_and_test(few_images, few_labels, test_split)
    augmented, _ = trainer.train_and_test(np.concatenate([few_images, images]),
                                          np.concatenate([few_labels, labels]), test_split)
    report["augmentation"].append({
        "real_per_class": int(real_per_class_count), "num_real": len(few),
        "real_accuracy": alone, "augmented_accuracy": augmented, "gain": augmented - alone,
        "generated_data_helps": bool(augmented > alone)})
  return report, images


def flat_metrics(report: dict) -> dict[str, float]:
  """The report's numbers as scalars for metrics.jsonl."""
  metrics = {"cas_accuracy": report["cas_accuracy"], "real_accuracy": report["real_accuracy"]}
  for k, (cas, real) in enumerate(zip(report["cas_per_class"], report["real_per_class"])):
    metrics[f"cas_accuracy_class{k}"], metrics[f"real_accuracy_class{k}"] = cas, real
  for entry in report["augmentation"]:
    m = entry["real_per_class"]
    metrics[f"real{m}_accuracy"] = entry["real_accuracy"]
    metrics[f"real{m}_augmented_accuracy"] = entry["augmented_accuracy"]
  return metrics


def check_conditional(run) -> None:
  """UserError unless the run's model samples per class, naming the key that makes it so."""
  if run.task.num_classes:
    return
  model = run.config.model
  if "class_conditional" in model:
    raise UserError(f"--mode cas needs a class-conditional model; the {model.name} run in "
                    f"{run.workdir} has model.class_conditional=False: train one with "
                    "--config.model.class_conditional=True")
  raise UserError(f"--mode cas needs a class-conditional model; model.name={model.name} has "
                  f"no model.class_conditional: use {CONDITIONAL_FAMILIES}")


def real_data_config(data_config):
  """The labelled 8-bit dataset a run's data is (semi_supervised: its base dataset)."""
  if data_config.name == "semi_supervised":
    return semi_supervised.base_config(data_config)
  return data_config


def classification_accuracy_score(run, rng, writer) -> dict[str, float]:
  """--mode cas: CAS, real accuracy and augmentation of a trained conditional run."""
  check_conditional(run)
  cas_config = run.config.cas
  data_config = real_data_config(run.config.data)
  spec = data.get_spec(data_config)
  if spec.num_classes != run.task.num_classes:
    raise UserError(f"the model has {run.task.num_classes} classes but {data_config.name} "
                    f"has {spec.num_classes}")
  train_split, test_split = data.load_splits(data_config)
  num_per_class = cas_config.num_per_class or len(train_split) // spec.num_classes
  if num_per_class < 1 or cas_config.num_steps < 1 or cas_config.sample_batch_size < 1:
    raise UserError("cas.num_per_class must be >= 0, cas.num_steps and "
                    "cas.sample_batch_size >= 1")
  sample = jax.jit(run.task.sample, static_argnums=2)
  report, images = evaluate_generated_data(
      lambda key, labels: sample(run.state, key, len(labels), jnp.asarray(labels)), rng,
      train_split, test_split, ClassifierTrainer(classifier_config(cas_config, run.config.seed),
                                                 spec),
      num_per_class=num_per_class, sample_batch_size=cas_config.sample_batch_size,
      augment_real_per_class=tuple(cas_config.augment_real_per_class), seed=run.config.seed)
  report.update(step=run.step, model=run.config.model.name,
                classifier={"num_steps": cas_config.num_steps,
                            "batch_size": cas_config.batch_size})
  output_dir = cas_config.output_dir or run.workdir
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, "cas.json"), "w") as f:
    json.dump(report, f, indent=2)
  grid = images.reshape(spec.num_classes, num_per_class, *images.shape[1:])[:, :10]
  writer.write_images(run.step, "cas", grid.reshape(-1, *images.shape[1:]),
                      num_columns=grid.shape[1])
  logging.info("cas: %s", {k: v for k, v in report.items() if not k.endswith("per_class")})
  return flat_metrics(report)

"""The image classifier whose features define gen_jax's FID/KID (model.name 'classifier').

Trained with softmax cross-entropy on a labelled image dataset; reports test
`accuracy`. Its "samples" are its first-layer filters (a classifier draws no
images). `--mode fid_floor` (applications/fid_floor.py) measures the FID/KID of
real training images against the eval split in its feature space: the floor a
generator can reach.
Other tasks load a trained classifier from its workdir with
`load_feature_network`.
"""

import functools
import os

import jax
import jax.numpy as jnp
import optax

from gen_jax import config_defaults, runs
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.evaluation import fid
from gen_jax.models.classifier import Classifier
from gen_jax.tasks.common import (Task, eval_params, make_init, make_optimizer, module_functions,
                                  stateless_train_step)

MODEL_NAME = "classifier"


def classification_loss(params, batch, rng, *, apply_fn):
  """Mean softmax cross-entropy of the labels; also the batch accuracy."""
  del rng
  logits = apply_fn(params, batch["image"])  # [B, K]
  cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  return cross_entropy.mean(), {"cross_entropy": cross_entropy.mean(), "accuracy": accuracy}


def classifier_eval_step(state, batch, rng, *, apply_fn):
  """Sums over the real (mask = 1) rows: correct predictions and cross-entropy."""
  del rng
  logits = apply_fn(eval_params(state), batch["image"])
  cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
  mask = batch["mask"]
  return {"accuracy": jnp.sum(correct * mask), "cross_entropy": jnp.sum(cross_entropy * mask),
          "num_examples": jnp.sum(mask)}


def first_layer_filters(state, rng, num: int, *, upscale: int = 4):
  """`num` first-layer 3x3 filters (cycled) as uint8 images, each stretched to [0, 255]."""
  del rng
  kernel = eval_params(state)["conv1"]["kernel"]  # [3, 3, C, F]
  filters = jnp.moveaxis(kernel, -1, 0)[jnp.arange(num) % kernel.shape[-1]]  # [num, 3, 3, C]
  low = filters.min(axis=(1, 2, 3), keepdims=True)
  high = filters.max(axis=(1, 2, 3), keepdims=True)
  images = (filters - low) / jnp.maximum(high - low, 1e-12) * 255.0
  images = jnp.repeat(jnp.repeat(images, upscale, axis=1), upscale, axis=2)
  return jnp.round(images).astype(jnp.uint8)


def feature_network(apply_fn, params) -> fid.FeatureNetwork:
  """The classifier as a FID feature network: (penultimate features, logits)."""
  return fid.FeatureNetwork(jax.jit(
      lambda images: apply_fn(params, images, method="features_and_logits")))


def create_classifier_module(model_config, spec: DatasetSpec):
  return lambda rngs: Classifier(image_shape=spec.image_shape, num_classes=spec.num_classes,
                                 features=model_config.features,
                                 feature_dim=model_config.feature_dim, rngs=rngs)


def create_classifier_task(config, spec: DatasetSpec) -> Task:
  if not spec.num_classes or spec.image_shape is None:
    raise UserError(f"the classifier needs labelled images; {config.data.name} has none")
  create_params, apply_fn = module_functions(create_classifier_module(config.model, spec))
  tx, schedule = make_optimizer(config.train)
  return Task(
      init=make_init(create_params, tx, config.train.ema_decay > 0),
      train_step=stateless_train_step(
          functools.partial(classification_loss, apply_fn=apply_fn), tx, schedule, config.train),
      eval_step=functools.partial(classifier_eval_step, apply_fn=apply_fn),
      sample=first_layer_filters)


def load_feature_network(workdir: str, *, min_accuracy: float, image_shape, mesh=None):
  """(FeatureNetwork, num_classes) of the trained classifier run in `workdir`.

  Raises a UserError when the workdir holds no classifier run, no checkpoint,
  a classifier of other images, or one whose last eval accuracy is below
  `min_accuracy` (an untrained classifier gives meaningless FIDs).
  """
  how = ("train one with `python -m gen_jax.main --config configs/fmnist_classifier.py "
         f"--workdir {workdir or 'DIR'}` and pass --config.eval.classifier_workdir=DIR")
  config_path = os.path.join(workdir, "config.json")
  if not workdir or not os.path.isfile(config_path):
    raise UserError(f"eval.classifier_workdir={workdir!r} holds no classifier run "
                    f"(no config.json): {how}")
  config = config_defaults.read_run_config(config_path)
  if config.model.name != MODEL_NAME:  # never advise training into another run's directory
    raise UserError(f"eval.classifier_workdir={workdir!r} is a {config.model.name!r} run, "
                    f"not a {MODEL_NAME!r}: train a classifier with `python -m gen_jax.main "
                    "--config configs/fmnist_classifier.py --workdir DIR` in a new DIR and "
                    "pass --config.eval.classifier_workdir=DIR")
  accuracy = runs.last_eval_metric(workdir, "accuracy")
  if accuracy is None or accuracy < min_accuracy:
    raise UserError(f"the classifier in {workdir} is untrained or too weak for FID features "
                    f"(last eval accuracy {accuracy}, eval.min_classifier_accuracy="
                    f"{min_accuracy}): {how}")
  spec = runs.dataset_spec(config.data)
  if tuple(spec.image_shape) != tuple(image_shape):
    raise UserError(f"the classifier in {workdir} was trained on {config.data.name} images "
                    f"{tuple(spec.image_shape)}, not {tuple(image_shape)}")
  state, _ = runs.restore_state(config, workdir, mesh)
  _, apply_fn = module_functions(create_classifier_module(config.model, spec))
  return feature_network(apply_fn, eval_params(state)), spec.num_classes

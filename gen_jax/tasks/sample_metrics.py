"""FID, KID and mode coverage of a generator's samples, as a task's split_metrics.

Any task whose `sample(state, rng, num)` returns uint8 images can be scored:
the GANs always (config.eval in configs/dcgan.py), the VAEs
and the autoencoder when `--config.eval.classifier_workdir` names a trained
configs/fmnist_classifier.py run (their samples are decoder means).
"""

import dataclasses
from collections.abc import Callable

import jax
from absl import logging

from gen_jax.errors import UserError
from gen_jax.evaluation import fid, inception
from gen_jax.tasks import classifier
from gen_jax.tasks.common import Task


def load_feature_networks(eval_config, image_shape, mesh) -> list:
  """[(FeatureNetwork, num_classes)]: the classifier of eval.classifier_workdir and/or
  Inception-v3 from eval.inception_weights."""
  networks = []
  if eval_config.classifier_workdir:
    networks.append(classifier.load_feature_network(
        eval_config.classifier_workdir, min_accuracy=eval_config.min_classifier_accuracy,
        image_shape=image_shape, mesh=mesh))
  if eval_config.inception_weights:
    networks.append((inception.load_feature_network(eval_config.inception_weights), 0))
  return networks


class SampleMetrics:
  """split_metrics: FID, KID and the class histogram of eval.num_fid_samples samples
  against the eval split, in the features of the networks that config.eval names.

  `prepare(mesh)` loads the networks (the trainer calls it before training, so
  a missing or untrained classifier is a UserError before the first step); the
  eval split's features are computed once per split.
  """

  def __init__(self, eval_config, sample: Callable, image_shape, batch_size: int):
    if eval_config.num_fid_samples < 2:
      raise UserError(f"eval.num_fid_samples={eval_config.num_fid_samples}: need at least 2")
    self.eval_config, self.image_shape, self.batch_size = eval_config, image_shape, batch_size
    self.sample = jax.jit(sample, static_argnums=2)
    self.networks = None  # [(FeatureNetwork, num_classes)]
    self.split, self.references = None, None

  def prepare(self, mesh) -> None:
    if self.networks is None:
      self.networks = load_feature_networks(self.eval_config, self.image_shape, mesh)

  def __call__(self, state, rng, eval_split, mesh) -> dict[str, float]:
    self.prepare(mesh)
    if self.split is not eval_split:
      self.references = [fid.ReferenceSet.from_features(
          fid.image_features(network, eval_split.images, self.batch_size)[0])
                         for network, _ in self.networks]
      self.split = eval_split
    images = fid.generate_images(self.sample, state, rng, self.eval_config.num_fid_samples,
                                 self.batch_size)
    metrics = {}
    for (network, num_classes), reference in zip(self.networks, self.references):
      metrics.update(fid.compare_to_reference(network, reference, images, self.eval_config,
                                              self.batch_size, num_classes))
    return metrics


def with_sample_metrics(task: Task, config, image_shape) -> Task:
  """`task` with FID/KID at each eval, unless config.eval names no feature network."""
  if not config.eval.classifier_workdir and not config.eval.inception_weights:
    logging.info("eval.classifier_workdir and eval.inception_weights are empty: "
                 "no FID/KID for %s", config.model.name)
    return task
  metrics = SampleMetrics(config.eval, task.sample, image_shape, config.train.eval_batch_size)
  return dataclasses.replace(task, split_metrics=metrics, prepare_eval=metrics.prepare)

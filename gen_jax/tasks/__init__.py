"""The task registry: config.model.name -> a family's pure functions.

A task (common.Task) is four pure functions over one explicit state pytree
(ARCHITECTURE.md): init, train_step, eval_step, sample. The trainer knows only that
interface. Each family lives in its own module here and registers its
create_*_task(config, spec) below.

Where a model.name's task lives: gen_jax/tasks/<model.name>.py, except for
names that share a family module (ARCHITECTURE.md has the whole table, and
tests/tasks/test_registry.py holds both to TASKS):

  pixelcnn, gated_pixelcnn, row_lstm, diagonal_bilstm  -> autoregressive.py
  vae, autoencoder                                     -> vae.py
  dcgan, vaegan                                        -> gan.py
  vqvae, vqvae2                                        -> vq.py
  vqvae_prior, vqvae2_prior                            -> vq_prior.py
"""

from typing import Any, Callable

from gen_jax.data.sources import DatasetSpec, register
from gen_jax.errors import UserError
from gen_jax.tasks import (ar_p, autoregressive, beta_vae, char_rnn, classifier, gan, m1_features,
                           pixelcnn_pp, semi_supervised_vae, vae, vq, vq_prior)
from gen_jax.tasks.common import Task, check_supported

TASKS: dict[str, Callable[[Any, DatasetSpec], Task]] = {
    "pixelcnn": autoregressive.create_pixelcnn_task,
    "gated_pixelcnn": autoregressive.create_gated_pixelcnn_task,
    "row_lstm": autoregressive.create_row_lstm_task,
    "diagonal_bilstm": autoregressive.create_diagonal_bilstm_task,
    "char_rnn": char_rnn.create_char_rnn_task,
    "ar_p": ar_p.create_ar_p_task,
    "vae": vae.create_vae_task,
    "autoencoder": vae.create_autoencoder_task,
    "beta_vae": beta_vae.create_beta_vae_task,
    "semi_supervised_vae": semi_supervised_vae.create_semi_supervised_vae_task,
    classifier.MODEL_NAME: classifier.create_classifier_task,
    "dcgan": gan.create_dcgan_task,
    "vaegan": gan.create_vaegan_task,
    "vqvae": vq.create_vq_task,
    "vqvae2": vq.create_vq_task,
    "vqvae_prior": vq_prior.create_vq_prior_task,
    "vqvae2_prior": vq_prior.create_vq_prior_task,
    "pixelcnn_pp": pixelcnn_pp.create_pixelcnn_pp_task,
}
register(vq_prior.DATASET, vq_prior.codes_spec)  # the codes of a trained VQ-VAE run
# data/'s semi_supervised, or over a trained M1's posterior when data.m1_workdir is set
register("semi_supervised", m1_features.semi_supervised_spec)


def create_task(config, spec: DatasetSpec) -> Task:
  if config.model.name not in TASKS:
    raise UserError(f"unknown model.name {config.model.name!r}; known: {', '.join(sorted(TASKS))}")
  task = TASKS[config.model.name](config, spec)
  check_supported(task.supports, config.train, config.model.name)  # the declaration decides
  return task

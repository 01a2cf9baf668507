"""The task registry: config.model.name -> a family's pure functions.

A task (common.Task) is four pure functions over one explicit state pytree
(DESIGN.md): init, train_step, eval_step, sample. The trainer knows only that
interface. Each family lives in its own module here and registers its
create_*_task(config, spec) below.
"""

from typing import Any, Callable

from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.tasks import autoregressive, pixelcnn_pp
from gen_jax.tasks.common import Task

TASKS: dict[str, Callable[[Any, DatasetSpec], Task]] = {
    "pixelcnn": autoregressive.create_pixelcnn_task,
    "gated_pixelcnn": autoregressive.create_gated_pixelcnn_task,
    "pixelcnn_pp": pixelcnn_pp.create_pixelcnn_pp_task,
}


def create_task(config, spec: DatasetSpec) -> Task:
  if config.model.name not in TASKS:
    raise UserError(f"unknown model.name {config.model.name!r}; known: {', '.join(sorted(TASKS))}")
  return TASKS[config.model.name](config, spec)

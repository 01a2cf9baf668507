"""The step a run is judged by, picked on held-out training data.

With data.validation_fraction > 0 a run holds out part of its training data; its
evals during training score that validation split (written as 'validation' in
metrics.jsonl), never the test split. With train.select_metric
set, the state of the best validation eval so far is kept in workdir/best, and
every reader of the trained run (--mode eval, sample, the applications, a stage
2 over it: `runs.checkpoint_directory`) reads that state instead of the last.
"""

import math

from gen_jax import checkpointing, runs
from gen_jax.errors import UserError


def held_out_split(config, mode: str) -> str:
  """What a mode evaluates on: training's evals on the validation split when the config
  holds one out, everything else on the test split (data.eval_split)."""
  return "validation" if mode == "train" and config.data.validation_fraction else "test"


class StepSelection:
  """Keeps the state of the best validation eval so far (train.select_metric) in
  workdir/best; resumed, it goes on from the validation records up to the restored step."""

  def __init__(self, config, workdir: str, outputs: str, step: int):
    self.metric, self.mode = config.train.select_metric, config.train.select_mode
    self.checkpointer = checkpointing.Checkpointer(runs.checkpoint_directory(config, workdir), 1)
    self.checkpointer.delete_after(step)
    seen = [r[self.metric] for r in runs.read_metrics(outputs, "validation")
            if r["step"] <= step and math.isfinite(r.get(self.metric, math.nan))]
    self.best = (min if self.mode == "min" else max)(seen) if seen else None

  def update(self, metrics: dict[str, float], step: int, tree, metadata: dict) -> None:
    if self.metric not in metrics:
      raise UserError(f"train.select_metric={self.metric} is not one of the eval metrics "
                      f"({', '.join(sorted(metrics))}); change it")
    value = metrics[self.metric]
    better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
    if math.isfinite(value) and better:
      self.best = value
      self.checkpointer.save(step, tree, {**metadata, "select_metric": self.metric,
                                          "value": value})

  def close(self) -> None:
    self.checkpointer.close()

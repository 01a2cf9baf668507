"""The figures `python -m gen_jax.reproduce` writes beside its tables, under
ROOT/<budget>/: each group's test-metric curves (seed means, against steps and against
wall-clock) in plots/, and each model's last seed-0 sample grid, enlarged, in samples/."""

import glob
import os
import re

import numpy as np
from PIL import Image

from gen_jax import plots, results, runs


def eval_curve(workdir: str, metric: str, x: str = "step") -> list[tuple[float, float]]:
  """The run's training evals of `metric` (on its validation split when it holds one out)."""
  return [(r.get(x, 0.0), float(r[metric])) for r in runs.training_evals(workdir)
          if metric in r and not isinstance(r[metric], str)]


def write_figures(group: results.Group, records: dict, budget_dir: str) -> None:
  """Curves of the group's first reported metric (seed means at shared eval points) vs
  steps and vs wall-clock, and the seed-0 sample grids upscaled with a border."""
  os.makedirs(os.path.join(budget_dir, "plots"), exist_ok=True)
  workdirs = {model: [os.path.join(budget_dir, model, f"seed_{r['seed']}")
                      for r in records.get(model, [])] for model in group.models}
  names = {model: model + (" (validation)" if runs.read_metrics(dirs[0], "validation") else "")
           for model, dirs in workdirs.items() if dirs}  # a curve of validation evals says so
  for metric in group.metrics:
    for x in ("step", "wall_s"):
      lines = {names[model]: plots.seed_mean([eval_curve(w, metric, x) for w in dirs])
               for model, dirs in workdirs.items() if dirs}
      lines = {name: line for name, line in lines.items() if line is not None}
      if lines:
        label = "steps" if x == "step" else "wall-clock s"
        image = plots.curves_plot(lines, title=f"({group.name}) test {metric} vs {label}")
        Image.fromarray(image).save(os.path.join(
            budget_dir, "plots", f"{group.name}_{metric}_{'steps' if x == 'step' else 'wall'}.png"))
  for model in group.models:
    grids = sorted(glob.glob(os.path.join(budget_dir, model, "seed_0", "samples", "*.png")),
                   key=lambda p: int((re.findall(r"_(\d+)\.png$", p) or ["-1"])[0]))
    if grids:
      os.makedirs(os.path.join(budget_dir, "samples"), exist_ok=True)
      grid = np.asarray(Image.open(grids[-1]).convert("RGB"))
      Image.fromarray(plots.upscale_with_border(grid, 3, 8)).save(
          os.path.join(budget_dir, "samples", f"{model}.png"))

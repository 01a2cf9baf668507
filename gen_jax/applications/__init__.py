"""What a trained model is used for, shared by families (ARCHITECTURE.md: above runs.py).

RUN_MODES maps every `--mode` that uses a trained model (all but train, eval and
sample) to fn(run: runs.Run, rng, writer) -> {metric: float}: train.run restores the
run and dispatches the mode here; the metrics go to metrics.jsonl under the mode's
name. A mode reads what it needs from the run's task hooks (tasks/common.Task) and
refuses, with a one-line UserError, a family that lacks them.
"""

from typing import Callable

from gen_jax.applications import (cas, completion, fid_floor, forecasting, latent_space, ood,
                                  restoration)

RUN_MODES: dict[str, Callable] = {
    "reconstruct": latent_space.reconstruct_mode,
    "interpolate": latent_space.interpolate_mode,
    "attributes": latent_space.attributes_mode,
    "traverse": latent_space.traverse_mode,
    "restore": restoration.restore_mode,
    "complete": completion.complete_mode,
    "forecast": forecasting.forecast_mode,
    "fid_floor": fid_floor.fid_floor_mode,
    "ood": ood.ood_mode,
    "cas": cas.classification_accuracy_score,
}

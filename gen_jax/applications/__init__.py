"""What a trained model is used for, shared by families (ARCHITECTURE.md: above runs.py).

RUN_MODES maps a `--mode` name to fn(run: runs.Run, rng, writer) -> {metric: float};
train.run restores the run and dispatches such a mode to it. An application module
adds its entry below.
"""

from typing import Callable

RUN_MODES: dict[str, Callable] = {}

from gen_jax.applications import cas, ood  # noqa: E402  (each application adds its modes)

RUN_MODES["ood"] = ood.ood_mode
RUN_MODES["cas"] = cas.classification_accuracy_score

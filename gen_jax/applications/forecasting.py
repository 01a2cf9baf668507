"""--mode forecast: k-step forecasts of a trained AR(p) run from every held-out origin.

Origin t of the held-out part forecasts series[t : t + k] from the p values
before it (tasks/ar_p.forecast_errors). Metrics, for the fitted model
and for each reference fit (`ols_`, and `true_` for a generated process):
`rmse_step_<k>` and `coverage_step_<k>` (the fraction of held-out values inside
the sample.interval_level interval) at k = 1 and k = sample.horizon, and
`mean_coverage` over 1..horizon. Writes samples/forecast_<step>.png and .csv,
the forecast from the end of the training part.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import runs
from gen_jax.errors import UserError
from gen_jax.tasks import ar_p
from gen_jax.tasks.common import eval_params


def forecast_mode(run: runs.Run, rng, writer) -> dict[str, float]:
  if run.config.model.name != "ar_p":
    raise UserError(f"--mode forecast needs an AR(p) run (model.name=ar_p); "
                    f"{run.workdir} is a {run.config.model.name!r} run")
  settings = ar_p.ar_settings(run.config, run.spec)
  series, boundary = settings["series"], settings["boundary"]
  horizon, units = settings["horizon"], settings["units"]
  interval_level = settings["interval_level"]
  if len(series) - boundary < horizon:
    raise UserError(f"sample.horizon={horizon} exceeds the {len(series) - boundary} held-out values")
  models = {"": ar_p.data_units(eval_params(run.state), **units), **{
      f"{name.removesuffix('_nll')}_": ar for name, ar in settings["references"].items()}}
  metrics = {}
  for prefix, ar in models.items():
    errors = jax.device_get(ar_p.forecast_errors(ar, jnp.asarray(series), boundary,
                                                 horizon, interval_level))
    for k in sorted({1, horizon}):
      metrics[f"{prefix}rmse_step_{k}"] = float(errors["rmse"][k - 1])
      metrics[f"{prefix}coverage_step_{k}"] = float(errors["coverage"][k - 1])
    metrics[f"{prefix}mean_coverage"] = float(np.mean(errors["coverage"]))
  plot_settings = settings["plot_settings"]
  samples = jax.device_get(ar_p.forecast(
      run.state, rng, run.config.train.num_samples, **units,
      history=jnp.asarray(plot_settings["history"]), horizon=horizon,
      interval_level=interval_level))
  ar_p.write_forecast(writer, run.step, samples, interval_level=interval_level, name="forecast",
                      **plot_settings)
  return metrics

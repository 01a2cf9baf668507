"""Linear AR(p) fitted by gradient descent on its Gaussian likelihood.

Batches hold windows 'series' [B, W] and 'weights' [B, W] (data/timeseries.py);
position t >= p of a window is predicted from the p values before it and
scored where its weight is 1. The parameters are learned in the units of the
standardised training series (location m, scale s):

  phi = coefficients,  c = m (1 - sum phi) + s * intercept,  sigma = s * exp(log_noise_std)

so that zeros start from an i.i.d. N(m, s^2) model whatever the data's units,
while likelihoods and reported parameters are in the data's own units.

Eval reports `nll` (nats per held-out step) beside `ols_nll` (the least-squares
fit of the training part, the conditional maximum-likelihood answer) and, for a
generated process, `true_nll` (the true parameters). `sample` draws forecast
paths from the end of the training part; `--mode forecast`
(applications/forecasting.py) scores k-step forecasts from every held-out origin.
"""

import csv
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import plots
from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.objectives import time_series
from gen_jax.tasks.common import (GRAD_ACCUM, Task, eval_params, make_init, make_optimizer,
                                  stateless_train_step)


def create_ar_params(rng, order: int) -> dict:
  del rng  # zeros: the i.i.d. N(m, s^2) model
  return {"intercept": jnp.zeros(()), "coefficients": jnp.zeros((order,)),
          "log_noise_std": jnp.zeros(())}


def data_units(params: dict, location: float, scale: float) -> dict:
  """(c, phi, sigma) in the data's units from the standardised parameters."""
  coefficients = params["coefficients"]
  return {"intercept": location * (1.0 - coefficients.sum()) + scale * params["intercept"],
          "coefficients": coefficients, "noise_std": scale * jnp.exp(params["log_noise_std"])}


def weighted_nll(windows: jax.Array, weights: jax.Array, ar: dict) -> tuple[jax.Array, jax.Array]:
  """(sum of nats over the weighted positions, sum of weights) under ar = {c, phi, sigma}."""
  order = ar["coefficients"].shape[-1]
  nll = time_series.ar_nll(windows, ar["intercept"], jnp.asarray(ar["coefficients"]),
                           ar["noise_std"])  # [B, W-p]
  return jnp.sum(nll * weights[:, order:]), jnp.sum(weights[:, order:])


def ar_loss(params, batch, rng, *, location, scale, steps_per_window):
  """Nats of the batch's scored steps / (B * steps_per_window), metric: nats per scored step.

  Each training step is scored in exactly one window (data/timeseries.py), and
  steps_per_window is their mean count per window, a constant: an epoch's loss
  is the mean nll over the training steps (the conditional likelihood OLS
  maximises), and a batch's loss an unbiased estimate of it.
  """
  del rng
  total, count = weighted_nll(batch["series"], batch["weights"],
                              data_units(params, location, scale))
  loss = total / (batch["series"].shape[0] * steps_per_window)
  return loss, {"nll": total / jnp.maximum(count, 1.0)}


def ar_eval_step(state, batch, rng, *, location, scale, references):
  """Sums of nats over the scored held-out steps; num_examples counts those steps.

  `references` maps a metric name ('ols_nll', 'true_nll') to fixed parameters.
  """
  del rng
  weights = batch["weights"] * batch["mask"][:, None]
  total, count = weighted_nll(batch["series"], weights,
                              data_units(eval_params(state), location, scale))
  sums = {"nll": total, "num_examples": count}
  for name, ar in references.items():
    sums[name] = weighted_nll(batch["series"], weights, ar)[0]
  return sums


def parameter_metrics(state, rng, eval_split, mesh, *, location, scale, references) -> dict:
  """The fitted (c, phi, sigma) and the largest |phi - phi_ref| for each reference."""
  del rng, eval_split, mesh
  ar = jax.device_get(data_units(eval_params(state), location, scale))
  metrics = {"intercept": float(ar["intercept"]), "noise_std": float(ar["noise_std"])}
  metrics.update({f"coefficient_{i + 1}": float(phi) for i, phi in enumerate(ar["coefficients"])})
  for name, reference in references.items():
    length = max(len(ar["coefficients"]), len(reference["coefficients"]))
    padded = [np.pad(np.asarray(c, np.float64), (0, length - len(c)))
              for c in (ar["coefficients"], reference["coefficients"])]
    metrics[f"max_coefficient_gap_{name.removesuffix('_nll')}"] = float(
        np.max(np.abs(padded[0] - padded[1])))
  return metrics


def forecast(state, rng, num: int, *, location, scale, history, horizon, interval_level) -> dict:
  """Forecast of the `horizon` values after `history`: num sampled paths, mean and interval."""
  ar = data_units(eval_params(state), location, scale)
  mean = time_series.forecast_mean(history, ar["intercept"], ar["coefficients"], horizon)
  variance = time_series.forecast_variance(ar["coefficients"], ar["noise_std"], horizon)
  lower, upper = time_series.forecast_interval(mean, variance, interval_level)
  paths = time_series.sample_paths(rng, history, ar["intercept"], ar["coefficients"],
                                   ar["noise_std"], horizon, num)
  return {"paths": paths, "mean": mean, "lower": lower, "upper": upper}


def write_forecast(writer, step: int, samples: dict, *, history, future, interval_level,
                   name: str = "step") -> str | None:
  """samples/<name>_<step>.png (the plot) and samples/<name>_<step>.csv (k, mean, lower, upper, observed)."""
  if not writer.enabled:
    return None
  mean, lower, upper = (np.asarray(samples[key]) for key in ("mean", "lower", "upper"))
  title = (f"step {step}: {interval_level:.0%} forecast interval (band), mean (blue), "
           "observed (black), held out (red)")
  plot = plots.forecast_plot(history, mean, lower, upper, future=future,
                             paths=np.asarray(samples["paths"]), title=title)
  path = writer.write_images(step, name, plot[None], num_columns=1)
  with open(writer.sample_path(step, name, "csv"), "w", newline="") as f:
    table = csv.writer(f)
    table.writerow(["k", "mean", "lower", "upper", "observed"])
    for k in range(len(mean)):
      observed = f"{future[k]:.6g}" if k < len(future) else ""
      table.writerow([k + 1, f"{mean[k]:.6g}", f"{lower[k]:.6g}", f"{upper[k]:.6g}", observed])
  return path


def forecast_errors(ar: dict, series: jax.Array, boundary: int, horizon: int,
                    interval_level: float) -> dict[str, jax.Array]:
  """RMSE and interval coverage of the k-step forecasts from every held-out origin.

  Origin t (boundary <= t <= L - horizon) forecasts series[t : t + horizon]
  from series[t - p : t]. Returns 'rmse' and 'coverage', each [horizon].
  """
  order = ar["coefficients"].shape[-1]
  origins = jnp.arange(boundary, len(series) - horizon + 1)
  history = jax.vmap(lambda t: jax.lax.dynamic_slice(series, (t - order,), (order,)))(origins)
  actual = jax.vmap(lambda t: jax.lax.dynamic_slice(series, (t,), (horizon,)))(origins)
  mean = time_series.forecast_mean(history, ar["intercept"], ar["coefficients"], horizon)
  variance = time_series.forecast_variance(ar["coefficients"], ar["noise_std"], horizon)
  lower, upper = time_series.forecast_interval(mean, variance, interval_level)
  return {"rmse": jnp.sqrt(jnp.mean(jnp.square(actual - mean), axis=0)),
          "coverage": jnp.mean((actual >= lower) & (actual <= upper), axis=0)}


def reference_fits(spec: DatasetSpec, order: int) -> dict[str, dict]:
  """{'ols_nll': the training part's least-squares AR(p), 'true_nll': the true one if known}."""
  series, boundary = spec.series.values, spec.series.boundary
  references = {"ols_nll": time_series.ols_fit(series[:boundary], order)}
  if spec.series.true_parameters is not None:
    references["true_nll"] = spec.series.true_parameters
  return {name: {"intercept": float(ar["intercept"]),
                 "coefficients": np.asarray(ar["coefficients"], np.float32),
                 "noise_std": float(ar["noise_std"])} for name, ar in references.items()}


def ar_settings(config, spec: DatasetSpec) -> dict:
  """The checked static settings of an AR(p) run: data units (location, scale), the
  series and its train / held-out boundary, the reference fits, the forecast horizon,
  interval level and plot history (what the task and --mode forecast share)."""
  order, window = config.model.order, config.data.window_length
  if order < 1:
    raise UserError(f"model.order={order} must be >= 1")
  references = reference_fits(spec, order)
  longest = max([order] + [len(ar["coefficients"]) for ar in references.values()])
  if window <= longest:
    raise UserError(f"data.window_length={window} must exceed model.order={order} and the "
                    f"true order ({longest} lags in all)")
  horizon, interval_level = config.sample.horizon, config.sample.interval_level
  if horizon < 1 or not 0 < interval_level < 1:
    raise UserError(f"sample.horizon={horizon} must be >= 1 and "
                    f"sample.interval_level={interval_level} in (0, 1)")
  series, boundary = spec.series.values, spec.series.boundary
  location, scale = float(np.mean(series[:boundary])), float(np.std(series[:boundary]))
  if scale == 0:
    raise UserError("the training part of the series is constant: nothing to fit")
  history = series[max(boundary - config.sample.history, 0):boundary]
  if len(history) < order:
    raise UserError(f"sample.history={config.sample.history} must be >= model.order={order}")
  return dict(units=dict(location=location, scale=scale), series=series, boundary=boundary,
              references=references, horizon=horizon, interval_level=interval_level,
              plot_settings=dict(history=history, future=series[boundary:boundary + horizon]))


def create_ar_p_task(config, spec: DatasetSpec) -> Task:
  settings = ar_settings(config, spec)
  order, window, boundary = config.model.order, config.data.window_length, settings["boundary"]
  units, references = settings["units"], settings["references"]
  plot_settings, interval_level = settings["plot_settings"], settings["interval_level"]
  steps_per_window = (boundary - order) / (boundary - window + 1)  # scored training steps
  tx, schedule = make_optimizer(config.train)
  return Task(
      supports=frozenset({GRAD_ACCUM}),  # float32 only: a linear model compared with OLS
      init=make_init(functools.partial(create_ar_params, order=order), tx,
                     config.train.ema_decay > 0),
      train_step=stateless_train_step(
          functools.partial(ar_loss, **units, steps_per_window=steps_per_window), tx, schedule,
          config.train),
      eval_step=functools.partial(ar_eval_step, **units, references=references),
      split_metrics=functools.partial(parameter_metrics, **units, references=references),
      sample=functools.partial(forecast, **units, history=jnp.asarray(plot_settings["history"]),
                               horizon=settings["horizon"], interval_level=interval_level),
      write_samples=functools.partial(write_forecast, interval_level=interval_level,
                                      **plot_settings))

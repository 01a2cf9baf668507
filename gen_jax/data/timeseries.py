"""One univariate time series: a generated AR(p) process or a CSV column.

  ar_process  X_t = c + sum_i phi_i X_{t-i} + e_t, e_t ~ N(0, sigma^2), drawn from
              data.seed with data.ar_coefficients / ar_intercept / ar_noise_std,
              data.length values after a burn-in that forgets the start.
  csv_series  column data.csv_column (a header name, or a 0-based index; "" = the
              first) of data.csv_file.

The held-out split is the last data.eval_fraction of the series. Examples are
windows of data.window_length values ('series', float32) with 'weights'
(1 = a position to score). Both splits score each value exactly once: training
takes every window of the training part, the first scoring all its values and
each later one only its last (so an epoch weighs every training step equally
and its optimum is the conditional maximum-likelihood, least-squares fit, not
a least squares that overweights the middle of the series); evaluation scores
each held-out value as the last value of a window whose earlier values
(possibly from the training part) are its context.
DatasetSpec.series (a sources.TimeSeries) holds the whole series, the split
boundary and, for a generated process, the true parameters.
"""

import csv
import math
import os

import numpy as np

from gen_jax.data import sources, windows
from gen_jax.errors import UserError
from gen_jax.objectives.time_series import spectral_radius


def check_stationary(coefficients) -> None:
  radius = spectral_radius(coefficients)
  if radius >= 1.0:
    raise UserError(f"data.ar_coefficients={tuple(coefficients)} give a non-stationary process "
                    f"(companion-matrix spectral radius {radius:.4g} >= 1; the roots of "
                    "1 - sum_i phi_i z^i must lie outside the unit circle)")


def generate_ar_process(coefficients, intercept: float, noise_std: float, length: int,
                        seed: int) -> np.ndarray:
  """`length` values [L] float64 of a stationary AR(p) from seed.

  Starts at the stationary mean c / (1 - sum phi) and drops a burn-in long
  enough for the start's influence (spectral radius r: r^n) to fall below 1e-8.
  """
  coefficients = np.asarray(coefficients, np.float64)
  check_stationary(coefficients)
  order = len(coefficients)
  radius = spectral_radius(coefficients)
  burn_in = 100 + (int(math.ceil(math.log(1e-8) / math.log(radius))) if radius > 0 else 0)
  noise = noise_std * np.random.default_rng(seed).standard_normal(burn_in + length)
  values = np.full(order + burn_in + length, intercept / (1.0 - coefficients.sum()))
  for t in range(order, len(values)):  # x_t = c + phi . (x_{t-1}, ..., x_{t-p}) + e_t
    values[t] = intercept + coefficients @ values[t - order:t][::-1] + noise[t - order]
  return values[order + burn_in:]


def read_csv_column(path: str, column: str) -> np.ndarray:
  """The values of one column of a CSV file [L] float64; a first row of names is a header."""
  if not os.path.isfile(path):
    raise UserError(f"data.csv_file={path!r} is not a file")
  with open(path, newline="", encoding="utf-8") as f:
    rows = [row for row in csv.reader(f) if row]
  if not rows:
    raise UserError(f"data.csv_file={path!r} is empty")
  header = rows[0] if not all(_is_number(cell) for cell in rows[0]) else None
  names = header or [str(index) for index in range(len(rows[0]))]
  if column in names:
    index = names.index(column)
  elif column == "" or (column.isdigit() and int(column) < len(names)):
    index = int(column or 0)
  else:
    raise UserError(f"data.csv_column={column!r} is not a column of {path} "
                    f"(columns: {', '.join(names)})")
  body = rows[1:] if header else rows
  values = []
  for line, row in enumerate(body, start=2 if header else 1):
    cell = row[index].strip() if index < len(row) else ""
    if not _is_number(cell):
      raise UserError(f"{path} line {line}: {cell!r} in column {names[index]!r} is not a number")
    values.append(float(cell))
  return np.asarray(values)


def _is_number(cell: str) -> bool:
  try:
    return math.isfinite(float(cell))
  except ValueError:
    return False


def read_series(data_config) -> tuple[np.ndarray, dict | None]:
  """(series [L] float32, the true parameters of a generated process or None)."""
  if data_config.name == "csv_series":
    return read_csv_column(data_config.csv_file, data_config.csv_column).astype(np.float32), None
  coefficients = tuple(float(phi) for phi in data_config.ar_coefficients)
  if not coefficients or data_config.ar_noise_std <= 0 or data_config.length < 1:
    raise UserError("data.ar_coefficients must be non-empty, data.ar_noise_std > 0 and "
                    "data.length >= 1")
  series = generate_ar_process(coefficients, data_config.ar_intercept, data_config.ar_noise_std,
                               data_config.length, data_config.seed)
  true_parameters = {"intercept": float(data_config.ar_intercept),
                     "coefficients": np.asarray(coefficients),
                     "noise_std": float(data_config.ar_noise_std)}
  return series.astype(np.float32), true_parameters


def split_boundary(data_config, length: int) -> int:
  """The first held-out index; every window of the training part must fit before it."""
  if not 0 < data_config.eval_fraction < 1:
    raise UserError(f"data.eval_fraction={data_config.eval_fraction} must be in (0, 1)")
  boundary = length - int(round(data_config.eval_fraction * length))
  if data_config.window_length < 2 or boundary < data_config.window_length or boundary == length:
    raise UserError(f"a series of {length} values split at {boundary} has no training window "
                    f"of data.window_length={data_config.window_length} (>= 2) or no held-out "
                    "values")
  return boundary


def series_spec(data_config) -> sources.DatasetSpec:
  series, true_parameters = read_series(data_config)
  boundary = split_boundary(data_config, len(series))
  window = (data_config.window_length,)
  return sources.DatasetSpec(
      image_shape=None, num_levels=0, num_classes=0,
      features={"series": (window, "float32"), "weights": (window, "float32")},
      load=load_series_splits,
      series=sources.TimeSeries(series, boundary, true_parameters))


def load_series_splits(data_config) -> tuple[dict, dict]:
  """({'series', 'weights'} of training windows, the same of held-out windows)."""
  series, _ = read_series(data_config)
  boundary = split_boundary(data_config, len(series))
  length = data_config.window_length
  train_windows, train_weights = windows.scored_windows(series[:boundary], length, 0, length - 1)
  train = {"series": train_windows, "weights": train_weights}
  eval_windows, eval_weights = windows.scored_windows(series, length, boundary, length - 1)
  return train, {"series": eval_windows, "weights": eval_weights}


sources.register("ar_process", series_spec)
sources.register("csv_series", series_spec)

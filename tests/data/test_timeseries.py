"""Time series: generated AR(p) from a seed, CSV columns, end-of-series held-out split, errors."""

import ml_collections
import numpy as np
import pytest

from gen_jax.data import load_splits, timeseries
from gen_jax.errors import UserError


def series_config(**overrides):
  config = ml_collections.ConfigDict(dict(
      name="ar_process", ar_coefficients=(0.6,), ar_intercept=1.0, ar_noise_std=1.0,
      length=400, seed=0, csv_file="", csv_column="", eval_fraction=0.25, window_length=5,
      max_train_examples=0, max_eval_examples=0))
  config.update(overrides)
  return config


def test_generated_process_is_seeded_and_stationary():
  first = timeseries.generate_ar_process([0.6], 1.0, 1.0, 20000, seed=1)
  np.testing.assert_array_equal(first, timeseries.generate_ar_process([0.6], 1.0, 1.0, 20000, 1))
  assert not np.allclose(first[:100], timeseries.generate_ar_process([0.6], 1.0, 1.0, 100, 2))
  # AR(1): mean c / (1 - phi) = 2.5, variance sigma^2 / (1 - phi^2) = 1.5625, lag-1
  # autocorrelation phi; already at the start (the burn-in forgot the initial value).
  assert abs(first.mean() - 2.5) < 0.05 and abs(first.var() - 1.5625) < 0.06
  np.testing.assert_allclose(np.corrcoef(first[:-1], first[1:])[0, 1], 0.6, atol=0.02)
  starts = np.array([timeseries.generate_ar_process([0.6], 1.0, 1.0, 1, seed)[0]
                     for seed in range(300)])
  assert abs(starts.mean() - 2.5) < 0.25 and 1.1 < starts.var() < 2.1


@pytest.mark.parametrize("coefficients", [(1.0,), (0.5, 0.5), (1.2, -0.1)])
def test_non_stationary_coefficients_are_a_user_error(coefficients):
  with pytest.raises(UserError, match="non-stationary process.*spectral radius"):
    timeseries.series_spec(series_config(ar_coefficients=coefficients))


def test_splits_hold_out_the_end_and_score_each_value_once():
  config = series_config()
  spec = timeseries.series_spec(config)
  series, boundary = spec.series.values, spec.series.boundary
  assert boundary == 300 and spec.series.true_parameters["coefficients"].tolist() == [0.6]
  train, held_out = load_splits(config)
  assert train.features["series"].shape == (296, 5)  # every window of series[:300]
  np.testing.assert_array_equal(train.features["series"][-1], series[295:300])
  # Every training value is scored in exactly one window: an epoch weighs them equally.
  starts = np.arange(296)
  counts = np.zeros(300)
  np.add.at(counts, starts[:, None] + np.arange(5), train.features["weights"])
  np.testing.assert_array_equal(counts, 1.0)
  # Held-out window n ends at value 300 + n and scores only that last value.
  np.testing.assert_array_equal(held_out.features["series"][:, -1], series[300:])
  np.testing.assert_array_equal(held_out.features["weights"][:, :-1], 0.0)
  np.testing.assert_array_equal(held_out.features["weights"][:, -1], 1.0)
  np.testing.assert_array_equal(held_out.features["series"][0], series[296:301])


def test_csv_columns(tmp_path):
  path = tmp_path / "prices.csv"
  path.write_text("date,open,close\n2024-01-01,1.5,2\n2024-01-02,2.5,3e0\n\n2024-01-03,-1,4\n")
  np.testing.assert_array_equal(timeseries.read_csv_column(str(path), "close"), [2, 3, 4])
  np.testing.assert_array_equal(timeseries.read_csv_column(str(path), "1"), [1.5, 2.5, -1])
  with pytest.raises(UserError, match=r"'volume' is not a column .*columns: date, open, close"):
    timeseries.read_csv_column(str(path), "volume")
  with pytest.raises(UserError, match=r"line 2: '2024-01-01' in column 'date' is not a number"):
    timeseries.read_csv_column(str(path), "date")
  bare = tmp_path / "bare.csv"
  bare.write_text("1.0\n2.0\n4.0\n")  # no header: columns are 0-based indices
  np.testing.assert_array_equal(timeseries.read_csv_column(str(bare), ""), [1, 2, 4])
  with pytest.raises(UserError, match="is not a file"):
    timeseries.read_csv_column(str(tmp_path / "missing.csv"), "")


def test_csv_series_spec_and_short_series(tmp_path):
  path = tmp_path / "series.csv"
  path.write_text("value\n" + "\n".join(str(v) for v in np.sin(np.arange(40))))
  spec = timeseries.series_spec(series_config(name="csv_series", csv_file=str(path)))
  assert spec.series.true_parameters is None and spec.series.boundary == 30
  np.testing.assert_allclose(spec.series.values, np.sin(np.arange(40)), atol=1e-6)
  with pytest.raises(UserError, match="has no training window"):
    timeseries.series_spec(series_config(name="csv_series", csv_file=str(path),
                                         window_length=31))

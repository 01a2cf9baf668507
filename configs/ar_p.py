"""Linear AR(p), X_t = c + sum_i phi_i X_{t-i} + e_t, fitted by Adam on its Gaussian likelihood.

By default the data is a generated stationary AR(2) with known parameters
(pseudo-cyclic: complex roots), so the fit can be checked against the truth and
against least squares; a column of a CSV file works too:

  python -m gen_jax.main --config configs/ar_p.py --workdir workdirs/ar_p
  python -m gen_jax.main --config configs/ar_p.py --workdir workdirs/ar_p --mode forecast
  python -m gen_jax.main --config configs/ar_p.py --workdir DIR --config.data.name=csv_series \
      --config.data.csv_file=prices.csv --config.data.csv_column=close --config.model.order=3
  python -m gen_jax.main --config configs/ar_p.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from gen_jax import config_defaults

SMOKE = {"data.length": 1000, "train.num_samples": 5}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.data.name = "ar_process"  # ar_process | csv_series
  config.data.ar_coefficients = (0.75, -0.5)  # phi_1..phi_p of the generated process
  config.data.ar_intercept = 1.0
  config.data.ar_noise_std = 0.5
  config.data.length = 5000
  config.data.seed = 0  # the generated series
  config.data.csv_file = ""
  config.data.csv_column = ""  # a header name or 0-based index; "" = the first column
  config.data.eval_fraction = 0.2  # the end of the series is held out
  config.data.window_length = 16  # values per example; positions >= p are predicted

  config.model.name = "ar_p"
  config.model.order = 2  # p

  config.sample = ml_collections.ConfigDict()
  config.sample.horizon = 40  # forecast steps
  config.sample.interval_level = 0.9
  config.sample.history = 80  # observed values drawn before the forecast

  config.train.num_steps = 1500
  config.train.batch_size = 256
  config.train.learning_rate = 1e-2
  config.train.warmup_steps = 20
  config.train.final_lr_fraction = 0.01
  config.train.eval_every = 500
  config.train.sample_every = 0
  config.train.log_every = 100
  config.train.num_samples = 20  # forecast paths drawn
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

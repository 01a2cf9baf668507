"""PixelRNN with Row LSTM layers (van den Oord et al. 2016) on Fashion-MNIST.

  python -m gen_jax.main --config configs/row_lstm.py --workdir workdirs/row_lstm
  python -m gen_jax.main --config configs/row_lstm.py:smoke --workdir /tmp/smoke
"""

from gen_jax import config_defaults


def get_config(arg=None):
  config = config_defaults.pixelrnn_config("row_lstm")
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.shrink_pixelrnn_for_smoke})

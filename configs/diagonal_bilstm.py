"""PixelRNN with Diagonal BiLSTM layers (van den Oord et al. 2016) on Fashion-MNIST.

  python -m gen_jax.main --config configs/diagonal_bilstm.py --workdir workdirs/diagonal_bilstm
  python -m gen_jax.main --config configs/diagonal_bilstm.py:smoke --workdir /tmp/smoke
"""

from gen_jax import config_defaults


def get_config(arg=None):
  config = config_defaults.pixelrnn_config("diagonal_bilstm")
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.shrink_pixelrnn_for_smoke})

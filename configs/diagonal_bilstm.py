"""PixelRNN with Diagonal BiLSTM layers (van den Oord et al. 2016) on Fashion-MNIST.

  python -m gen_jax.main --config configs/diagonal_bilstm.py --workdir workdirs/diagonal_bilstm
  python -m gen_jax.main --config configs/diagonal_bilstm.py:smoke --workdir /tmp/smoke

The keys not set here are configs/row_lstm.py's.
"""

from gen_jax import config_defaults

row_lstm = config_defaults.load_config_module(__file__, "row_lstm.py")


def get_config(arg=None):
  config = row_lstm.unlocked_config()
  config.model.name = "diagonal_bilstm"
  del config.model.kernel_size  # the state-to-state conv is fixed at 2 x 1 (the paper's)
  return config_defaults.finalize(config, arg, {"smoke": row_lstm.smoke})

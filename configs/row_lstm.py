"""PixelRNN with Row LSTM layers (van den Oord et al. 2016) on Fashion-MNIST.

  python -m gen_jax.main --config configs/row_lstm.py --workdir workdirs/row_lstm
  python -m gen_jax.main --config configs/row_lstm.py:smoke --workdir /tmp/smoke

Sized like the paper's binarized-MNIST Diagonal BiLSTM (7 layers, h = 16);
configs/diagonal_bilstm.py is this config with Diagonal BiLSTM layers.
"""

import ml_collections

from gen_jax import config_defaults


def unlocked_config() -> ml_collections.ConfigDict:
  config = config_defaults.base_config()
  config.model.name = "row_lstm"  # row_lstm | diagonal_bilstm
  config.model.features = 32  # residual stream width (2h in the paper)
  config.model.hidden_features = 16  # LSTM units per layer (h)
  config.model.num_layers = 7
  config.model.kernel_size = 3  # 1 x k input-to-state, width-k state-to-state
  config.model.first_kernel_size = 7
  config.model.head_features = 32
  # The same samples as naive sampling (a forward pass per sub-pixel), each layer run at
  # the drawn pixel only from its carried row / diagonal LSTM state.
  config.model.cached_sampling = True

  config.train.num_steps = 5000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.ema_decay = 0.999
  config.train.num_samples = 16
  return config


def get_config(arg=None):
  return config_defaults.finalize(unlocked_config(), arg, {"smoke": smoke})


def smoke(config):
  config_defaults.shrink_for_smoke(config)
  config.model.features = config.model.hidden_features = config.model.head_features = 8
  config.model.num_layers = 1
  config.model.first_kernel_size = 3

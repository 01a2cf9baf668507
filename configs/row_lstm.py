"""PixelRNN with Row LSTM layers (van den Oord et al. 2016) on Fashion-MNIST.

  python -m gen_jax.main --config configs/row_lstm.py --workdir workdirs/row_lstm
  python -m gen_jax.main --config configs/row_lstm.py:smoke --workdir /tmp/smoke

Sized like the paper's binarized-MNIST Diagonal BiLSTM (7 layers, h = 16);
configs/diagonal_bilstm.py is the same model with Diagonal BiLSTM layers.
"""

from gen_jax import config_defaults

SMOKE = {"model.features": 8, "model.hidden_features": 8, "model.head_features": 8,
         "model.num_layers": 1, "model.first_kernel_size": 3}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "row_lstm"
  config.model.features = 32  # residual stream width (2h in the paper)
  config.model.hidden_features = 16  # LSTM units per layer (h)
  config.model.num_layers = 7
  config.model.kernel_size = 3  # 1 x k input-to-state, width-k state-to-state
  config.model.first_kernel_size = 7
  config.model.head_features = 32
  # The same samples as naive sampling (a forward pass per sub-pixel), each layer run at
  # the drawn pixel only from its carried row LSTM state.
  config.model.cached_sampling = True

  config.train.num_steps = 5000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.ema_decay = 0.999
  config.train.num_samples = 16
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

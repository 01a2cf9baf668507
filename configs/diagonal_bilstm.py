"""PixelRNN with Diagonal BiLSTM layers (van den Oord et al. 2016) on Fashion-MNIST.

  python -m gen_jax.main --config configs/diagonal_bilstm.py --workdir workdirs/diagonal_bilstm
  python -m gen_jax.main --config configs/diagonal_bilstm.py:smoke --workdir /tmp/smoke

Sized like the paper's binarized-MNIST Diagonal BiLSTM (7 layers, h = 16);
configs/row_lstm.py is the same model with Row LSTM layers.
"""

from gen_jax import config_defaults

SMOKE = {"model.features": 8, "model.hidden_features": 8, "model.head_features": 8,
         "model.num_layers": 1, "model.first_kernel_size": 3}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "diagonal_bilstm"
  config.model.features = 32  # residual stream width (2h in the paper)
  config.model.hidden_features = 16  # LSTM units per layer (h)
  config.model.num_layers = 7
  # No kernel_size: the input-to-state conv is 1 x 1 and the state-to-state conv 2 x 1
  # (the paper's); the first layer is a mask-A k x k conv.
  config.model.first_kernel_size = 7
  config.model.head_features = 32
  # The same samples as naive sampling (a forward pass per sub-pixel), each layer run at
  # the drawn pixel only from its carried diagonal LSTM state.
  config.model.cached_sampling = True

  config.train.num_steps = 5000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.ema_decay = 0.999
  config.train.num_samples = 16
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

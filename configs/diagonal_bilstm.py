"""PixelRNN with Diagonal BiLSTM layers (van den Oord et al. 2016) on Fashion-MNIST.

  python -m gen_jax.main --config configs/diagonal_bilstm.py --workdir workdirs/diagonal_bilstm
  python -m gen_jax.main --config configs/diagonal_bilstm.py:smoke --workdir /tmp/smoke
"""

from gen_jax import config_defaults


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "diagonal_bilstm"
  config.model.features = 32  # residual stream width (2h in the paper)
  config.model.hidden_features = 16  # LSTM units per layer (h)
  config.model.num_layers = 7  # the paper's binarized-MNIST Diagonal BiLSTM: 7 layers, h = 16
  config.model.first_kernel_size = 7
  config.model.head_features = 32

  config.train.num_steps = 5000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.ema_decay = 0.999
  config.train.num_samples = 16  # naive sampling: one forward pass per sub-pixel
  return config_defaults.finalize(config, arg, {"smoke": smoke})


def smoke(config):
  config_defaults.shrink_for_smoke(config)
  config.model.features = 8
  config.model.hidden_features = 8
  config.model.num_layers = 1
  config.model.first_kernel_size = 3
  config.model.head_features = 8

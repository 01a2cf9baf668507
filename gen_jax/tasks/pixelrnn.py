"""PixelRNN (Row LSTM, Diagonal BiLSTM) bound to the per-sub-pixel categorical likelihood.

`sample` (model.cached_sampling) runs every layer at the drawn pixel only,
carrying the LSTM states of the rows above (`PixelRNN.logits_at`);
`sample_naive` reruns the whole network once per sub-pixel. Same key, same images.
"""

from gen_jax.data.sources import DatasetSpec
from gen_jax.errors import UserError
from gen_jax.models.pixelrnn import PixelRNN
from gen_jax.tasks.autoregressive import create_autoregressive_task
from gen_jax.tasks.common import Task, check_divisible


def check_pixelrnn_config(model_config, num_channels: int) -> None:
  for key in ("features", "hidden_features", "head_features"):
    check_divisible(f"model.{key}", model_config[key], num_channels, "one group per colour channel")
  for key in ("kernel_size", "first_kernel_size"):  # the Diagonal BiLSTM has no kernel_size
    if key in model_config and (model_config[key] < 1 or model_config[key] % 2 != 1):
      raise UserError(f"model.{key}={model_config[key]} must be odd and positive")
  if model_config.num_layers < 1:
    raise UserError(f"model.num_layers={model_config.num_layers} must be at least 1")


def create_pixelrnn_task(config, spec: DatasetSpec, layer_type: str) -> Task:
  model_config = config.model
  num_channels = spec.image_shape[-1]
  check_pixelrnn_config(model_config, num_channels)
  return create_autoregressive_task(config, spec, lambda rngs: PixelRNN(
      layer_type=layer_type, num_channels=num_channels, num_levels=spec.num_levels,
      features=model_config.features, hidden_features=model_config.hidden_features,
      num_layers=model_config.num_layers,
      kernel_size=model_config.kernel_size if layer_type == "row_lstm" else None,
      first_kernel_size=model_config.first_kernel_size,
      head_features=model_config.head_features, rngs=rngs),
      cached_sampling=model_config.get("cached_sampling", True))  # runs from before the key


def create_row_lstm_task(config, spec: DatasetSpec) -> Task:
  return create_pixelrnn_task(config, spec, "row_lstm")


def create_diagonal_bilstm_task(config, spec: DatasetSpec) -> Task:
  return create_pixelrnn_task(config, spec, "diagonal_bilstm")

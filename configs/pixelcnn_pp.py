"""PixelCNN++ (Salimans et al. 2017) on Fashion-MNIST: discretized logistic mixture likelihood.

  python -m gen_jax.main --config configs/pixelcnn_pp.py --workdir workdirs/pixelcnn_pp
  python -m gen_jax.main --config configs/pixelcnn_pp.py:smoke --workdir /tmp/smoke
  python -m gen_jax.main --config configs/pixelcnn_pp.py:cifar10 --workdir workdirs/pp_cifar10

The default is sized for a 2-core CPU (Fashion-MNIST, 28x28 -> 14 -> 7; about 1 s
a step at batch 32); `cifar10` is the paper's CIFAR-10 model (160 features, 5
blocks per scale, 10 components, dropout 0.5), which needs CIFAR-10 prepared in
TFDS and an accelerator.
"""

from gen_jax import config_defaults

# One scale keeps the smoke run near 10 s of CPU (the train step's compile doubles with
# two); tests/models/test_pixelcnn_pp.py runs the down- and upsampling.
SMOKE = {"model.features": 8, "model.num_scales": 1, "model.num_mixtures": 2}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "pixelcnn_pp"
  config.model.features = 32  # channels of both streams (nr_filters in the paper: 160)
  config.model.num_resnets = 1  # gated resnet blocks per scale in the up pass (+1 in the down pass)
  config.model.num_scales = 3  # resolutions: the image size must divide by 2^(num_scales-1)
  config.model.num_mixtures = 5  # logistic components per pixel
  # Off for CPU runs, which see about an epoch: nothing to regularise yet (and 20-30% of
  # a step's time); the paper's 0.5 is for hundreds of CIFAR-10 epochs (`cifar10`).
  config.model.dropout_rate = 0.0
  # The network once per pixel, log-probabilities at that pixel only; the same draws as
  # the naive sampler (the network and all log-probabilities once per sub-pixel).
  config.model.cached_sampling = True

  config.train.num_steps = 5000
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.adam_b1 = 0.95  # the paper's Adam settings
  config.train.adam_b2 = 0.9995
  config.train.ema_decay = 0.999
  config.train.num_samples = 16  # sequential sampling: one network pass per pixel
  config.cpu_devices = 2
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE), "cifar10": cifar10})


def cifar10(config):
  """The paper's CIFAR-10 model (2.92 bits/dim in the paper)."""
  config.data.name = "cifar10"
  config.model.features = 160
  config.model.num_resnets = 5
  config.model.num_mixtures = 10
  config.model.dropout_rate = 0.5
  config.train.num_steps = 500_000
  config.train.batch_size = 64
  config.train.ema_decay = 0.9995
  config.train.eval_every = 10_000
  config.train.sample_every = 50_000
  config.train.checkpoint_every = 5_000

"""PixelCNN (van den Oord et al. 2016) on Fashion-MNIST, 256-way softmax per pixel.

  python -m gen_jax.main --config configs/pixelcnn.py --workdir workdirs/pixelcnn
  python -m gen_jax.main --config configs/pixelcnn.py:smoke --workdir /tmp/smoke
  python -m gen_jax.main --config configs/pixelcnn.py:demo --workdir workdirs/demo
  python -m gen_jax.bench --config configs/pixelcnn.py:peer --reference torch  # vs pytorch-generative
"""

from gen_jax import config_defaults

SMOKE = {"model.features": 16, "model.num_blocks": 2, "model.head_features": 16}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.model.name = "pixelcnn"
  config.model.features = 64  # residual stream width (2h in the paper)
  config.model.num_blocks = 5
  config.model.kernel_size = 3
  config.model.first_kernel_size = 7
  config.model.head_features = 64
  config.model.remat = False  # True: recompute block activations in backward (less memory)
  config.model.cached_sampling = True  # same samples as naive, one pixel per layer per draw

  config.train.num_steps = 5000
  config.train.batch_size = 64
  config.train.learning_rate = 1e-3
  config.train.ema_decay = 0.999
  # On a CPU, data parallel over 2 host devices: 1.25x faster steps on 2 cores
  # (gen_jax.bench, configs/pixelcnn.py); no effect on GPU/TPU.
  config.cpu_devices = 2
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE), "demo": demo, "peer": peer})


def demo(config):
  """The default model for a few minutes on 2 CPU cores (`make demo`)."""
  config.train.num_steps = 300
  config.train.warmup_steps = 20
  config.train.log_every = 25
  config.train.eval_every = 0
  config.train.checkpoint_every = 100
  config.train.sample_every = 0
  config.train.num_samples = 16
  config.data.max_eval_examples = 2000


def peer(config):
  """pytorch-generative's default PixelCNN (15 blocks, 256-wide stream, 32-wide head), batch 32."""
  config.model.features = 256
  config.model.num_blocks = 15
  config.model.head_features = 32
  config.train.batch_size = 32

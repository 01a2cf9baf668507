"""Character-level LSTM language model (char-RNN), reported in bits/char.

By default it trains on /usr/share/common-licenses/GPL-3 (the GNU GPL v3, about
35k characters, present on every Debian/Ubuntu machine) and holds out its last
10% of characters. Any UTF-8 file works; TFDS tiny_shakespeare works when
prepared as ArrayRecord on disk (nothing downloads):

  python -m gen_jax.main --config configs/char_rnn.py --workdir workdirs/char_rnn
  python -m gen_jax.main --config configs/char_rnn.py --workdir DIR \
      --config.data.text_file=/path/to/book.txt
  python -m gen_jax.main --config configs/char_rnn.py --workdir DIR \
      --config.data.name=tiny_shakespeare --config.data.window_stride=4
  python -m gen_jax.main --config configs/char_rnn.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from gen_jax import config_defaults

SMOKE = {"data.sequence_length": 32, "data.eval_context": 16, "model.hidden_features": 32,
         "model.num_layers": 1, "train.eval_batch_size": 64, "sample.length": 40,
         "train.num_samples": 2}


def get_config(arg=None):
  config = config_defaults.base_config()
  config.data.name = "text_file"  # text_file | tiny_shakespeare
  config.data.text_file = "/usr/share/common-licenses/GPL-3"
  config.data.eval_fraction = 0.1  # text_file: the last 10% of characters are held out
  config.data.sequence_length = 128  # truncated-BPTT window (predictions per example)
  config.data.window_stride = 1  # training windows start every `stride` characters
  config.data.eval_context = 64  # held-out characters are scored after >= this much context

  config.model.name = "char_rnn"
  config.model.embedding_features = 0  # 0 = one-hot characters
  config.model.hidden_features = 128
  config.model.num_layers = 2
  config.model.dropout_rate = 0.2

  config.sample = ml_collections.ConfigDict()
  config.sample.prime = "The "
  config.sample.temperature = 0.8  # 0 = greedy (argmax)
  config.sample.length = 400

  config.train.num_steps = 1000  # 7 min on 2 CPU cores shared with other jobs
  config.train.batch_size = 32
  config.train.eval_batch_size = 64
  config.train.learning_rate = 3e-3
  config.train.warmup_steps = 50
  config.train.grad_clip_norm = 1.0
  config.train.eval_every = 200
  config.train.sample_every = 500
  config.train.checkpoint_every = 500
  config.train.num_samples = 4
  return config_defaults.finalize(config, arg, {"smoke": config_defaults.smoke_variant(SMOKE)})

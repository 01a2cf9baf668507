"""Semi-supervised VAE (M2, Kingma et al. 2014) on Fashion-MNIST with 100 or 1000 labels.

  python -m gen_jax.main --config configs/semi_supervised_vae.py:labels100 --workdir DIR
  python -m gen_jax.main --config configs/semi_supervised_vae.py:labels1000 --workdir DIR
  python -m gen_jax.main --config configs/semi_supervised_vae.py:smoke --workdir /tmp/smoke
  # M1+M2: M2 over the latent features of a finished configs/vae_mlp.py run (M1)
  python -m gen_jax.main --config configs/vae_mlp.py --workdir workdirs/vae_mlp
  python -m gen_jax.main --config configs/semi_supervised_vae.py:m1m2_labels100 \
      --workdir DIR --config.data.m1_workdir=workdirs/vae_mlp
  # M1 convolutional: a finished configs/vae_conv.py run (variants m1m2_conv_labels*)

Labels are kept for data.num_labelled training images (balanced over the 10
classes, chosen from data.label_seed); half of every batch, in expectation,
is labelled. Training maximises Kingma et al.'s J^alpha (eq. 9): the labelled
bounds and the unlabelled bounds summed over the dataset plus model.alpha
times the labelled set's mean log q(y|x), alpha = 0.1 N = 6000 (N = 60000
training images) for any number of labels. The training split repeats each
labelled image about N_u / N_l times (599 for 100 labels) so that half of a
batch is labelled; each labelled row is weighed 1 / (its copies), so one
epoch of rows adds up to J^alpha: per labelled row, the bound weighs 1/599
and the cross-entropy alpha / (N_l * 599) = 0.1 for 100 labels (1/59 and
0.1017 for 1000).

M1+M2 (Kingma et al.'s stacked model; variants m1m2_labels100, m1m2_labels1000):
with data.m1_workdir naming a finished configs/vae_mlp.py run (the paper's M1; or a
configs/vae_conv.py run, variants m1m2_conv_labels100/1000), M2 models that
VAE's latent z1 instead of the pixels (gen_jax/tasks/m1_features.py). Each image
becomes its q(z1|x) mean and log-variance over M1's active units (posterior-mean
std over the training images > data.m1_active_threshold), encoded once; every
training step draws z1 ~ q(z1|x) afresh, the test accuracy reads the test
images' means. p(z1|y, z2) is a diagonal Gaussian; the MLPs are 500-500 softplus,
z2 has 50 dims; the objective is the same J^alpha. Eval reports `accuracy` and
`z1_negative_elbo_nats` (-U(z1) in nats of the features; no bits/dim: not an
image likelihood) beside `class_mean_accuracy` (the nearest labelled class mean
on the same features, a reference: the labels alone); samples are M1's decoder
means at M2's z1 means. The
variants set data.binarization=none (M1 reads its images as it was trained to);
without data.m1_workdir they stop with a UserError naming it.
"""

from gen_jax import config_defaults

NUM_TRAINING_IMAGES = 60_000  # Fashion-MNIST

SMOKE = {"data.num_labelled": 10,  # one per class: the tiny test data has few of each
         "model.latent_dim": 4, "model.hidden": 16, "model.num_layers": 1}
M1M2_SMOKE = {**SMOKE, "data.m1_active_threshold": 0.0}  # a 4-step M1 barely moves its means


def get_config(arg=None):
  config = config_defaults.base_config()
  config.data.name = "semi_supervised"  # gen_jax/data/semi_supervised.py
  config.data.base_name = "fashion_mnist"  # the labelled dataset it wraps
  config.data.num_labelled = 100  # training images that keep their label (N / K per class)
  config.data.labelled_fraction = 0.5  # of the training split, hence of a batch on average
  config.data.label_seed = 0  # which images keep their label
  config.data.binarization = "dynamic"  # Bernoulli decoder
  config.data.m1_workdir = ""  # M1+M2: a finished VAE run, mlp or conv ("" = M2 on pixels)
  config.data.m1_config = ""  # the config M1 comes from, set by the m1m2 variants (tests)
  config.data.m1_active_threshold = 0.1  # keep M1's units whose posterior-mean std exceeds it

  config.model.name = "semi_supervised_vae"
  config.model.latent_dim = 50
  config.model.hidden = 256
  config.model.num_layers = 2  # hidden layers per network (softplus)
  config.model.alpha = 0.1 * NUM_TRAINING_IMAGES  # Kingma et al.'s alpha = 0.1 N

  config.train.num_steps = 10_000
  config.train.batch_size = 100
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 100
  config.train.num_samples = 100  # 10 rows of one z each, one column per class
  config.train.sample_every = 0
  return config_defaults.finalize(
      config, arg, {"smoke": config_defaults.smoke_variant(SMOKE), "labels100": labels(100),
                    "labels1000": labels(1000), "m1m2_labels100": m1m2(100),
                    "m1m2_labels1000": m1m2(1000),
                    "m1m2_conv_labels100": m1m2(100, "vae_conv.py"),
                    "m1m2_conv_labels1000": m1m2(1000, "vae_conv.py"),
                    "m1m2_smoke": config_defaults.smoke_variant(M1M2_SMOKE, m1m2(100)),
                    "m1m2_conv_smoke": config_defaults.smoke_variant(
                        M1M2_SMOKE, m1m2(100, "vae_conv.py"))})


def labels(num):
  def set_labels(config):
    config.data.num_labelled = num
  return set_labels


def m1m2(num, m1_config="vae_mlp.py"):
  """M1+M2 with `num` labels (pass --config.data.m1_workdir, a run of configs/`m1_config`):
  Kingma et al.'s sizes."""
  def set_m1m2(config):
    config.data.num_labelled = num
    config.data.binarization = "none"  # the features are M1's; it binarizes its own inputs
    config.data.m1_config = m1_config
    config.model.hidden, config.model.num_layers, config.model.latent_dim = 500, 2, 50
  return set_m1m2

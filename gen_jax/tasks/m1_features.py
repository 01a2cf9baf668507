"""M1 of Kingma et al. 2014's stacked M1+M2: a trained VAE's posterior as M2's data.

With data.m1_workdir set (a finished configs/vae_mlp.py run, Kingma et al.'s M1, or a
configs/vae_conv.py run: any unconditional VAE), data.name=semi_supervised
holds, per image, M1's q(z1|x) mean and log-variance (`z1_mean`, `z1_log_variance`
[A]) in place of its pixels, restricted to M1's A active units: those whose
posterior mean varies over the training images, std > data.m1_active_threshold
(0.1, Kingma et al.'s code). Both of the base dataset's splits are encoded once
per process, through the M1 run's own eval preprocessing (`runs.Run.posterior`)
at its newest checkpoint, and kept in memory (60k x 50 floats); the labelled
subset, repetition and weights are the pixel path's (data/semi_supervised.py).
M2 draws z1 ~ q(z1|x) afresh at every training step and reads the test images'
posterior means (tasks/semi_supervised_vae.py).

Without data.m1_workdir the dataset is data/semi_supervised.py's, over pixels,
unchanged: `semi_supervised_spec` below is what tasks/__init__.py registers for
data.name=semi_supervised (M1 needs a trained run, which the data floor cannot
restore).
"""

import dataclasses
import os

import ml_collections
import numpy as np

from gen_jax import checkpointing, config_defaults, runs
from gen_jax.data import semi_supervised, sources
from gen_jax.data.sources import DatasetSpec, M1Features
from gen_jax.errors import UserError

KEY = "data.m1_workdir"
FEATURES = ("z1_mean", "z1_log_variance")
_ENCODED: dict = {}  # (workdir, step, base data config) -> {'train'|'test'|'validation': part}
_RUNS: dict = {}  # (workdir, step) -> runs.Run


def read_m1_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config of the M1 run in `workdir`, a UserError naming the key if unusable."""
  if not workdir:
    raise UserError(f"{KEY} is not set: train M1 first (python -m gen_jax.main --config "
                    f"configs/vae_mlp.py --workdir DIR) and pass --config.{KEY}=DIR")
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise UserError(f"{KEY}={workdir} holds no run (no {path}); train configs/vae_mlp.py "
                    "there first")
  config = config_defaults.read_run_config(path)
  model = config.model
  if model.name != "vae" or model.get("class_conditional", False):
    raise UserError(f"{KEY}={workdir} holds a {model.name!r} run, not an unconditional VAE "
                    "(configs/vae_mlp.py or configs/vae_conv.py)")
  return config


def m1_step(workdir: str) -> int:
  """The step of the M1 run's newest checkpoint."""
  step = checkpointing.newest_step(workdir)
  if step is None:
    raise UserError(f"{KEY}={workdir} has no checkpoint yet; let M1 (configs/vae_mlp.py) train")
  return step


def m1_run(workdir: str) -> "runs.Run":
  """The M1 run restored at its newest checkpoint (once per process and step)."""
  key = (os.path.abspath(workdir), m1_step(workdir))
  if key not in _RUNS:
    config = read_m1_config(workdir)
    try:
      _RUNS[key] = runs.load(workdir, config)
    except UserError as error:
      raise UserError(f"{KEY}={workdir}: {error}") from None
  return _RUNS[key]


def active_units(means: np.ndarray, threshold: float) -> np.ndarray:
  """Sorted indices of the units whose posterior mean has std > threshold over the
  training images' means [N, Z] (Kingma et al.: the units M1 uses)."""
  return np.flatnonzero(means.std(axis=0) > threshold)


def encoded_splits(data_config, held_out: str = "test") -> tuple[dict, dict]:
  """(train, held-out) {'z1_mean', 'z1_log_variance' [N, Z] every unit, 'label' [N]} of the
  base dataset's splits, encoded by the M1 run once per process; held_out 'validation' is
  the part data.validation_fraction holds out of the training images, with all its labels
  (semi_supervised.load_base: the training part is the same either way). M1 trained on
  every training image, those too: it saw their pixels, never their labels."""
  return encoded_part(data_config, "train"), encoded_part(data_config, held_out)


def encoded_part(data_config, part: str) -> dict:
  """One part ('train', 'test' or 'validation') of encoded_splits, each encoded once."""
  workdir = data_config.m1_workdir
  m1_config = read_m1_config(workdir)
  base = semi_supervised.base_config(data_config)
  if m1_config.data.name != base.name:
    raise UserError(f"{KEY}={workdir} was trained on {m1_config.data.name}, not on "
                    f"data.base_name={base.name}")
  encoded = _ENCODED.setdefault(
      (os.path.abspath(workdir), m1_step(workdir), base.to_json(sort_keys=True)), {})
  if part not in encoded:
    train, held_out = semi_supervised.load_base(base, "test" if part == "train" else part)
    split = train if part == "train" else held_out
    means, log_variances = m1_run(workdir).posterior(split["image"])
    encoded[part] = {"z1_mean": np.asarray(means, np.float32),
                     "z1_log_variance": np.asarray(log_variances, np.float32),
                     "label": np.asarray(split["label"], np.int32)}
  return encoded[part]


def selected_units(data_config) -> np.ndarray:
  """The active units of the M1 run's training-image posterior means."""
  train = encoded_part(data_config, "train")
  active = active_units(train["z1_mean"], data_config.m1_active_threshold)
  if not len(active):
    raise UserError(f"{KEY}={data_config.m1_workdir}: no latent unit's posterior mean has std > "
                    f"data.m1_active_threshold={data_config.m1_active_threshold}")
  return active


def num_classes(data_config) -> int:
  """The base dataset's number of classes."""
  return sources.get_spec(semi_supervised.base_config(data_config)).num_classes


def labelled_images(data_config, labels: np.ndarray) -> np.ndarray:
  """Indices of the training images whose labels M2 sees (data.num_labelled, label_seed)."""
  return semi_supervised.select_labelled(labels, data_config.num_labelled,
                                         num_classes(data_config), data_config.label_seed)


def labelled_class_means(data_config) -> np.ndarray:
  """[K, A]: per class, the mean over its labelled training images of M1's posterior
  means on the active units; the nearest of these is what the labels alone classify
  with on the same features (eval's `class_mean_accuracy`, a reference for M2's)."""
  train = encoded_part(data_config, "train")
  labelled = labelled_images(data_config, train["label"])
  means = train["z1_mean"][labelled][:, selected_units(data_config)]
  labels = train["label"][labelled]
  return np.stack([means[labels == k].mean(axis=0) for k in range(num_classes(data_config))])


def load_features(data_config, held_out: str = "test") -> tuple[dict, dict]:
  """(train, held-out) splits of the semi_supervised dataset over the active units'
  posteriors (held_out: 'test', or 'validation', as data.load_splits)."""
  train, evaluation = encoded_splits(data_config, held_out)
  active = selected_units(data_config)
  pick = lambda split: {name: split[name][:, active] for name in FEATURES}  # noqa: E731
  labelled = labelled_images(data_config, train["label"])
  return (semi_supervised.training_features(
      pick(train), train["label"], labelled, data_config.labelled_fraction,
      data_config.label_seed, limit=data_config.get("max_train_examples", 0)),
      {**pick(evaluation), "label": evaluation["label"]})


def semi_supervised_spec(data_config) -> DatasetSpec:
  """data.name=semi_supervised: over pixels, or over M1's features when data.m1_workdir is set."""
  spec = semi_supervised.semi_supervised_spec(data_config)
  workdir = data_config.get("m1_workdir", "")
  if not workdir:
    return spec
  if data_config.binarization != "none":
    raise UserError(f"{KEY} is set: M2 reads M1's posterior, not pixels; set "
                    "data.binarization=none (M1 preprocesses its images as it was trained to)")
  m1_config = read_m1_config(workdir)
  active = selected_units(data_config)
  features = {name: ((len(active),), "float32") for name in FEATURES}
  features.update({"label": ((), "int32"), "labelled": ((), "float32"),
                   "labelled_weight": ((), "float32")})
  return dataclasses.replace(
      spec, image_shape=None, num_levels=0, features=features, load=load_features,
      holds_out_validation=True,
      m1=M1Features(workdir=workdir, config=m1_config,
                    active_units=tuple(int(i) for i in active),
                    image_shape=tuple(spec.image_shape)))

"""A labelled image dataset with labels kept for only N training examples.

`data.name = 'semi_supervised'` wraps `data.base_name` (fashion_mnist, mnist,
...). Its training split holds every other training image once without its
label (label -1, labelled 0), and the N labelled images (labelled 1) repeated
so that about `data.labelled_fraction` of the split, hence of every shuffled
batch in expectation, is labelled: the generic trainer's batches mix both
kinds without a second data stream. Each labelled row carries
`labelled_weight` = 1 / (its image's copies in the split), 0 on unlabelled
rows, so a loss weighted by it counts every labelled image once an epoch, as
an objective written over the dataset (M2's J^alpha) does. The labelled images are chosen
deterministically from `data.label_seed`, N / K of each of the K classes.
The eval split is the base dataset's, with all its labels. With data.m1_workdir
set (M1+M2), the registered spec is gen_jax/tasks/m1_features.py's: the same
splits over a trained VAE's posterior instead of the pixels (restoring a run is
above this floor).
"""

import dataclasses

import ml_collections
import numpy as np

from gen_jax.data import sources
from gen_jax.errors import UserError


def base_config(data_config) -> ml_collections.ConfigDict:
  """`data_config` naming the wrapped dataset instead."""
  base_name = data_config.get("base_name", "")
  if not base_name or base_name == "semi_supervised":
    raise UserError("data.name=semi_supervised needs data.base_name, a labelled image "
                    "dataset such as fashion_mnist")
  config = ml_collections.ConfigDict(data_config.to_dict())
  config.name = base_name
  return config


def select_labelled(labels: np.ndarray, num_labelled: int, num_classes: int,
                    seed: int) -> np.ndarray:
  """Sorted indices of num_labelled examples, num_labelled / K of each class, from `seed`."""
  if num_labelled <= 0 or num_labelled % num_classes:
    raise UserError(f"data.num_labelled={num_labelled} must be a positive multiple of the "
                    f"{num_classes} classes (the labelled subset is balanced)")
  per_class = num_labelled // num_classes
  rng = np.random.default_rng([seed, 0x1abe1])
  chosen = []
  for label in range(num_classes):
    members = np.flatnonzero(labels == label)
    if len(members) < per_class:
      raise UserError(f"data.num_labelled={num_labelled} needs {per_class} examples of class "
                      f"{label}; the training split has {len(members)}")
    chosen.append(rng.choice(members, per_class, replace=False))
  return np.sort(np.concatenate(chosen))


def training_features(images: np.ndarray | dict, labels: np.ndarray, labelled: np.ndarray,
                      labelled_fraction: float, seed: int,
                      limit: int = 0) -> dict[str, np.ndarray]:
  """{'image', 'label' (-1 when hidden), 'labelled' (1.0 / 0.0), 'labelled_weight'}, shuffled.

  `images` [N, ...], or {name: [N, ...]} per-image features that take the place of
  'image' (an M1's posterior, tasks/m1_features.py).

  The unlabelled part is every image not in `labelled`; the labelled images are
  repeated r = max(1, round(f / (1 - f) * N_u / N_l)) times, f the wanted
  labelled fraction, and the rows shuffled from `seed` (the first `limit` kept
  when limit > 0). A labelled row's weight is 1 / c, c its image's copies among
  the rows kept (r without a limit): each labelled image weighs 1 an epoch.
  """
  unlabelled = np.setdiff1d(np.arange(len(labels)), labelled)
  repeats = max(1, round(labelled_fraction / (1 - labelled_fraction)
                         * len(unlabelled) / len(labelled)))
  indices = np.concatenate([unlabelled, np.tile(labelled, repeats)])
  is_labelled = np.concatenate([np.zeros(len(unlabelled), np.float32),
                                np.ones(len(labelled) * repeats, np.float32)])
  order = np.random.default_rng([seed, 0x5b1]).permutation(len(indices))
  if limit:
    order = order[:limit]
  indices, is_labelled = indices[order], is_labelled[order]
  copies = np.bincount(indices, weights=is_labelled, minlength=len(labels))[indices]
  inputs = images if isinstance(images, dict) else {"image": images}
  return {**{name: values[indices] for name, values in inputs.items()},
          "label": np.where(is_labelled > 0, labels[indices], -1).astype(np.int32),
          "labelled": is_labelled,
          "labelled_weight": np.where(is_labelled > 0, 1 / np.maximum(copies, 1),
                                      0).astype(np.float32)}


def load_base(config, held_out: str) -> tuple[dict, dict]:
  """(train, held-out) features of the base dataset, read like the trainer would: the
  validation part is the base's, with all its labels, before any label is hidden."""
  spec = sources.get_spec(config)
  if spec.load is not None:
    if config.get("validation_fraction", 0.0):
      raise UserError(f"data.base_name={config.name} has no validation split: set "
                      "data.validation_fraction=0")
    return spec.load(config)
  train, validation = sources.split_off_validation(
      sources.read_features(config, config.train_split), config, held_out)
  return train, (validation if held_out == "validation" else
                 sources.read_features(config, config.eval_split))


def load(data_config, held_out: str = "test") -> tuple[dict, dict]:
  check_settings(data_config)
  config = base_config(data_config)
  num_classes = sources.get_spec(config).num_classes
  train, evaluation = load_base(config, held_out)
  labelled = select_labelled(train["label"], data_config.num_labelled, num_classes,
                             data_config.label_seed)
  return (training_features(train["image"], train["label"], labelled,
                            data_config.labelled_fraction, data_config.label_seed,
                            limit=data_config.get("max_train_examples", 0)),
          {"image": evaluation["image"], "label": evaluation["label"].astype(np.int32)})


def check_settings(data_config) -> None:
  for key in ("base_name", "num_labelled", "labelled_fraction", "label_seed"):
    if key not in data_config:
      raise UserError(f"data.name=semi_supervised needs data.{key} "
                      "(configs/semi_supervised_vae.py sets it)")
  if not 0 < data_config.labelled_fraction < 1:
    raise UserError(f"data.labelled_fraction={data_config.labelled_fraction} must be in (0, 1)")


def semi_supervised_spec(data_config) -> sources.DatasetSpec:
  check_settings(data_config)
  spec = sources.get_spec(base_config(data_config))
  if not spec.num_classes or spec.image_shape is None:
    raise UserError(f"data.base_name={data_config.base_name} must be a labelled image dataset")
  features = {"image": (tuple(spec.image_shape), "uint8"), "label": ((), "int32"),
              "labelled": ((), "float32"), "labelled_weight": ((), "float32")}
  return dataclasses.replace(spec, features=features, load=load, holds_out_validation=True,
                             num_labelled=data_config.num_labelled)

"""FID and KID between image sets in a feature network's space, and class histograms.

With features f(x) of a reference set (the test split) and of generated images:

  FID = ||mu_r - mu_g||^2 + tr(C_r + C_g - 2 (C_r C_g)^{1/2})       (Heusel et al. 2017)
  KID = unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3,
        averaged over random subsets                                 (Binkowski et al. 2018)

The feature network is gen_jax's own classifier (its penultimate layer) unless
the user supplies Inception weights, so these numbers are "classifier-feature
FID/KID", comparable between gen_jax runs with the same classifier, not with
published Inception FIDs. The classifier's predictions also give the class
histogram of generated images (mode coverage): `class_fraction_<k>` and its
entropy `class_entropy` (ln K nats when every class is equally frequent).

The maths is numpy float64 on the host; the networks run in jit'd batches.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


# ---------------------------------------------------------------- the maths


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], unbiased covariance [D, D]) of features [N, D], in float64."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """The symmetric square root of a symmetric positive semi-definite matrix.

  M = V diag(l) V^T  ->  M^{1/2} = V diag(sqrt(max(l, 0))) V^T (tiny negative
  eigenvalues from rounding are clipped).
  """
  eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
  """tr((C_a C_b)^{1/2}) for symmetric PSD C_a, C_b.

  C_a C_b = S (S C_b) has the eigenvalues of (S C_b) S = S C_b S with S = C_a^{1/2},
  a symmetric PSD matrix, so the trace is the sum of the square roots of the
  eigenvalues of S C_b S: real, and stable for singular covariances (no
  complex parts to discard, unlike a general matrix square root).
  """
  root = psd_sqrt(cov_a)
  middle = root @ cov_b @ root
  eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
  return float(np.sum(np.sqrt(np.clip(eigenvalues, 0, None))))


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray,
                     cov_b: np.ndarray) -> float:
  """||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^{1/2})."""
  distance = (np.sum(np.square(mean_a - mean_b)) + np.trace(cov_a) + np.trace(cov_b)
              - 2.0 * trace_sqrt_product(cov_a, cov_b))
  return float(max(distance, 0.0))  # rounding can leave -1e-12 for identical sets


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(x, y) = (x.y / d + 1)^3 for rows of x [M, D] and y [N, D] -> [M, N]."""
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd_squared_unbiased(x: np.ndarray, y: np.ndarray,
                         kernel: Callable = polynomial_kernel) -> float:
  """The unbiased estimate of MMD^2 between the distributions of x [M, D] and y [N, D].

  MMD^2_u = sum_{i != j} k(x_i, x_j) / (M (M-1)) + sum_{i != j} k(y_i, y_j) / (N (N-1))
            - 2 sum_{i, j} k(x_i, y_j) / (M N),

  whose expectation over independent samples is exactly
  E k(x, x') + E k(y, y') - 2 E k(x, y) (the within-set sums leave out i = j).
  """
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  m, n = len(x), len(y)
  k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
  return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
               + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
               - 2.0 * k_xy.mean())


def kernel_inception_distance(x: np.ndarray, y: np.ndarray, *, num_subsets: int,
                              subset_size: int, seed: int = 0) -> float:
  """KID: the mean of mmd_squared_unbiased over `num_subsets` random subset pairs.

  Each subset draws min(subset_size, M, N) rows of x and of y without
  replacement (Binkowski et al. 2018 use 100 subsets of 1000).
  """
  rng = np.random.default_rng(seed)
  size = min(subset_size, len(x), len(y))
  return float(np.mean([
      mmd_squared_unbiased(x[rng.choice(len(x), size, replace=False)],
                           y[rng.choice(len(y), size, replace=False)])
      for _ in range(num_subsets)]))


def class_histogram(predicted: np.ndarray, num_classes: int) -> dict[str, float]:
  """`class_fraction_<k>` of predicted classes [N] and their entropy `class_entropy` (nats)."""
  fractions = np.bincount(predicted, minlength=num_classes) / len(predicted)
  nonzero = fractions[fractions > 0]
  metrics = {f"class_fraction_{k}": float(f) for k, f in enumerate(fractions)}
  metrics["class_entropy"] = float(-np.sum(nonzero * np.log(nonzero)))
  return metrics


# ---------------------------------------------------------------- networks and image sets


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
  """A jit'd uint8 [B, H, W, C] -> (features [B, D], class logits [B, K] or None).

  `prefix` goes before the metric names ("" for the classifier: `fid`, `kid`;
  "inception_" for Inception: `inception_fid`, `inception_kid`).
  """
  apply: Callable
  prefix: str = ""


@dataclasses.dataclass(frozen=True)
class ReferenceSet:
  """Features of the reference images (e.g. the test split) and their statistics."""
  features: np.ndarray  # [N, D] float64
  mean: np.ndarray  # [D]
  covariance: np.ndarray  # [D, D]

  @classmethod
  def from_features(cls, features: np.ndarray) -> "ReferenceSet":
    return cls(np.asarray(features, np.float64), *feature_statistics(features))


def image_features(network: FeatureNetwork, images: np.ndarray,
                   batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
  """(features [N, D] float64, predicted classes [N] or None) of uint8 images [N, H, W, C].

  Every batch has `batch_size` rows (the last one zero-padded), so the network
  compiles once.
  """
  features, predicted = [], []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    padded = np.zeros((batch_size, *images.shape[1:]), images.dtype)
    padded[:len(batch)] = batch
    batch_features, logits = jax.device_get(network.apply(jnp.asarray(padded)))
    features.append(np.asarray(batch_features[:len(batch)], np.float64))
    if logits is not None:
      predicted.append(np.argmax(logits[:len(batch)], axis=-1))
  return np.concatenate(features), (np.concatenate(predicted) if predicted else None)


def generate_images(sample: Callable, state, rng: jax.Array, num: int,
                    batch_size: int) -> np.ndarray:
  """`num` uint8 images from a jit'd sample(state, rng, batch_size); batch i draws with
  fold_in(rng, i)."""
  batches = [jax.device_get(sample(state, jax.random.fold_in(rng, index), batch_size))
             for index in range(-(-num // batch_size))]
  return np.concatenate(batches)[:num]


def compare_to_reference(network: FeatureNetwork, reference: ReferenceSet, images: np.ndarray,
                         eval_config, batch_size: int, num_classes: int) -> dict[str, float]:
  """FID, KID (and, when the network classifies, the class histogram) of `images`."""
  features, predicted = image_features(network, images, batch_size)
  mean, covariance = feature_statistics(features)
  metrics = {
      "fid": frechet_distance(mean, covariance, reference.mean, reference.covariance),
      "kid": kernel_inception_distance(features, reference.features,
                                       num_subsets=eval_config.kid_subsets,
                                       subset_size=eval_config.kid_subset_size),
  }
  if predicted is not None:
    metrics.update(class_histogram(predicted, num_classes))
  return {network.prefix + name: value for name, value in metrics.items()}

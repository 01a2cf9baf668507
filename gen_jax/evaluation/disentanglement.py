"""Disentanglement of a representation against known generative factors.

The Mutual Information Gap (Chen et al. 2018, "Isolating Sources of
Disentanglement in VAEs"), estimated as in Locatello et al. 2019: each latent
mean is discretised into equal-width bins over its range, and every entropy
and mutual information is the plug-in estimate of the resulting discrete
variables, in nats. Also the latent traversals used to look at a
representation (one latent varied across a range, the others fixed).
All functions are numpy, over a whole split of representations.
"""

import numpy as np

from gen_jax.errors import UserError


def discretize(values: np.ndarray, num_bins: int) -> np.ndarray:
  """[N, D] reals -> [N, D] int codes in [0, num_bins): equal-width bins per column.

  Column d's range [min_d, max_d] is cut into num_bins equal bins (the last one
  closed); a constant column gets code 0 throughout.
  """
  low, high = values.min(axis=0), values.max(axis=0)  # [D]
  width = np.where(high > low, high - low, 1.0)
  codes = np.floor((values - low) / width * num_bins).astype(np.int64)
  return np.clip(codes, 0, num_bins - 1)


def entropy(codes: np.ndarray) -> float:
  """H(A) = -sum_a p(a) log p(a), nats, of the empirical distribution of [N] codes."""
  _, counts = np.unique(codes, return_counts=True)
  p = counts / counts.sum()
  return float(-np.sum(p * np.log(p)))


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
  """I(A; B) = sum_{a,b} p(a, b) log(p(a, b) / (p(a) p(b))), nats, of [N] codes."""
  _, a = np.unique(a, return_inverse=True)
  _, b = np.unique(b, return_inverse=True)
  num_a, num_b = a.max() + 1, b.max() + 1
  joint = np.bincount(a * num_b + b, minlength=num_a * num_b).reshape(num_a, num_b)
  joint = joint / joint.sum()  # [A, B]
  outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)  # p(a) p(b)
  nonzero = joint > 0
  return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))


def mutual_information_matrix(latent_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
  """[D, K] matrix of I(z_d; v_k) between discrete latents [N, D] and factors [N, K]."""
  return np.array([[mutual_information(latent_codes[:, d], factors[:, k])
                    for k in range(factors.shape[1])] for d in range(latent_codes.shape[1])])


def mutual_information_gap(latents: np.ndarray, factors: np.ndarray,
                           num_bins: int = 20) -> tuple[float, np.ndarray]:
  """MIG = 1/K sum_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k).

  z_(1), z_(2) are the latents with the largest and second largest mutual
  information with factor v_k (the second is taken as 0 with a single latent).
  1 when every factor is captured by exactly one latent, fully; near 0 when
  no latent knows a factor, or when two share it equally.

  Args:
    latents: [N, D] latent means (continuous; discretised into num_bins bins).
    factors: [N, K] discrete ground-truth factors (any integer values).
    num_bins: bins per latent.

  Returns:
    (mig, [K] normalised gap of each factor).
  """
  if latents.ndim != 2 or factors.ndim != 2 or len(latents) != len(factors):
    raise UserError(f"MIG needs latents [N, D] and factors [N, K] of the same N; got "
                    f"{latents.shape} and {factors.shape}")
  factor_entropy = np.array([entropy(factors[:, k]) for k in range(factors.shape[1])])  # [K]
  if np.any(factor_entropy == 0):
    constant = np.flatnonzero(factor_entropy == 0).tolist()
    raise UserError(f"MIG: factors {constant} take a single value in these {len(factors)} "
                    "examples; every factor must vary")
  information = mutual_information_matrix(discretize(latents, num_bins), factors)  # [D, K]
  top_two = -np.sort(-np.concatenate([information, np.zeros_like(information[:1])]), axis=0)[:2]
  gaps = (top_two[0] - top_two[1]) / factor_entropy  # [K]
  return float(gaps.mean()), gaps


def traversal_latents(base: np.ndarray, dims: np.ndarray, values: np.ndarray) -> np.ndarray:
  """Latents [len(dims), S, D]: row r is `base` [D] with dim dims[r] set to values[s]."""
  rows = np.repeat(np.asarray(base)[None, None, :], len(dims), axis=0)
  rows = np.repeat(rows, len(values), axis=1)  # [R, S, D]
  rows[np.arange(len(dims)), :, dims] = values
  return rows

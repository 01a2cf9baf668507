"""Detection metrics for out-of-distribution scores: AUROC, AUPRC, FPR at 95% TPR.

Convention: a score is higher for inputs judged more out-of-distribution; the
out-of-distribution set is the positive class. Ties count as in the standard
definitions (half a pair for AUROC; a threshold moves all tied scores at once).
All functions take two 1-D arrays of scores and sort once: O(n log n).
"""

import numpy as np


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
  """P(s_out > s_in) + P(s_out = s_in) / 2 over all (in, out) pairs (Mann-Whitney U / mn).

  Computed from mid-ranks of the pooled scores: U = sum of the out-set's ranks - m(m+1)/2.
  """
  in_scores, out_scores = _as_scores(in_scores), _as_scores(out_scores)
  pooled = np.concatenate([in_scores, out_scores])
  ranks = _mid_ranks(pooled)  # 1-based, ties share their mean rank
  num_out = len(out_scores)
  u_statistic = ranks[len(in_scores):].sum() - num_out * (num_out + 1) / 2.0
  return float(u_statistic / (len(in_scores) * num_out))


def auprc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
  """Average precision of flagging the out-set: sum_t (R_t - R_{t-1}) P_t over the
  distinct thresholds t (descending), flagging every score >= t."""
  true_positives, false_positives = _counts_at_thresholds(in_scores, out_scores)
  recall = true_positives / true_positives[-1]
  precision = true_positives / (true_positives + false_positives)
  return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, tpr: float = 0.95) -> float:
  """The false-positive rate at the highest threshold whose true-positive rate is >= tpr."""
  true_positives, false_positives = _counts_at_thresholds(in_scores, out_scores)
  reached = true_positives / true_positives[-1] >= tpr
  return float(false_positives[np.argmax(reached)] / len(_as_scores(in_scores)))


def detection_metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float]:
  return {"auroc": auroc(in_scores, out_scores), "auprc": auprc(in_scores, out_scores),
          "fpr95": fpr_at_tpr(in_scores, out_scores, 0.95)}


def _as_scores(scores) -> np.ndarray:
  scores = np.asarray(scores, np.float64).reshape(-1)
  if not len(scores) or not np.all(np.isfinite(scores)):
    raise ValueError("scores must be a non-empty array of finite numbers")
  return scores


def _mid_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks, tied values sharing the mean of the ranks they span."""
  order = np.argsort(values, kind="stable")
  sorted_values = values[order]
  starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
  ends = np.r_[starts[1:], len(values)]  # exclusive
  ranks = np.empty(len(values))
  ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
  return ranks


def _counts_at_thresholds(in_scores, out_scores) -> tuple[np.ndarray, np.ndarray]:
  """(TP, FP) counts [T] flagging scores >= t, for the distinct thresholds t descending."""
  in_scores, out_scores = _as_scores(in_scores), _as_scores(out_scores)
  pooled = np.concatenate([out_scores, in_scores])
  is_out = np.r_[np.ones(len(out_scores)), np.zeros(len(in_scores))]
  order = np.argsort(-pooled, kind="stable")
  pooled, is_out = pooled[order], is_out[order]
  last_of_tie = np.r_[pooled[1:] != pooled[:-1], True]  # a threshold takes all its ties
  true_positives = np.cumsum(is_out)[last_of_tie]
  false_positives = np.cumsum(1.0 - is_out)[last_of_tie]
  return true_positives, false_positives

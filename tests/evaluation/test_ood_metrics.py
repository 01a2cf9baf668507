"""AUROC / AUPRC / FPR95 against their brute-force definitions, ties included."""

import itertools

import numpy as np
import pytest

from gen_jax.evaluation import ood_metrics


def brute_auroc(in_scores, out_scores):
  """Mean over every (in, out) pair of [out > in] + [out == in] / 2."""
  pairs = [(1.0 if o > i else 0.5 if o == i else 0.0)
           for i, o in itertools.product(in_scores, out_scores)]
  return np.mean(pairs)


def flagged_rates(in_scores, out_scores, threshold):
  """(TPR, FPR, precision) of flagging every score >= threshold as out-of-distribution."""
  true_positives = sum(o >= threshold for o in out_scores)
  false_positives = sum(i >= threshold for i in in_scores)
  return (true_positives / len(out_scores), false_positives / len(in_scores),
          true_positives / max(true_positives + false_positives, 1))


def brute_auprc(in_scores, out_scores):
  """Sum over the distinct thresholds (descending) of recall increments times precision."""
  total, previous_recall = 0.0, 0.0
  for threshold in sorted(set(in_scores) | set(out_scores), reverse=True):
    recall, _, precision = flagged_rates(in_scores, out_scores, threshold)
    total += (recall - previous_recall) * precision
    previous_recall = recall
  return total


def brute_fpr95(in_scores, out_scores):
  """The smallest FPR over the thresholds that flag at least 95% of the out-set."""
  rates = [flagged_rates(in_scores, out_scores, t)
           for t in set(in_scores) | set(out_scores)]
  return min(fpr for tpr, fpr, _ in rates if tpr >= 0.95)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_brute_force_with_ties(seed):
  rng = np.random.default_rng(seed)
  # Few distinct values, so many ties within and across the sets.
  in_scores = list(rng.integers(0, 6, rng.integers(3, 25)).astype(float))
  out_scores = list(rng.integers(2, 8, rng.integers(3, 25)).astype(float))
  assert ood_metrics.auroc(in_scores, out_scores) == pytest.approx(
      brute_auroc(in_scores, out_scores))
  assert ood_metrics.auprc(in_scores, out_scores) == pytest.approx(
      brute_auprc(in_scores, out_scores))
  assert ood_metrics.fpr_at_tpr(in_scores, out_scores) == pytest.approx(
      brute_fpr95(in_scores, out_scores))


def test_continuous_scores_match_brute_force():
  rng = np.random.default_rng(7)
  in_scores, out_scores = list(rng.normal(0, 1, 40)), list(rng.normal(0.7, 1, 30))
  metrics = ood_metrics.detection_metrics(in_scores, out_scores)
  assert metrics["auroc"] == pytest.approx(brute_auroc(in_scores, out_scores))
  assert metrics["auprc"] == pytest.approx(brute_auprc(in_scores, out_scores))
  assert metrics["fpr95"] == pytest.approx(brute_fpr95(in_scores, out_scores))


def test_separated_and_identical_sets():
  in_scores, out_scores = np.arange(10.0), np.arange(10.0) + 100
  assert ood_metrics.detection_metrics(in_scores, out_scores) == {
      "auroc": 1.0, "auprc": 1.0, "fpr95": 0.0}
  assert ood_metrics.auroc(out_scores, in_scores) == 0.0  # the score backwards
  same = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
  assert ood_metrics.auroc(same, same) == 0.5
  assert ood_metrics.auroc(np.ones(4), np.ones(7)) == 0.5
  # All tied: the only threshold flags everything: precision = the out-set's share.
  assert ood_metrics.auprc(np.ones(4), np.ones(6)) == pytest.approx(0.6)
  assert ood_metrics.fpr_at_tpr(np.ones(4), np.ones(6)) == 1.0


def test_rejects_non_finite_scores():
  with pytest.raises(ValueError, match="finite"):
    ood_metrics.auroc([0.0, np.nan], [1.0])

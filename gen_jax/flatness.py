"""Whether an eval curve had flattened: the tables' "eval curve flattened?" column.

A curve is [(step, value)] of one run's headline metric (its evals during training).
"""

import re

import numpy as np
from scipy import stats

# Likelihood metrics (smaller is better): a likelihood curve is flat when it moved <= 0.25%
# over the last quarter of its steps (0.008 bits/dim at 3 bits/dim: less than the gaps
# between the papers' rows); other metrics (accuracy, FID, MIG) are noisier: 1%.
LIKELIHOODS = frozenset({"bits_per_dim", "iwae_bits_per_dim", "nll_nats", "iwae_nats",
                         "bits_per_char", "nll"})
# Metrics whose evals scatter by more than the tolerance from eval to eval (FID and KID of
# 2000 samples, MIG, an accuracy on 1000 examples: +-1.4% at 75%): two single evals say
# little, so their curves are judged by the trend of the last half's evals (trend_note).
NOISY = frozenset({"fid", "kid", "mig", "accuracy", "class_mean_accuracy"})


def flat_tolerance(metric: str) -> float:
  return 0.0025 if metric in LIKELIHOODS else 0.01


def curve_note(curve: list[tuple[int, float]], metric: str) -> dict:
  """Whether a curve of `metric` had flattened, by that metric's rule: trend_note for a
  noisy metric, flatten_note for any other."""
  judge = trend_note if metric in NOISY else flatten_note
  return judge(curve, tolerance=flat_tolerance(metric))


def flatten_note(curve: list[tuple[int, float]], fraction: float = 0.25,
                 tolerance: float = 0.01) -> dict:
  """Whether an eval curve [(step, value)] had flattened: its relative change over the last
  `fraction` of its steps, from the last point at or before that window to the last one
  (by steps, not points: a final eval a few steps after the one before is no window).

  {"flat": bool | None (fewer than 4 points), "change": relative change, "from_step",
  "to_step", "moved": whether the whole curve, first eval to last, changed by more than
  the tolerance}; flat when |change| <= tolerance. A curve flat from its first eval on
  either converged before that eval (AR(p) does in 200 steps) or is not learning (a model
  stuck at its initial 8 bits/dim); the tables say both.
  """
  if len(curve) < 4:
    return {"flat": None, "change": None, "from_step": None, "to_step": None, "moved": None}
  start = curve[-1][0] - fraction * (curve[-1][0] - curve[0][0])
  (first_step, first) = [point for point in curve[:-1] if point[0] <= start][-1]
  last_step, last = curve[-1]
  change, total = relative_change(first, last), relative_change(curve[0][1], last)
  return {"flat": abs(change) <= tolerance, "change": change, "from_step": first_step,
          "to_step": last_step, "moved": abs(total) > tolerance}


def trend_note(curve: list[tuple[int, float]], fraction: float = 0.25,
               tolerance: float = 0.01) -> dict:
  """flatten_note for a noisy metric: the trend of the evals of the last 2 * `fraction` of
  the steps (at least the last 5), by the Theil-Sen slope b (the median of the pairwise
  slopes, which one outlying eval cannot swing) and its change over `fraction` of the
  steps, b * fraction * span, relative to the median of those evals (never near zero,
  as the line's own value can be after a steep fall). Flat when that change is within the
  tolerance, or when Kendall's rank test of the values against the steps finds no trend
  (p >= 0.05: 5 evals that only ever fall have p = 2/5! = 0.017, a curved fall is a trend
  as much as a straight one), with "noise": True. A curve of fewer than 5 evals has no
  such test: flatten_note. The same keys as flatten_note, plus "noise"; "moved" compares
  the first and last eval.
  """
  if len(curve) < 5:
    return flatten_note(curve, fraction, tolerance)
  span = curve[-1][0] - curve[0][0]
  recent = [point for point in curve if point[0] >= curve[-1][0] - 2 * fraction * span]
  steps, values = np.asarray(curve[-max(5, len(recent)):], dtype=np.float64).T
  slope, _, _, _ = stats.theilslopes(values, steps)
  reference = float(np.median(values))
  change = float(slope * fraction * span / abs(reference) if reference else
                 slope * fraction * span)
  no_trend = bool(stats.kendalltau(steps, values).pvalue >= 0.05)
  total = relative_change(curve[0][1], curve[-1][1])
  return {"flat": abs(change) <= tolerance or no_trend, "change": change,
          "from_step": int(steps[0]), "to_step": int(steps[-1]),
          "moved": abs(total) > tolerance, "noise": abs(change) > tolerance and no_trend}


def relative_change(before: float, after: float) -> float:
  return (after - before) / abs(before) if before else after - before


SCATTER = "no trend beyond the evals' scatter"


def describe_change(note: dict, change: float, mean: str = "") -> str:
  """The change part of a cell (`mean`: " mean" for the mean of the seeds' changes); a
  trend_note's is its trend's change over a quarter of the run."""
  window = f"steps {note['from_step']}-{note['to_step']}"
  return (f"trend of {window}: {change:+.1%}{mean} a quarter of the run"
          if "noise" in note else f"{change:+.1%}{mean}, {window}")


def describe_flatten(note: dict) -> str:
  if note["flat"] is None:
    return "too few evals"
  if note.get("noise"):
    verdict = SCATTER
  elif note["flat"] and not note["moved"]:
    verdict = "flat from the first eval (converged before it, or not learning)"
  else:
    verdict = "flat" if note["flat"] else "still moving"
  return f"{verdict} ({describe_change(note, note['change'])})"


def describe_seed_flattening(notes: list[dict]) -> str:
  """One cell for a model's seeds: how many had flattened (and, by a noisy metric's rule,
  how many showed no trend beyond their evals' scatter), and the mean relative change over
  the last window (the window of the first seed with enough evals)."""
  measured = [n for n in notes if n["flat"] is not None]
  if not measured:
    return "too few evals" if notes else "-"
  if len(notes) == 1:
    return describe_flatten(notes[0])
  scatter = sum(bool(n.get("noise")) for n in measured)
  flat = sum(n["flat"] and n["moved"] and not n.get("noise") for n in measured)
  stuck = sum(n["flat"] and not n["moved"] and not n.get("noise") for n in measured)
  change = sum(n["change"] for n in measured) / len(measured)
  counts = ([f"flat in {flat}/{len(notes)} seeds"] if flat or not (stuck or scatter) else []) + (
      [f"{SCATTER} in {scatter}/{len(notes)} seeds"] if scatter else []) + (
      [f"flat from the first eval in {stuck}/{len(notes)} seeds: converged before it, or "
       "not learning"] if stuck else [])
  return ", ".join(counts) + f" ({describe_change(measured[0], change, ' mean')})"


def flattened_everywhere(cell: str) -> str | None:
  """Reads back a describe_seed_flattening cell: "flat" when every seed had flattened,
  "first eval" when every seed was flat from its first eval, "scatter" when every seed
  had flattened or showed no trend beyond its evals' scatter (at least one), else None."""
  if re.match(rf"(flat|{SCATTER}|flat from the first eval) \(", cell):  # one seed
    return {"flat": "flat", SCATTER: "scatter"}.get(cell.split(" (")[0], "first eval")
  counts = {kind: re.search(rf"{kind} in (\d+)/(\d+) seeds", cell)
            for kind in ("^flat", SCATTER, "first eval")}
  seeds = next((int(m.group(2)) for m in counts.values() if m), 0)
  flat, scatter, stuck = (int(m.group(1)) if m else 0 for m in counts.values())
  if seeds and flat == seeds:
    return "flat"
  if seeds and stuck == seeds:
    return "first eval"
  if seeds and scatter and flat + scatter == seeds:
    return "scatter"
  return None

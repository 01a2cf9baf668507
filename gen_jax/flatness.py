"""Whether an eval curve had flattened: the tables' "test metric flattened?" column.

A curve is [(step, value)] of one run's headline metric (its evals during training).
"""

import re

# Likelihood metrics (smaller is better): a likelihood curve is flat when it moved <= 0.25%
# over the last quarter of its steps (0.008 bits/dim at 3 bits/dim: less than the gaps
# between the papers' rows); other metrics (accuracy, FID, MIG) are noisier: 1%.
LIKELIHOODS = frozenset({"bits_per_dim", "iwae_bits_per_dim", "nll_nats", "iwae_nats",
                         "bits_per_char", "nll"})


def flat_tolerance(metric: str) -> float:
  return 0.0025 if metric in LIKELIHOODS else 0.01


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


def relative_change(before: float, after: float) -> float:
  return (after - before) / abs(before) if before else after - before


def describe_flatten(note: dict) -> str:
  if note["flat"] is None:
    return "too few evals"
  if note["flat"] and not note["moved"]:
    verdict = "flat from the first eval (converged before it, or not learning)"
  else:
    verdict = "flat" if note["flat"] else "still moving"
  return f"{verdict} ({note['change']:+.1%}, steps {note['from_step']}-{note['to_step']})"


def describe_seed_flattening(notes: list[dict]) -> str:
  """One cell for a model's seeds: how many had flattened, and the mean relative change
  over the last window (the window of the first seed with enough evals)."""
  measured = [n for n in notes if n["flat"] is not None]
  if not measured:
    return "too few evals" if notes else "-"
  if len(notes) == 1:
    return describe_flatten(notes[0])
  flat = sum(n["flat"] and n["moved"] for n in measured)
  stuck = sum(n["flat"] and not n["moved"] for n in measured)
  change = sum(n["change"] for n in measured) / len(measured)
  counts = ([f"flat in {flat}/{len(notes)} seeds"] if flat or not stuck else []) + (
      [f"flat from the first eval in {stuck}/{len(notes)} seeds: converged before it, or "
       "not learning"] if stuck else [])
  return (", ".join(counts)
          + f" ({change:+.1%} mean, steps {measured[0]['from_step']}-{measured[0]['to_step']})")


def flattened_everywhere(cell: str) -> str | None:
  """Reads back a describe_seed_flattening cell: "flat" when every seed had flattened,
  "first eval" when every seed was flat from its first eval, else None."""
  if re.match(r"flat (in (\d+)/\2 seeds|\()", cell):
    return "flat"
  if re.match(r"flat from the first eval( in (\d+)/\2 seeds| \()", cell):
    return "first eval"
  return None

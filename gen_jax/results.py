"""The tables of `python -m gen_jax.reproduce`: mean ± spread over seeds, anchors, verdicts.

RUNS says how each row is trained (its config, overrides and the runs it needs).
Everything else here is a pure function of the runs' records (each run's reproduce.json and
its metrics.jsonl eval curve), so the tables can be rebuilt and tested without training.
"""

import dataclasses
import math
import statistics

from gen_jax import flatness

# Metrics where a smaller value is the better model (every other metric: larger is better).
LOWER_IS_BETTER = flatness.LIKELIHOODS | {"fid", "kid", "dead_codes"}


@dataclasses.dataclass(frozen=True)
class Anchor:
  """A published figure for one of our rows, with where it comes from."""
  value: str  # as printed, with its unit: "3.14 bits/dim"
  source: str  # "van den Oord et al. 2016a, CIFAR-10"
  same_data: bool = False  # False: other data than ours (Fashion-MNIST), said in the table


@dataclasses.dataclass(frozen=True)
class Ordering:
  """What the papers say about the order of some rows in one metric, best first."""
  metric: str
  best_first: tuple[str, ...]
  source: str


@dataclasses.dataclass(frozen=True)
class Group:
  name: str
  title: str
  models: tuple[str, ...]
  metrics: tuple[str, ...]  # columns; the first is the headline (curves, flatten, plots)
  anchors: tuple[tuple[str, Anchor], ...] = ()  # (model, anchor)
  orderings: tuple[Ordering, ...] = ()
  short: str = ""  # the group in the README's summary table


PIXELRNN = "van den Oord et al. 2016a (PixelRNN), CIFAR-10 8-bit RGB"
FLATTENED_COLUMN = "eval curve flattened?"  # of the curve the header names: test or validation
PAPER_ALPHA = 0.1 * 60_000  # Kingma et al.'s alpha = 0.1 N, configs/semi_supervised_vae.py's


def best_on_validation(metric: str, mode: str = "min") -> tuple[str, ...]:
  """A run judged at its best step on 10% of its training data, held out."""
  return ("--config.data.validation_fraction=0.1", f"--config.train.select_metric={metric}",
          *([f"--config.train.select_mode={mode}"] if mode != "min" else []))  # min: default


# The M2 rows, by name suffix: more overrides (_alpha100x: the labelled cross-entropy
# weighted 100x the paper's alpha, against the drift of q(y|x) toward the unlabelled bound;
# _best_val: judged at the step of the best validation accuracy, the held-out 10% of the
# training images keeping all their labels)
ALPHA_100X = (f"--config.model.alpha={100 * PAPER_ALPHA}",)
M2_VARIANTS = {"": (), "_alpha100x": ALPHA_100X,
               "_best_val": best_on_validation("accuracy", "max"),
               "_alpha100x_best_val": ALPHA_100X + best_on_validation("accuracy", "max")}
# The M1+M2 rows, by name suffix: the M1 run (the MLP VAE at the budget, or trained 10x its
# steps) and the M2 variant whose overrides it takes (and whose row it is compared with)
M1M2_VARIANTS = {"": ("vae_mlp", ""), "_m1_10x": ("vae_mlp_10x", ""),
                 "_m1_10x_alpha100x": ("vae_mlp_10x", "_alpha100x"),
                 "_m1_10x_best_val": ("vae_mlp_10x", "_best_val"),
                 "_m1_10x_alpha100x_best_val": ("vae_mlp_10x", "_alpha100x_best_val"),
                 # a convolutional M1 (configs/vae_conv.py at the budget's steps)
                 "_m1_conv": ("vae_conv", ""), "_m1_conv_alpha100x": ("vae_conv", "_alpha100x"),
                 "_m1_conv_best_val": ("vae_conv", "_best_val"),
                 "_m1_conv_alpha100x_best_val": ("vae_conv", "_alpha100x_best_val")}
GROUPS = (
    Group("a", "Autoregressive models, Fashion-MNIST 8-bit (test bits/dim)",
          ("pixelcnn", "gated_pixelcnn", "pixelcnn_pp", "row_lstm", "diagonal_bilstm"),
          ("bits_per_dim",),
          (("pixelcnn", Anchor("3.14 bits/dim", PIXELRNN)),
           ("gated_pixelcnn", Anchor("3.03 bits/dim", "van den Oord et al. 2016b, CIFAR-10")),
           ("pixelcnn_pp", Anchor("2.92 bits/dim", "Salimans et al. 2017, CIFAR-10")),
           ("row_lstm", Anchor("3.07 bits/dim", PIXELRNN)),
           ("diagonal_bilstm", Anchor("3.00 bits/dim", PIXELRNN))),
          (Ordering("bits_per_dim", ("pixelcnn_pp", "diagonal_bilstm", "gated_pixelcnn",
                                     "row_lstm", "pixelcnn"),
                    "the CIFAR-10 figures of the anchors"),), short="autoregressive"),
    Group("b", "Latent-variable models, Fashion-MNIST (beta-VAE rows: "
          "32x32 sprites with known factors, for the MIG)",
          ("vae_mlp", "vae_conv", "ae", "cvae", "m2_labels100", "m2_labels1000",
           "m1m2_labels100", "m1m2_labels1000", "vae_mlp_10x",
           *[f"m2_labels{num}{suffix}" for suffix in M2_VARIANTS if suffix
             for num in (100, 1000)],
           *[f"m1m2_labels{num}{suffix}" for suffix in M1M2_VARIANTS if suffix
             for num in (100, 1000)],
           "beta_vae_beta1", "beta_vae_beta4", "beta_vae_beta16"),
          # class_mean_accuracy (M1+M2): the labels alone on the same features, a reference
          ("nll_nats", "iwae_nats", "bits_per_dim", "iwae_bits_per_dim", "psnr", "accuracy",
           "class_mean_accuracy", "mig"),
          (("vae_mlp", Anchor("86.76 nats (NLL, IWAE k=5000 estimate)",
                              "Burda et al. 2016, VAE, binarized MNIST")),
           *[(f"m2_labels{num}{suffix}", Anchor(f"{accuracy} accuracy ({error} error)",
                                                "Kingma et al. 2014, M2, MNIST"))
             for num, accuracy, error in ((100, "88.0%", "11.97%"), (1000, "96.4%", "3.60%"))
             for suffix in M2_VARIANTS],
           ("m1m2_labels100", Anchor("96.7% accuracy (3.33% error)",
                                     "Kingma et al. 2014, M1+M2, MNIST")),
           *[(f"m1m2_labels{num}{m1}", Anchor(f"{accuracy} accuracy ({error} error)",
                                              "Kingma et al. 2014, M1+M2, MNIST"))
             for num, accuracy, error in ((100, "96.7%", "3.33%"), (1000, "97.6%", "2.40%"))
             for m1 in M1M2_VARIANTS]),
          (*[Ordering("accuracy", (f"m2_labels1000{suffix}", f"m2_labels100{suffix}"),
                      "Kingma et al. 2014 (more labels, higher accuracy)")
             for suffix in M2_VARIANTS],
           *[Ordering("accuracy", (f"m1m2_labels{num}{m1}", f"m2_labels{num}{m2}"),
                      "Kingma et al. 2014 (M1+M2 beats M2 alone)")
             for num in (100, 1000) for m1, (_, m2) in M1M2_VARIANTS.items()],
           *[Ordering("mig", (f"beta_vae_beta{beta}", "beta_vae_beta1"),
                      "Higgins et al. 2017, Chen et al. 2018 (beta > 1 disentangles more)")
             for beta in (4, 16)]),
          short="latent-variable"),
    Group("c", "VQ-VAE, VQ-VAE-2 and their priors, Fashion-MNIST",
          ("vqvae", "vqvae2", "vqvae_prior", "vqvae2_prior"),
          ("psnr", "codebook_perplexity", "bits_per_dim"),
          (("vqvae_prior", Anchor("4.67 bits/dim (bound)",
                                  "van den Oord et al. 2017, CIFAR-10")),),
          (Ordering("psnr", ("vqvae2", "vqvae"),
                    "Razavi et al. 2019 (the hierarchy reconstructs better)"),), short="VQ"),
    Group("d", "GANs and VAE-GAN, Fashion-MNIST (classifier-feature FID/KID, 10k samples)",
          ("dcgan_non_saturating", "dcgan_hinge", "dcgan_minimax", "dcgan_non_saturating_r1",
           "dcgan_hinge_r1", "dcgan_minimax_r1", "vaegan", "fmnist_classifier"),
          ("fid", "kid", "accuracy"), (),
          (Ordering("fid", ("dcgan_non_saturating", "dcgan_minimax"),
                    "Goodfellow et al. 2014 (the minimax generator saturates)"),),
          short="GANs, VAE-GAN"),
    # AR(p): beside the fitted model's held-out nll, least squares' and the true parameters'
    # on the same held-out series (ols_nll, true_nll), and the noise's entropy in closed form.
    Group("e", "Sequences (held-out bits/char; AR(p): nll in nats per step)",
          ("char_rnn", "char_rnn_best_val", "ar_p"),
          ("bits_per_char", "nll", "ols_nll", "true_nll"),
          (("ar_p", Anchor("0.7258 nats/step", "the generating process's entropy rate, "
                           "ln(2 pi e sigma^2) / 2 at sigma = 0.5 (configs/ar_p.py)",
                           same_data=True)),), short="sequences"),
)


@dataclasses.dataclass(frozen=True)
class Run:
  name: str  # the row: ROOT/<budget>/<name>/seed_<s>
  config: str  # configs/<config>.py
  overrides: tuple[str, ...] = ()
  # (config key, run name, same seed?): that run's workdir is passed as --config.<key>
  needs: tuple[tuple[str, str, bool], ...] = ()
  final_eval: tuple[str, ...] = ()  # more overrides of the final --mode eval
  iwae: bool = False  # the final eval also gives the IWAE bound (--iwae_samples)
  headline: str = ""  # the metric whose curve says if it flattened ("": the group's first)
  steps_scale: int = 1  # trains steps_scale x the budget's steps (an M1 trained longer)
  fixed_steps: int = 0  # trains this many steps at every budget (0: the budget's)

  def steps(self, budget_steps: int) -> int:
    return self.fixed_steps or self.steps_scale * budget_steps


# The GANs' FID/KID features: the classifier's seed-0 run. Their curves' evals score 2000
# samples against the first --eval_examples test images (a 10000-sample FID cost about a
# minute per eval on 2 cores); the table's FID/KID, 10000 samples against the whole split.
CLASSIFIER = (("eval.classifier_workdir", "fmnist_classifier", False),)
CURVE_FID, TABLE_FID = ("--config.eval.num_fid_samples=2000",), (
    "--config.eval.num_fid_samples=10000",)
RUNS = {run.name: run for run in [
    Run("pixelcnn", "pixelcnn"), Run("gated_pixelcnn", "gated_pixelcnn"),
    Run("pixelcnn_pp", "pixelcnn_pp"), Run("row_lstm", "row_lstm"),
    Run("diagonal_bilstm", "diagonal_bilstm"),
    Run("vae_mlp", "vae_mlp", final_eval=("--config.eval.iwae_chunk_size=100",), iwae=True),
    Run("vae_conv", "vae_conv", final_eval=(
        "--config.eval.iwae_chunk_size=5", "--config.train.eval_batch_size=100"), iwae=True),
    Run("ae", "ae"), Run("cvae", "cvae"),
    *[Run(f"m2_labels{num}{suffix}", "semi_supervised_vae",
          (f"--config.data.num_labelled={num}", *more), headline="accuracy")
      for num in (100, 1000) for suffix, more in M2_VARIANTS.items()],
    # M1+M2: M2 (configs/semi_supervised_vae.py's m1m2 variants' settings) over the z1 of
    # vae_mlp, or of vae_mlp_10x: the same M1 trained 10x the budget's steps
    Run("vae_mlp_10x", "vae_mlp", steps_scale=10),
    *[Run(f"m1m2_labels{num}{suffix}", "semi_supervised_vae", (
        f"--config.data.num_labelled={num}", "--config.data.binarization=none",
        "--config.model.hidden=500", "--config.model.num_layers=2",
        "--config.model.latent_dim=50", *M2_VARIANTS[m2]),
          needs=(("data.m1_workdir", m1, True),), headline="accuracy") for num in (100, 1000)
      for suffix, (m1, m2) in M1M2_VARIANTS.items()],
    *[Run(f"beta_vae_beta{beta}", "beta_vae", (f"--config.model.beta={beta}.0",),
          headline="mig") for beta in (1, 4, 16)],
    Run("vqvae", "vqvae"), Run("vqvae2", "vqvae2"),
    Run("vqvae_prior", "vqvae_prior", needs=(("vqvae_workdir", "vqvae", True),),
        headline="bits_per_dim"),
    Run("vqvae2_prior", "vqvae2_prior", needs=(("vqvae_workdir", "vqvae2", True),),
        headline="bits_per_dim"),
    # 1000 steps at every budget (flat there: 90.4% test accuracy), so FIDs of the GANs at
    # different budgets are over the same features and compare across tables
    Run("fmnist_classifier", "fmnist_classifier", fixed_steps=1000),
    *[Run(f"dcgan_{loss}{'_r1' if r1 else ''}", "dcgan", (f"--config.model.loss={loss}",) + (
        ("--config.model.r1_gamma=1.0", "--config.model.discriminator_batch_norm=False")
        if r1 else ()) + CURVE_FID, needs=CLASSIFIER, final_eval=TABLE_FID)
      for r1 in (False, True) for loss in ("non_saturating", "hinge", "minimax")],
    Run("vaegan", "vaegan", CURVE_FID, needs=CLASSIFIER, final_eval=TABLE_FID),
    Run("char_rnn", "char_rnn"), Run("ar_p", "ar_p"),
    Run("char_rnn_best_val", "char_rnn", best_on_validation("bits_per_char"))]}


def is_finished(record: dict, steps: int, final_eval: tuple[str, ...]) -> bool:
  """Whether a run's reproduce.json record reached `steps` and, if `final_eval` (the final
  evaluation's overrides) is not empty, has a final evaluation whose command holds them all
  (so another --iwae_samples makes the run unfinished: only its final eval runs again)."""
  evaluated = not final_eval or bool(record.get("final_eval")) and set(final_eval) <= set(
      record["final_eval"].get("command", "").split())
  return record.get("steps") == steps and evaluated


def mean_spread(values: list[float]) -> tuple[float, float]:
  """(mean, sample standard deviation); the spread of one value is 0."""
  if not values:
    raise ValueError("no values")
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def format_mean_spread(values: list[float]) -> str:
  mean, spread = mean_spread(values)
  return f"{mean:.4g}" if len(values) == 1 else f"{mean:.4g} ± {spread:.2g}"


def is_better(metric: str, a: float, b: float) -> bool:
  return a < b if metric in LOWER_IS_BETTER else a > b


def ordering_sentence(ordering: Ordering, means: dict[str, float],
                      spreads: dict[str, float] | None = None) -> str:
  """Whether our means put the rows in the papers' order; names the pairs that flip. Two
  rows closer than their combined seed spread (sqrt(s_a^2 + s_b^2)) are tied, whichever
  way round: a flip that small is no reversal, and an order that small is no match."""
  present = [m for m in ordering.best_first if m in means]
  if len(present) < 2:
    return (f"Ordering in {ordering.metric} ({ordering.source}): fewer than two of "
            f"{', '.join(ordering.best_first)} ran, nothing to compare.")
  ours = sorted(present, key=lambda m: means[m], reverse=ordering.metric not in LOWER_IS_BETTER)
  expected = " > ".join(present)
  spreads = spreads or {}
  pairs = [(a, b) for i, a in enumerate(present) for b in present[i + 1:]]
  tied = [(a, b) for a, b in pairs
          if abs(means[a] - means[b]) < math.hypot(spreads.get(a, 0.0), spreads.get(b, 0.0))]
  flips = [(a, b) for a, b in pairs
           if is_better(ordering.metric, means[b], means[a]) and (a, b) not in tied]
  head = (f"Papers' order in {ordering.metric}, best first ({ordering.source}): {expected}; "
          f"ours: {' > '.join(ours)}")
  ties = "; ".join(" ~ ".join(f"{m} {means[m]:.4g}" for m in sorted((a, b), key=ours.index))
                   for a, b in tied)
  if not flips:
    return head + (f": **matches within the seeds' spread** ({ties})." if tied else
                   ": **matches**.")
  reversals = "; ".join(f"{b} {means[b]:.4g} beats {a} {means[a]:.4g}" for a, b in flips)
  return head + f": **does not match** ({reversals}" + (
      f"; tied within the seeds' spread: {ties}" if tied else "") + ")."


def group_table(group: Group, runs: dict[str, list[dict]], curves: dict[str, list[list]],
                failures: dict[str, list[str]], curve_metrics: dict[str, str]) -> str:
  """Markdown for one group.

  runs: model -> its seeds' reproduce.json records; curves: model -> per seed the eval
  curve [(step, value)] of its headline metric, named by curve_metrics[model]; failures:
  model -> the last error line of each failed seed.
  """
  notes = {model: [flatness.curve_note(c, curve_metrics[model]) for c in model_curves]
           for model, model_curves in curves.items()}
  models = [m for m in group.models if m in runs or m in failures]
  if not models:
    return ""
  metrics = [k for k in group.metrics if any(k in r["metrics"] for m in models
                                             for r in runs.get(m, []))]
  anchors = dict(group.anchors)
  lines = [f"### ({group.name}) {group.title}", "",
           "| model | " + " | ".join(metrics) + " | seeds | steps | wall per run (min) | "
           f"{FLATTENED_COLUMN} | published anchor |",
           "|---|" + "---|" * (len(metrics) + 5)]
  means, spreads, devices = {}, {}, {}  # device -> the models that ran on it
  for model in models:
    records = runs.get(model, [])
    cells = []
    for metric in metrics:
      values = [float(r["metrics"][metric]) for r in records if metric in r["metrics"]]
      cells.append(format_mean_spread(values) if values else "-")
      if values:
        means.setdefault(metric, {})[model], spreads.setdefault(metric, {})[model] = \
            mean_spread(values)
    for device in dict.fromkeys(r["device"] for r in records):
      devices.setdefault(device, []).append(model)
    steps = sorted({r["steps"] for r in records})
    walls = [r["wall_s"] / 60 for r in records if r.get("wall_s") is not None]
    flattening = flatness.describe_seed_flattening(notes.get(model, []))
    seeds = f"{len(records)}" + (f" ({len(failures[model])} failed: {failures[model][0]})"
                                 if failures.get(model) else "")
    anchor = anchors.get(model)
    anchor_cell = (f"{anchor.value}: {anchor.source}"
                   + ("" if anchor.same_data else " (other data)")) if anchor else "-"
    lines.append(f"| {model} | " + " | ".join(cells) + f" | {seeds} | "
                 f"{', '.join(map(str, steps)) or '-'}"
                 f"{picked_note(records, curves.get(model, []), curve_metrics.get(model))} | "
                 f"{format_mean_spread(walls) if walls else '-'} | "
                 f"{flattening} | {anchor_cell} |")
  described = (list(devices) if len(devices) == 1 else  # several: each with its models
               [f"{device} ({', '.join(models)})" for device, models in devices.items()])
  lines += ["", f"Device: {'; '.join(sorted(described)) or 'none (no finished run)'}. "
            "Mean ± sample standard deviation over seeds; flattened = the headline metric "
            "changed by at most 0.25% (a likelihood) or 1% (another metric) over the last "
            "quarter of its steps" + NOISY_RULE * any(
                curve_metrics.get(m) in flatness.NOISY for m in models) + "."]
  for ordering in group.orderings:
    if sum(m in models for m in ordering.best_first) < 2:
      continue  # a table of other models of the group (--models): nothing to say
    sentence = ordering_sentence(ordering, means.get(ordering.metric, {}),
                                 spreads.get(ordering.metric, {}))
    if "does not match" in sentence:
      sentence += " " + budget_caveat(ordering, runs, notes)
    lines += ["", sentence]
  return "\n".join(lines) + "\n"


NOISY_RULE = ("; for FID, KID, MIG and accuracy, whose evals scatter by more than that, the "
              "trend of the evals of the last half of the steps (at least 5: the Theil-Sen "
              "slope) moved it by at most 1% a quarter of the run, or Kendall's rank test "
              "found no trend in them (p >= 0.05: no trend beyond the evals' scatter); a "
              "curve of fewer than 5 evals, by the rule before")


def picked_note(records: list[dict], curves: list[list], metric: str | None) -> str:
  """The steps cell's note on a row whose final evaluation ran at the step picked on
  validation (not the last): those steps, and the picking evals' values there (a picking
  run's curves are its validation evals); "" for any other row."""
  picked = [(r.get("final_eval") or {}).get("step", r["steps"]) for r in records]
  if picked == [r["steps"] for r in records]:
    return ""
  values = [dict(curve).get(step) for curve, step in zip(curves, picked)]
  there = (f"; validation {metric} there: {', '.join(f'{v:.4g}' for v in values)}"
           if len(values) == len(picked) and None not in values else "")
  return f" (evaluated at the step picked on validation: {', '.join(map(str, picked))}{there})"


def budget_caveat(ordering: Ordering, runs: dict[str, list[dict]],
                  notes: dict[str, list[dict]]) -> str:
  """Why an ordering may not hold here: the budget, and which rows were still moving (or,
  by a noisy metric's rule, showed no trend beyond their evals' scatter in some seed)."""
  rows = [m for m in ordering.best_first if runs.get(m)]
  steps = sorted({r["steps"] for m in rows for r in runs[m]})
  moving = [m for m in rows if any(note["flat"] is False for note in notes.get(m, []))]
  unclear = [m for m in rows if m not in moving
             and any(note.get("noise") for note in notes.get(m, []))]
  scatter = (f" ({', '.join(unclear)}: in some seed no trend beyond the evals' scatter)"
             if unclear else "")
  return (f"These runs stopped at {', '.join(map(str, steps))} steps, far below the papers' "
          "budgets (hundreds of epochs), on other data" + (
              f"; {', '.join(moving)} had not flattened{scatter}, so the order may still "
              "change." if moving else f"; every row had flattened at this budget{scatter}."))


def results_markdown(header: str, tables: list[str]) -> str:
  return "\n".join([header, ""] + [t for t in tables if t])

"""`python -m gen_jax.reproduce`: the README's results, from runs it makes itself.

  python -m gen_jax.reproduce --budget steps:2000 [--groups a,b] [--models pixelcnn,vae_mlp]
      [--seeds 3] [--root runs/reproduce] [--variant smoke] [--nofinal_eval]
      [--readme README.md] [--dry_run]

Trains every model of the chosen groups (gen_jax.results.GROUPS: a autoregressive, b
latent-variable, c VQ, d GANs, e sequences) at one budget per invocation, each seed a
`python -m gen_jax.main` process in ROOT/<budget>/<model>/seed_<s>. --budget steps:N gives
every run N steps; minutes:M first times a short calibration run of each model on this
machine and gives it the steps that fit M minutes of training (compilation, evaluation
and sampling not counted), kept in ROOT/minutes_M/calibration.json. A run that finished
(its reproduce.json names the final step) is not repeated; an interrupted one resumes
from its checkpoints. Each finished run writes reproduce.json: command, overrides,
device, wall time, steps, final metrics (and the IWAE k=5000 evaluation on the whole
test split for the VAEs unless --nofinal_eval). Then the tables (gen_jax.results) go to
ROOT/results.md (and, with --readme, between that file's marker lines), curves of the
test metric vs steps and vs wall-clock to ROOT/<budget>/plots/, and the seed-0 sample
grids, upscaled with a border, to ROOT/<budget>/samples/.
"""

import dataclasses
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
from absl import app, flags
from PIL import Image

from gen_jax import plots, results, runs

_BUDGET = flags.DEFINE_string("budget", "steps:2000", "steps:N, or minutes:M per run.")
_GROUPS = flags.DEFINE_list("groups", [g.name for g in results.GROUPS], "Groups to run.")
_MODELS = flags.DEFINE_list("models", [], "Only these models of the groups (default: all).")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1; one run per model and seed.")
_ROOT = flags.DEFINE_string("root", "runs/reproduce", "Where the runs and tables go.")
_VARIANT = flags.DEFINE_string("variant", "", "Config variant for every run (e.g. smoke).")
_FINAL_EVAL = flags.DEFINE_bool("final_eval", True, "IWAE k=5000 on the whole test split.")
_NUM_EVALS = flags.DEFINE_integer("num_evals", 10, "Eval points per run (the curves).")
_CALIBRATION_STEPS = flags.DEFINE_integer("calibration_steps", 30,
                                          "Steps of a minutes:M calibration run.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands, run nothing.")
_README = flags.DEFINE_string("readme", None, "Also put the tables into this file, between "
                              "its lines <!-- reproduce:begin --> and <!-- reproduce:end -->.")

README_BEGIN, README_END = "<!-- reproduce:begin -->", "<!-- reproduce:end -->"
IWAE_FINAL = ("--config.eval.iwae_samples=5000", "--config.data.max_eval_examples=0")


@dataclasses.dataclass(frozen=True)
class Run:
  name: str  # the row: ROOT/<budget>/<name>/seed_<s>
  config: str  # configs/<config>.py
  overrides: tuple[str, ...] = ()
  # (config key, run name, same seed?): that run's workdir is passed as --config.<key>
  needs: tuple[tuple[str, str, bool], ...] = ()
  final_eval: tuple[str, ...] = ()  # overrides of the final --mode eval ((): none)
  headline: str = ""  # the metric whose curve says if it flattened ("": the group's first)


CLASSIFIER = (("eval.classifier_workdir", "fmnist_classifier", False),)
RUNS = {run.name: run for run in [
    Run("pixelcnn", "pixelcnn"), Run("gated_pixelcnn", "gated_pixelcnn"),
    Run("pixelcnn_pp", "pixelcnn_pp"), Run("row_lstm", "row_lstm"),
    Run("diagonal_bilstm", "diagonal_bilstm"),
    Run("vae_mlp", "vae_mlp", final_eval=IWAE_FINAL + ("--config.eval.iwae_chunk_size=100",)),
    Run("vae_conv", "vae_conv", final_eval=IWAE_FINAL + (
        "--config.eval.iwae_chunk_size=5", "--config.train.eval_batch_size=100")),
    Run("ae", "ae"), Run("cvae", "cvae"),
    Run("m2_labels100", "semi_supervised_vae", ("--config.data.num_labelled=100",),
        headline="accuracy"),
    Run("m2_labels1000", "semi_supervised_vae", ("--config.data.num_labelled=1000",),
        headline="accuracy"),
    *[Run(f"beta_vae_beta{beta}", "beta_vae", (f"--config.model.beta={beta}.0",),
          headline="mig") for beta in (1, 4, 16)],
    Run("vqvae", "vqvae"), Run("vqvae2", "vqvae2"),
    Run("vqvae_prior", "vqvae_prior", needs=(("vqvae_workdir", "vqvae", True),),
        headline="bits_per_dim"),
    Run("vqvae2_prior", "vqvae2_prior", needs=(("vqvae_workdir", "vqvae2", True),),
        headline="bits_per_dim"),
    Run("fmnist_classifier", "fmnist_classifier"),
    *[Run(f"dcgan_{loss}{'_r1' if r1 else ''}", "dcgan", (f"--config.model.loss={loss}",) + (
        ("--config.model.r1_gamma=1.0", "--config.model.discriminator_batch_norm=False")
        if r1 else ()), needs=CLASSIFIER)
      for r1 in (False, True) for loss in ("non_saturating", "hinge", "minimax")],
    Run("vaegan", "vaegan", needs=CLASSIFIER),
    Run("char_rnn", "char_rnn"), Run("ar_p", "ar_p")]}


def parse_budget(text: str) -> tuple[str, int]:
  """'steps:N' or 'minutes:M' -> (kind, N or M), N, M positive integers."""
  kind, _, amount = text.partition(":")
  if kind not in ("steps", "minutes") or not amount.isdigit() or int(amount) <= 0:
    raise app.UsageError(f"--budget={text}: use steps:N or minutes:M (N, M positive integers)")
  return kind, int(amount)


def seconds_per_step(train_records: list[dict]) -> float:
  """Median seconds per step over a run's train log intervals, the first (which includes
  compilation) left out when there are others."""
  rates = [r["steps_per_s"] for r in train_records if r.get("steps_per_s")]
  if not rates:
    raise ValueError("no train records with steps_per_s")
  return statistics.median(1.0 / rate for rate in (rates[1:] or rates))


def steps_for_minutes(minutes: float, step_seconds: float) -> int:
  return max(1, int(minutes * 60 / step_seconds))


def eval_every(steps: int, num_evals: int) -> int:
  """The eval interval that gives about `num_evals` eval points (the last at the end)."""
  return max(1, steps // max(1, num_evals))


def selected_runs(groups: list[str], models: list[str]) -> list[str]:
  """The chosen groups' models (only `models` when given), each after the runs it needs."""
  known = {g.name: g for g in results.GROUPS}
  unknown = [g for g in groups if g not in known]
  if unknown:
    raise app.UsageError(f"--groups: unknown {', '.join(unknown)}; known: {', '.join(known)}")
  names = [m for g in groups for m in known[g].models]
  missing = [m for m in models if m not in names]
  if missing:
    raise app.UsageError(f"--models: {', '.join(missing)} not in groups {','.join(groups)}")
  ordered = []
  for name in [m for m in names if not models or m in models]:
    for _, other, _ in RUNS[name].needs:
      if other not in ordered:
        ordered.append(other)
    if name not in ordered:
      ordered.append(name)
  return ordered


def run_command(run: Run, seed: int, workdir: str, budget_dir: str, steps: int,
                variant: str, eval_every: int, extra: tuple[str, ...] = ()) -> list[str]:
  config = f"configs/{run.config}.py" + (f":{variant}" if variant else "")
  needed = [f"--config.{key}={os.path.join(budget_dir, other, f'seed_{seed if same else 0}')}"
            for key, other, same in run.needs]
  return [sys.executable, "-m", "gen_jax.main", "--config", config, "--workdir", workdir,
          f"--config.seed={seed}", f"--config.train.num_steps={steps}",
          f"--config.train.eval_every={eval_every}", "--config.train.progress_bar=False",
          *extra, *run.overrides, *needed]


def execute(command: list[str], log_path: str) -> tuple[int, str, float]:
  """Runs `command` from the repository root, appending its output to `log_path`;
  (exit status, last output line, wall seconds)."""
  start = time.perf_counter()
  with open(log_path, "a") as log:
    log.write("$ " + " ".join(command[1:]) + "\n")
    log.flush()
    done = subprocess.run(command, cwd=repository_root(), stdout=log, stderr=subprocess.STDOUT,
                          check=False)
  with open(log_path) as log:
    lines = [line.strip() for line in log if line.strip()]
  return done.returncode, (lines[-1] if lines else "no output")[:160], time.perf_counter() - start


def repository_root() -> str:
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def describe_device() -> str:
  """The device a gen_jax.main process gets here (asked in a child: no accelerator is held)."""
  code = ("import jax, os; d = jax.devices(); kind = d[0].device_kind; print(f'{d[0].platform}"
          "{\"\" if kind == d[0].platform else \" \" + kind} x{len(d)}, {os.cpu_count()} host "
          "CPU cores')")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        check=False)
  description = done.stdout.strip() or "unknown device"
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
  except OSError:
    names = []
  return description + (f" ({names[0]})" if names else "")


def finished_record(workdir: str, steps: int, final_eval: bool) -> dict | None:
  """The run's reproduce.json if it reached `steps` (and has its final eval when asked)."""
  path = os.path.join(workdir, "reproduce.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    record = json.load(f)
  if record.get("steps") != steps or (final_eval and record.get("final_eval") is None):
    return None
  return record


def calibrate(run: Run, budget_dir: str, minutes: int, variant: str, device: str,
              calibration_steps: int) -> dict:
  """Steps of `run` that fit `minutes` of training here (cached in calibration.json)."""
  path = os.path.join(budget_dir, "calibration.json")
  table = json.load(open(path)) if os.path.isfile(path) else {}
  if run.name not in table:
    workdir = os.path.join(budget_dir, "calibration", run.name)
    os.makedirs(workdir, exist_ok=True)
    steps = calibration_steps
    command = run_command(run, 0, workdir, budget_dir, steps, variant, 0, (
        f"--config.train.log_every={max(1, steps // 3)}", "--config.data.max_eval_examples=500"))
    status, last_line, _ = execute(command, os.path.join(workdir, "reproduce.log"))
    if status:
      raise app.UsageError(f"calibration of {run.name} failed: {last_line}")
    step_seconds = seconds_per_step(runs.read_metrics(workdir, "train"))
    table[run.name] = {"seconds_per_step": step_seconds, "device": device,
                       "steps": steps_for_minutes(minutes, step_seconds),
                       "command": " ".join(command[1:])}
    with open(path, "w") as f:
      json.dump(table, f, indent=2, sort_keys=True)
  return table[run.name]


def train_one(run: Run, seed: int, budget_dir: str, steps: int, device: str, *,
              variant: str = "", num_evals: int = 10, final_eval: bool = True) -> dict | str:
  """Trains (or resumes) one run and writes its reproduce.json; the record, or the last
  output line of a failure."""
  workdir = os.path.join(budget_dir, run.name, f"seed_{seed}")
  final = final_eval and bool(run.final_eval)
  done = finished_record(workdir, steps, final)
  if done is not None:
    return done
  os.makedirs(workdir, exist_ok=True)
  log = os.path.join(workdir, "reproduce.log")
  command = run_command(run, seed, workdir, budget_dir, steps, variant,
                        eval_every(steps, num_evals))
  evals = [r for r in runs.read_metrics(workdir, "eval") if r["step"] == steps]
  if not evals:
    print(f"training {run.name} seed {seed} -> {workdir}", flush=True)
    status, last_line, _ = execute(command, log)
    evals = [r for r in runs.read_metrics(workdir, "eval") if r["step"] == steps]
    if status or not evals:
      return last_line
  train_records = runs.read_metrics(workdir, "train")
  record = {"model": run.name, "seed": seed, "steps": steps, "device": device,
            "command": " ".join(command[1:]), "overrides": command[7:],
            "wall_s": max([r.get("wall_s", 0.0) for r in train_records + evals] or [0.0]),
            "metrics": {k: v for k, v in evals[-1].items() if k not in ("step", "split")},
            "final_eval": None}
  if final:
    output = os.path.join(workdir, "final_eval")
    eval_command = command + ["--mode", "eval", f"--output_dir={output}", *run.final_eval]
    print(f"final eval of {run.name} seed {seed}", flush=True)
    status, last_line, wall = execute(eval_command, log)
    final_evals = runs.read_metrics(output, "eval")
    if status or not final_evals:
      return last_line
    record["final_eval"] = {"command": " ".join(eval_command[1:]), "wall_s": wall,
                            "metrics": {k: v for k, v in final_evals[-1].items()
                                        if k not in ("step", "split")}}
    record["metrics"].update(record["final_eval"]["metrics"])
  with open(os.path.join(workdir, "reproduce.json"), "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  return record


def eval_curve(workdir: str, metric: str, x: str = "step") -> list[tuple[float, float]]:
  return [(r.get(x, 0.0), float(r[metric])) for r in runs.read_metrics(workdir, "eval")
          if metric in r and not isinstance(r[metric], str)]


def write_figures(group: results.Group, records: dict, budget_dir: str) -> None:
  """Curves of the group's first reported metric (seed means at shared eval points) vs
  steps and vs wall-clock, and the seed-0 sample grids upscaled with a border."""
  os.makedirs(os.path.join(budget_dir, "plots"), exist_ok=True)
  for metric in group.metrics:
    for x in ("step", "wall_s"):
      lines = {}
      for model in group.models:
        curves = [eval_curve(os.path.join(budget_dir, model, f"seed_{r['seed']}"), metric, x)
                  for r in records.get(model, [])]
        curves = [c for c in curves if c]
        if curves:
          length = min(map(len, curves))
          points = np.array([c[:length] for c in curves], np.float64)  # [seeds, n, 2]
          lines[model] = (points[..., 0].mean(0), points[..., 1].mean(0))
      if lines:
        label = "steps" if x == "step" else "wall-clock s"
        image = plots.curves_plot(lines, title=f"({group.name}) test {metric} vs {label}")
        Image.fromarray(image).save(os.path.join(
            budget_dir, "plots", f"{group.name}_{metric}_{'steps' if x == 'step' else 'wall'}.png"))
  for model in group.models:
    grids = sorted(glob.glob(os.path.join(budget_dir, model, "seed_0", "samples", "*.png")),
                   key=lambda p: int((re.findall(r"_(\d+)\.png$", p) or ["-1"])[0]))
    if grids:
      os.makedirs(os.path.join(budget_dir, "samples"), exist_ok=True)
      grid = np.asarray(Image.open(grids[-1]).convert("RGB"))
      Image.fromarray(plots.upscale_with_border(grid, 3, 8)).save(
          os.path.join(budget_dir, "samples", f"{model}.png"))


def replace_readme_block(path: str, text: str | None) -> None:
  """Checks (text None) or fills the README's reproduce block."""
  try:
    with open(path) as f:
      readme = f.read()
  except OSError as error:
    raise app.UsageError(f"--readme={path}: {error.strerror}") from error
  begin, end = readme.find(README_BEGIN + "\n"), readme.find(README_END)
  if begin < 0 or end < begin:
    raise app.UsageError(f"--readme={path}: no {README_BEGIN} ... {README_END} lines")
  if text is not None:
    with open(path, "w") as f:
      f.write(readme[:begin + len(README_BEGIN) + 1] + text + readme[end:])


def print_commands(names: list[str], kind: str, amount: int, budget_dir: str) -> None:
  """--dry_run: the training commands (for minutes:M, of the models already calibrated)."""
  calibrated = os.path.join(budget_dir, "calibration.json")
  known = json.load(open(calibrated)) if os.path.isfile(calibrated) else {}
  for name in names:
    if kind == "minutes" and name not in known:
      print(f"# {name}: steps from a {_CALIBRATION_STEPS.value}-step calibration run first")
      continue
    steps = amount if kind == "steps" else known[name]["steps"]
    for seed in range(_SEEDS.value):
      workdir = os.path.join(budget_dir, name, f"seed_{seed}")
      print(" ".join(run_command(RUNS[name], seed, workdir, budget_dir, steps,
                                 _VARIANT.value, eval_every(steps, _NUM_EVALS.value))[1:]))


def tables_markdown(records: dict, failures: dict, budgets: dict, kind: str, amount: int,
                    budget_dir: str) -> str:
  """The chosen groups' tables under a header naming the budget and the command; writes
  each group's curves and sample grids on the way."""
  tables = []
  for group in [g for g in results.GROUPS if g.name in _GROUPS.value]:
    curves = {}
    for model, model_records in records.items():
      metric = RUNS[model].headline or next(
          (m for m in group.metrics if m in model_records[0]["metrics"]), None)
      if metric is not None and model in group.models:
        curves[model] = [eval_curve(os.path.join(budget_dir, model, f"seed_{r['seed']}"),
                                    metric) for r in model_records]
    tables.append(results.group_table(group, records, curves, failures))
    write_figures(group, records, budget_dir)
  how = (f"{amount} steps per run" if kind == "steps" else
         f"{amount} minutes of training steps per run at each model's calibrated step time "
         f"(steps: {', '.join(f'{n} {s}' for n, s in budgets.items())})")
  command = " ".join(["python -m gen_jax.reproduce", f"--budget {kind}:{amount}",
                      f"--groups {','.join(_GROUPS.value)}", f"--seeds {_SEEDS.value}"]
                     + ([f"--models {','.join(_MODELS.value)}"] if _MODELS.value else [])
                     + ([f"--variant {_VARIANT.value}"] if _VARIANT.value else [])
                     + ([] if _FINAL_EVAL.value else ["--nofinal_eval"]))
  header = (f"Budget: {how}; seeds 0-{_SEEDS.value - 1}; every number below from `{command}` "
            f"(each run's exact command in its reproduce.json under "
            f"{_ROOT.value}/{kind}_{amount}/).")
  return results.results_markdown(header, tables)


def main(argv):
  del argv
  kind, amount = parse_budget(_BUDGET.value)
  if _SEEDS.value < 1:
    raise app.UsageError(f"--seeds={_SEEDS.value}: at least 1")
  names = selected_runs(_GROUPS.value, _MODELS.value)
  if _README.value:
    replace_readme_block(_README.value, None)  # a bad --readme fails now, not after the runs
  budget_dir = os.path.abspath(os.path.join(_ROOT.value, f"{kind}_{amount}"))
  if _DRY_RUN.value:
    print_commands(names, kind, amount, budget_dir)
    return
  device = describe_device()
  records, failures, budgets = {}, {}, {}
  for name in names:
    budgets[name] = amount if kind == "steps" else calibrate(
        RUNS[name], budget_dir, amount, _VARIANT.value, device, _CALIBRATION_STEPS.value)["steps"]
    for seed in range(_SEEDS.value):
      outcome = train_one(RUNS[name], seed, budget_dir, budgets[name], device,
                          variant=_VARIANT.value, num_evals=_NUM_EVALS.value,
                          final_eval=_FINAL_EVAL.value)
      if isinstance(outcome, str):
        failures.setdefault(name, []).append(outcome)
      else:
        records.setdefault(name, []).append(outcome)
  markdown = tables_markdown(records, failures, budgets, kind, amount, budget_dir)
  with open(os.path.join(os.path.abspath(_ROOT.value), "results.md"), "w") as f:
    f.write(markdown)
  if _README.value:
    replace_readme_block(_README.value, markdown)
  print(markdown)


if __name__ == "__main__":
  app.run(main)

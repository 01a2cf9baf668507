"""`python -m gen_jax.reproduce`: the README's results, from runs it makes itself.

  python -m gen_jax.reproduce --budget steps:2000 [--groups a,b] [--models pixelcnn,vae_mlp]
      [--seeds 3] [--root runs/reproduce] [--variant smoke] [--eval_examples 1000]
      [--nofinal_eval] [--iwae_samples 5000] [--parallel 1]
      [--tables_file docs/results.md] [--summary README.md] [--dry_run] [--tabulate_only]

Trains each model of the chosen groups (results.GROUPS) at one budget, each seed a
`gen_jax.main` process in ROOT/<budget>/<model>/seed_<s>, --parallel at once (a run built
on another starts once that one has trained, beside its final evaluation). minutes:M
gives each model the steps that fit M minutes at a calibration run's step time. Training
evals (the curves) see --eval_examples test examples; a final `--mode eval` on the whole
split (IWAE over --iwae_samples for the VAEs) gives the tables' numbers. Finished runs
are not repeated (other final-eval settings redo only that eval); interrupted ones
resume. Writes ROOT/results.md (and this command's section of --tables_file, and
--summary's one-row-per-table summary), curves vs steps and wall-clock and upscaled seed-0
grids under ROOT/<budget>/. --tabulate_only rewrites the tables from finished runs alone
(after a change to gen_jax/results.py, over the archived records), training nothing.
"""

import json
import os
import statistics
import subprocess
import sys
import threading

from absl import app, flags

from gen_jax import figures, reproduce_run, results, runs, schedule, tables_file

_BUDGET = flags.DEFINE_string("budget", "steps:2000", "steps:N, or minutes:M per run.")
_GROUPS = flags.DEFINE_list("groups", [g.name for g in results.GROUPS], "Groups to run.")
_MODELS = flags.DEFINE_list("models", [], "Only these models of the groups, trained in this "
                            "order, each after the runs it needs (default: all, in the groups' "
                            "order).")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1; one run per model and seed.")
_ROOT = flags.DEFINE_string("root", "runs/reproduce", "Where the runs and tables go.")
_VARIANT = flags.DEFINE_string("variant", "", "Config variant for every run (e.g. smoke).")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 1000, "Test examples per eval during "
                                      "training (0: all).")
_FINAL_EVAL = flags.DEFINE_bool("final_eval", True, "After training, evaluate on the whole "
                                "test split (the table's numbers).")
_IWAE_SAMPLES = flags.DEFINE_integer("iwae_samples", 5000, "Importance samples of the VAEs' "
                                     "final IWAE bound (a new value redoes only final evals).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Trainings at once (on a GPU each gets 0.9/N "
                                 "of its memory unless XLA_PYTHON_CLIENT_MEM_FRACTION is set).")
_NUM_EVALS = flags.DEFINE_integer("num_evals", 10, "Eval points per run (the curves).")
_CALIBRATION_STEPS = flags.DEFINE_integer("calibration_steps", 30,
                                          "Steps of a minutes:M calibration run.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands, run nothing.")
_TABULATE_ONLY = flags.DEFINE_bool(
    "tabulate_only", False, "Train and evaluate nothing: write the tables from the runs "
    "already finished under ROOT (such as an archive's reproduce.json and metrics.jsonl "
    "files copied there, into a writable ROOT: the tables and figures go there too); every "
    "other run is a failure in the table.")
_TABLES_FILE = flags.DEFINE_string(
    "tables_file", None, "Also put the tables into this file (docs/results.md), between its "
    "lines <!-- reproduce:begin --> and <!-- reproduce:end -->, in this command's section "
    "(other commands' are kept).")
_FID_CLASSIFIER = flags.DEFINE_string(
    "fid_classifier", None, "A finished fmnist_classifier run's workdir, checkpoints and all "
    "(docs/reproduce/fid_classifier/fmnist_classifier/seed_0), to score the GANs with: "
    "copied to ROOT/<budget>/fmnist_classifier/seed_0 instead of training one there.")
_SUMMARY = flags.DEFINE_string("summary", None, "With --tables_file: also put a short table of "
                               "every section of that file's block (one row per table) into "
                               "this file, between its lines <!-- reproduce:summary:begin --> "
                               "and <!-- reproduce:summary:end -->.")


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


def selected_runs(groups: list[str], models: list[str]) -> list[str]:
  """The chosen groups' models (only `models`, in their order, when given), each after the
  runs it needs."""
  known = {g.name: g for g in results.GROUPS}
  unknown = [g for g in groups if g not in known]
  if unknown:
    raise app.UsageError(f"--groups: unknown {', '.join(unknown)}; known: {', '.join(known)}")
  names = [m for g in groups for m in known[g].models]
  missing = [m for m in models if m not in names]
  if missing:
    raise app.UsageError(f"--models: {', '.join(missing)} not in groups {','.join(groups)}")
  ordered = []
  for name in models or names:
    for _, other, _ in results.RUNS[name].needs:
      if other not in ordered:
        ordered.append(other)
    if name not in ordered:
      ordered.append(name)
  return ordered


def describe_device() -> str:
  """The device a gen_jax.main process gets here (asked in a child: no accelerator is held)."""
  code = ("import jax, os; d = jax.devices(); kind = d[0].device_kind; print(f'{d[0].platform}"
          "{\"\" if kind == d[0].platform else \" \" + kind} x{len(d)}, {os.cpu_count()} host "
          "CPU cores')")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        check=False)
  names = []
  if os.path.isfile("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
  return (done.stdout.strip() or "unknown device") + (f" ({names[0]})" if names else "")


def calibrate(run: results.Run, budget_dir: str, minutes: int, variant: str, device: str,
              calibration_steps: int, tabulate_only: bool = False) -> dict:
  """Steps of `run` that fit `minutes` of training here (cached in calibration.json)."""
  path = os.path.join(budget_dir, "calibration.json")
  table = json.load(open(path)) if os.path.isfile(path) else {}
  if run.name not in table and tabulate_only:
    raise app.UsageError(f"--tabulate_only: {run.name} has no calibration in {path}; its "
                         "steps are unknown (copy the budget's calibration.json there)")
  if run.name not in table:
    workdir = os.path.join(budget_dir, "calibration", run.name)
    os.makedirs(workdir, exist_ok=True)
    steps = calibration_steps
    command = reproduce_run.run_command(run, 0, workdir, budget_dir, steps, variant, 0, (
        f"--config.train.log_every={max(1, steps // 3)}",), eval_examples=500)
    status, last_line, _ = reproduce_run.execute(command,
                                                 os.path.join(workdir, "reproduce.log"))
    if status:
      raise app.UsageError(f"calibration of {run.name} failed: {last_line}")
    step_seconds = seconds_per_step(runs.read_metrics(workdir, "train"))
    table[run.name] = {"seconds_per_step": step_seconds, "device": device,
                       "steps": steps_for_minutes(minutes, step_seconds),
                       "command": " ".join(command[1:])}
    with open(path, "w") as f:
      json.dump(table, f, indent=2, sort_keys=True)
  return table[run.name]


def needed(job: tuple[str, int]) -> list[tuple[str, int]]:
  """The (model, seed) jobs whose checkpoints the run `job` reads (RUNS[model].needs)."""
  name, seed = job
  return [(other, seed if same else 0) for _, other, same in results.RUNS[name].needs]


def print_commands(names: list[str], kind: str, amount: int, budget_dir: str) -> None:
  """--dry_run: the training commands (for minutes:M, of the models already calibrated)."""
  calibrated = os.path.join(budget_dir, "calibration.json")
  known = json.load(open(calibrated)) if os.path.isfile(calibrated) else {}
  for name in names:
    if kind == "minutes" and name not in known:
      print(f"# {name}: steps from a {_CALIBRATION_STEPS.value}-step calibration run first")
      continue
    steps = results.RUNS[name].steps(amount if kind == "steps" else known[name]["steps"])
    for seed in range(_SEEDS.value):
      workdir = os.path.join(budget_dir, name, f"seed_{seed}")
      print(" ".join(reproduce_run.run_command(
          results.RUNS[name], seed, workdir, budget_dir, steps, _VARIANT.value,
          reproduce_run.eval_every(steps, _NUM_EVALS.value),
          eval_examples=_EVAL_EXAMPLES.value)[1:]))


def tables_markdown(records: dict, failures: dict, budgets: dict, kind: str, amount: int,
                    budget_dir: str) -> str:
  """The chosen groups' tables under a header naming the budget and the command; writes
  each group's curves and sample grids on the way."""
  tables = []
  for group in [g for g in results.GROUPS if g.name in _GROUPS.value]:
    curves, curve_metrics = {}, {}
    for model, model_records in records.items():
      metric = results.RUNS[model].headline or next(
          (m for m in group.metrics if m in model_records[0]["metrics"]), None)
      if metric is not None and model in group.models:
        curves[model] = [figures.eval_curve(os.path.join(budget_dir, model, f"seed_{r['seed']}"),
                                    metric) for r in model_records]
        curve_metrics[model] = metric
    tables.append(results.group_table(group, records, curves, failures, curve_metrics))
    figures.write_figures(group, records, budget_dir)
  how = (f"{amount} steps per run" if kind == "steps" else
         f"{amount} minutes of training steps per run at each model's calibrated step time "
         f"(steps: {', '.join(f'{n} {s}' for n, s in budgets.items())})")
  for name in budgets:
    run = results.RUNS[name]
    how += (f" ({name}: {budgets[name]} steps at every budget)" if run.fixed_steps else
            f" ({name}: {run.steps_scale}x that, {budgets[name]} steps)"
            if run.steps_scale != 1 else "")
  command = " ".join(["python -m gen_jax.reproduce", f"--budget {kind}:{amount}",
                      f"--groups {','.join(_GROUPS.value)}", f"--seeds {_SEEDS.value}"]
                     + ([f"--models {','.join(_MODELS.value)}"] if _MODELS.value else [])
                     + ([f"--variant {_VARIANT.value}"] if _VARIANT.value else [])
                     + [f"--{flag.name}={flag.value}" for flag in (
                         _ROOT, _EVAL_EXAMPLES, _IWAE_SAMPLES, _PARALLEL, _NUM_EVALS,
                         _FID_CLASSIFIER)
                        if flag.value != flag.default]
                     + ([] if _FINAL_EVAL.value else ["--nofinal_eval"]))
  evals = (f"the curves' evals on the first {_EVAL_EXAMPLES.value} test examples"
           if _EVAL_EXAMPLES.value else "evals on the whole test split")
  picked = [name for name in budgets if "--config.train.select_metric" in " ".join(
      results.RUNS[name].overrides)]
  which = f"the first {_EVAL_EXAMPLES.value}" if _EVAL_EXAMPLES.value else "all"
  evals += (f" ({', '.join(picked)}: on {which} validation examples instead, held out of "
            "its training data, and the final evaluation at the step whose validation eval "
            "was best)" if picked else "")
  final = ("the numbers from a final evaluation on the whole test split" if _FINAL_EVAL.value
           else "the numbers from the last training eval")
  header = (f"Budget: {how}; seeds 0-{_SEEDS.value - 1}; {evals}, {final}; every number "
            f"below from `{command}` (each run's exact command in its reproduce.json under "
            f"{_ROOT.value}/{kind}_{amount}/).")
  return results.results_markdown(header, tables)


def main(argv):
  del argv
  kind, amount = parse_budget(_BUDGET.value)
  if min(_SEEDS.value, _PARALLEL.value) < 1:
    raise app.UsageError(f"--seeds={_SEEDS.value}, --parallel={_PARALLEL.value}: at least 1")
  names = selected_runs(_GROUPS.value, _MODELS.value)
  section = " ".join([f"{_ROOT.value}/{kind}_{amount}", ",".join(_GROUPS.value),
                      ",".join(_MODELS.value)]).strip()
  if _TABLES_FILE.value:  # a bad --tables_file or --summary fails now, not after the runs
    tables_file.replace_section(_TABLES_FILE.value, section, None)
  if _SUMMARY.value:
    if not _TABLES_FILE.value:
      raise app.UsageError("--summary: it summarizes the --tables_file's tables; set "
                           "--tables_file")
    tables_file.replace_summary(_SUMMARY.value, _TABLES_FILE.value, check=True)
  budget_dir = os.path.abspath(os.path.join(_ROOT.value, f"{kind}_{amount}"))
  if _DRY_RUN.value:
    print_commands(names, kind, amount, budget_dir)
    return
  if _PARALLEL.value > 1:  # on a GPU each run takes its share of the memory, not 75%
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / _PARALLEL.value:.3f}")
  device = describe_device() + (f"; {_PARALLEL.value} runs at once" if _PARALLEL.value > 1
                                else "")
  budgets, calibrating = {}, threading.Lock()

  def budget(name):  # minutes:M -> the calibrated steps (timed once, one model at a time)
    with calibrating:
      if name not in budgets:
        run = results.RUNS[name]
        budgets[name] = run.steps(amount if kind == "steps" or run.fixed_steps else calibrate(
            run, budget_dir, amount, _VARIANT.value, device, _CALIBRATION_STEPS.value,
            _TABULATE_ONLY.value)["steps"])
    return budgets[name]

  if _FID_CLASSIFIER.value and "fmnist_classifier" in names:
    reproduce_run.adopt_run(_FID_CLASSIFIER.value, os.path.join(
        budget_dir, "fmnist_classifier", "seed_0"), "--fid_classifier")
  for name in [n for n in names if not results.RUNS[n].needs]:  # before any training
    budget(name)
  settings = dict(variant=_VARIANT.value, num_evals=_NUM_EVALS.value,
                  final_eval=_FINAL_EVAL.value, eval_examples=_EVAL_EXAMPLES.value,
                  iwae_samples=_IWAE_SAMPLES.value, tabulate_only=_TABULATE_ONLY.value)
  outcomes = schedule.run_jobs(
      [(name, seed) for name in names for seed in range(_SEEDS.value)], needed,
      lambda job: reproduce_run.train_run(results.RUNS[job[0]], job[1], budget_dir,
                                          budget(job[0]), device, **settings),
      _PARALLEL.value,
      lambda job, trained: reproduce_run.evaluate_run(results.RUNS[job[0]], trained,
                                                      budget_dir, **settings))
  records, failures = {}, {}
  for name, seed in sorted(outcomes, key=lambda job: (names.index(job[0]), job[1])):
    outcome = outcomes[name, seed]
    (failures if isinstance(outcome, str) else records).setdefault(name, []).append(outcome)
  markdown = tables_markdown(records, failures, budgets, kind, amount, budget_dir)
  with open(os.path.join(os.path.abspath(_ROOT.value), "results.md"), "w") as f:
    f.write(markdown)
  if _TABLES_FILE.value:
    tables_file.replace_section(_TABLES_FILE.value, section, markdown)
  if _SUMMARY.value:
    tables_file.replace_summary(_SUMMARY.value, _TABLES_FILE.value)
  print(markdown)


if __name__ == "__main__":
  app.run(main)

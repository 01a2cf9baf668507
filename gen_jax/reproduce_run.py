"""One run of `gen_jax.reproduce`: its `gen_jax.main` commands, its training, its final
evaluation on the whole test split, and its record, ROOT/<budget>/<model>/seed_<s>/
reproduce.json (written once the run is finished; a finished run is not repeated)."""

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app

from gen_jax import results, runs


def eval_every(steps: int, num_evals: int) -> int:
  """The eval interval that gives about `num_evals` eval points (the last at the end)."""
  return max(1, steps // max(1, num_evals))


def run_command(run: results.Run, seed: int, workdir: str, budget_dir: str, steps: int,
                variant: str, eval_every: int, extra: tuple[str, ...] = (),
                eval_examples: int = 1000) -> list[str]:
  config = f"configs/{run.config}.py" + (f":{variant}" if variant else "")
  needed = [f"--config.{key}={os.path.join(budget_dir, other, f'seed_{seed if same else 0}')}"
            for key, other, same in run.needs]
  return [sys.executable, "-m", "gen_jax.main", "--config", config, "--workdir", workdir,
          f"--config.seed={seed}", f"--config.train.num_steps={steps}",
          f"--config.train.eval_every={eval_every}", "--config.train.progress_bar=False",
          f"--config.data.max_eval_examples={eval_examples}", *extra, *run.overrides, *needed]


def training_command(run: results.Run, seed: int, budget_dir: str, steps: int, variant: str,
                     num_evals: int, eval_examples: int) -> list[str]:
  """run_command for `seed`'s workdir under `budget_dir`, with `num_evals` evals."""
  return run_command(run, seed, os.path.join(budget_dir, run.name, f"seed_{seed}"), budget_dir,
                     steps, variant, eval_every(steps, num_evals), eval_examples=eval_examples)


def final_eval_overrides(run: results.Run, iwae_samples: int) -> tuple[str, ...]:
  """The final --mode eval's overrides: the whole test split (and the VAEs' IWAE bound)."""
  return ("--config.data.max_eval_examples=0",
          *((f"--config.eval.iwae_samples={iwae_samples}",) if run.iwae else ()),
          *run.final_eval)


def execute(command: list[str], log_path: str) -> tuple[int, str, float]:
  """Runs `command` from the repository root, appending its output to `log_path`;
  (exit status, last output line, wall seconds)."""
  start = time.perf_counter()
  with open(log_path, "a") as log:
    log.write("$ " + " ".join(command[1:]) + "\n")
    log.flush()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, check=False)
  with open(log_path) as log:
    lines = [line.strip() for line in log if line.strip()]
  return done.returncode, (lines[-1] if lines else "no output")[:160], time.perf_counter() - start


def train_run(run: results.Run, seed: int, budget_dir: str, steps: int, device: str, *,
              variant: str = "", num_evals: int = 10, final_eval: bool = True,
              eval_examples: int = 1000, iwae_samples: int = 5000,
              tabulate_only: bool = False) -> dict | str:
  """Trains (or resumes) one run: its record (written to reproduce.json here only without a
  `final_eval`), a finished run's record, or the last output line of a failure (with
  `tabulate_only`, a failure for any run not finished)."""
  workdir = os.path.join(budget_dir, run.name, f"seed_{seed}")
  path = os.path.join(workdir, "reproduce.json")
  done = json.load(open(path)) if os.path.isfile(path) else {}
  if results.is_finished(done, steps, final_eval_overrides(run, iwae_samples) if final_eval
                         else ()):
    return done
  if tabulate_only:
    return "not finished (--tabulate_only trains nothing)"
  os.makedirs(workdir, exist_ok=True)
  command = training_command(run, seed, budget_dir, steps, variant, num_evals, eval_examples)
  evals = [r for r in runs.training_evals(workdir) if r["step"] == steps]
  if not evals:
    print(f"training {run.name} seed {seed} -> {workdir}", flush=True)
    status, last_line, _ = execute(command, os.path.join(workdir, "reproduce.log"))
    evals = [r for r in runs.training_evals(workdir) if r["step"] == steps]
    if status or not evals:
      return last_line
  train_records = runs.read_metrics(workdir, "train")
  record = {"model": run.name, "seed": seed, "steps": steps, "device": device,
            "command": " ".join(command[1:]), "overrides": command[7:],
            "wall_s": max([r.get("wall_s", 0.0) for r in train_records + evals] or [0.0]),
            "metrics": {k: v for k, v in evals[-1].items() if k not in ("step", "split")},
            "final_eval": None}
  if not final_eval:
    with open(path, "w") as f:
      json.dump(record, f, indent=2, sort_keys=True)
  return record


def evaluate_run(run: results.Run, trained: dict, budget_dir: str, *, variant: str = "",
                 num_evals: int = 10, final_eval: bool = True, eval_examples: int = 1000,
                 iwae_samples: int = 5000, **_) -> dict | str:
  """The final evaluation of a run `train_run` trained, on the whole test split; its record,
  written to reproduce.json, or the last output line of a failure. A finished record, or
  any without `final_eval`, comes back as it is."""
  wanted = final_eval_overrides(run, iwae_samples) if final_eval else ()
  if results.is_finished(trained, trained["steps"], wanted):
    return trained
  workdir = os.path.join(budget_dir, run.name, f"seed_{trained['seed']}")
  output = os.path.join(workdir, "final_eval")
  eval_command = training_command(run, trained["seed"], budget_dir, trained["steps"], variant,
                                  num_evals, eval_examples) + [
                                      "--mode", "eval", f"--output_dir={output}", *wanted]
  print(f"final eval of {run.name} seed {trained['seed']}", flush=True)
  status, last_line, wall = execute(eval_command, os.path.join(workdir, "reproduce.log"))
  final_evals = runs.read_metrics(output, "eval")
  if status or not final_evals:
    return last_line
  record = {**trained, "metrics": dict(trained["metrics"]), "final_eval": {
      "command": " ".join(eval_command[1:]), "wall_s": wall,
      "step": final_evals[-1]["step"],  # picked on validation, or the last
      "metrics": {k: v for k, v in final_evals[-1].items() if k not in ("step", "split")}}}
  record["metrics"].update(record["final_eval"]["metrics"])
  with open(os.path.join(workdir, "reproduce.json"), "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  return record


def adopt_run(source: str, workdir: str, flag: str) -> None:
  """Copies the finished run `source` to `workdir`, where it counts as finished (a run
  there already must be the same one: its reproduce.json equal to `source`'s)."""
  record = os.path.join(source, "reproduce.json")
  if not os.path.isfile(record) or not os.path.isdir(os.path.join(source, "checkpoints")):
    raise app.UsageError(f"{flag}={source}: not a finished run's workdir (no reproduce.json "
                         "or checkpoints/ there)")
  mine = os.path.join(workdir, "reproduce.json")
  if os.path.isfile(mine) and json.load(open(mine)) == json.load(open(record)):
    return
  if os.path.isdir(workdir) and os.listdir(workdir):
    raise app.UsageError(f"{flag}={source}: {workdir} holds another run; move it away, or "
                         f"leave out {flag}")
  shutil.copytree(source, workdir, dirs_exist_ok=True)

"""`python -m gen_jax.reproduce`: the README's results table, from runs it makes itself.

  python -m gen_jax.reproduce --steps 2000 --seeds 0,1,2 [--configs pixelcnn,vae_mlp]
      [--root runs/reproduce] [--output results/RESULTS.md] [--readme README.md]
      [--variant smoke] [--dry_run]

Trains each family's headline config (HEADLINES) on Fashion-MNIST for the same
fixed budget (--steps) with every seed, each run a `python -m gen_jax.main`
process in ROOT/<config>/seed_<s>, then reads the last eval record of each
run's own metrics.jsonl and writes a Markdown table of mean +- standard
deviation over the seeds (and, with --readme, puts it into the README between
two marker lines). A run that already finished its budget is not
repeated; a run that fails is reported as failed with its last error line.
"""

import dataclasses
import os
import statistics
import subprocess
import sys

import jax
from absl import app, flags

from gen_jax import runs

_STEPS = flags.DEFINE_integer("steps", 2000, "Train steps per run (the fixed budget).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; one run per config and seed.")
_CONFIGS = flags.DEFINE_list("configs", [], "Subset of the headline configs (default: all).")
_ROOT = flags.DEFINE_string("root", "runs/reproduce", "Where the runs' workdirs go.")
_OUTPUT = flags.DEFINE_string("output", "results/RESULTS.md", "The Markdown table.")
_VARIANT = flags.DEFINE_string("variant", "", "Config variant for every run (e.g. smoke).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands, run nothing.")
_README = flags.DEFINE_string(
    "readme", None, "Also put the table into this file, between its lines "
    f"{'<!-- reproduce:begin -->'!r} and {'<!-- reproduce:end -->'!r} (e.g. README.md).")

README_BEGIN, README_END = "<!-- reproduce:begin -->", "<!-- reproduce:end -->"


@dataclasses.dataclass(frozen=True)
class Headline:
  config: str  # configs/<config>.py
  metrics: tuple[str, ...]  # eval metrics reported, the first is the headline
  flags: tuple[str, ...] = ()  # extra --config overrides of the reproduction
  # a headline config whose seed-0 run this one uses, at --config.<key>=<its workdir>
  # (e.g. the classifier whose features define FID): {key: config}
  needs: tuple[tuple[str, str], ...] = ()


HEADLINES = [
    Headline("pixelcnn", ("bits_per_dim",)),
    Headline("gated_pixelcnn", ("bits_per_dim",)),
    Headline("pixelcnn_pp", ("bits_per_dim",)),
    Headline("row_lstm", ("bits_per_dim",)),
    Headline("diagonal_bilstm", ("bits_per_dim",)),
    Headline("char_rnn", ("bits_per_char",)),
    Headline("ar_p", ("nll",)),
    Headline("ae", ("psnr",)),
    Headline("vae_mlp", ("nll_nats", "iwae_nats")),
    Headline("vae_conv", ("bits_per_dim", "iwae_bits_per_dim")),
    Headline("beta_vae", ("mig",)),
    Headline("semi_supervised_vae", ("accuracy",)),
    Headline("vqvae", ("psnr", "codebook_perplexity", "dead_codes")),
    Headline("fmnist_classifier", ("accuracy",)),
    Headline("dcgan", ("fid", "kid", "class_entropy"),
             needs=(("eval.classifier_workdir", "fmnist_classifier"),)),
]


def repository_root() -> str:
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_workdir(root: str, config: str, seed: int) -> str:
  return os.path.abspath(os.path.join(root, config, f"seed_{seed}"))


def run_command(headline: Headline, seed: int, steps: int, root: str, variant: str) -> list[str]:
  config = f"configs/{headline.config}.py" + (f":{variant}" if variant else "")
  needed = [f"--config.{key}={run_workdir(root, other, 0)}" for key, other in headline.needs]
  return [sys.executable, "-m", "gen_jax.main", "--config", config,
          "--workdir", run_workdir(root, headline.config, seed), f"--config.seed={seed}",
          f"--config.train.num_steps={steps}", "--config.train.progress_bar=False",
          *headline.flags, *needed]


def with_needs(headlines: list[Headline], known: dict[str, Headline]) -> list[Headline]:
  """`headlines` with the runs they need added, each needed run before its users."""
  ordered = []
  for headline in headlines:
    for _, other in headline.needs:
      if known[other] not in ordered:
        ordered.append(known[other])
    if headline not in ordered:
      ordered.append(headline)
  return ordered


def last_eval(workdir: str, steps: int) -> dict | None:
  """The last eval record of a run that reached `steps`, or None."""
  evals = [r for r in runs.read_metrics(workdir, "eval") if r["step"] == steps]
  return evals[-1] if evals else None


def summarize(values: list[float]) -> str:
  if len(values) == 1:
    return f"{values[0]:.4g}"
  return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def results_table(rows: list[tuple[Headline, dict[str, list[float]], list[str]]],
                  steps: int, seeds: list[int], device: str, configs: list[str]) -> str:
  """Markdown: one row per config, mean ± sample std over seeds of each metric."""
  subset = f" --configs {','.join(configs)}" if configs else ""
  lines = [f"Budget: {steps} steps per run, seeds {', '.join(map(str, seeds))}; device: {device}. "
           f"Reproduce: `python -m gen_jax.reproduce --steps {steps} "
           f"--seeds {','.join(map(str, seeds))}{subset}`.", "",
           "| config | metric | mean ± std | runs |", "|---|---|---|---|"]
  for headline, values, failures in rows:
    for metric in headline.metrics:
      found = values.get(metric, [])
      cell = summarize(found) if found else "n/a"
      note = f"{len(found)}" + (f" ({len(failures)} failed: {failures[0]})" if failures else "")
      lines.append(f"| {headline.config} | {metric} | {cell} | {note} |")
  return "\n".join(lines) + "\n"


def readme_block(path: str) -> tuple[str, int, int]:
  """(text of `path`, start, end) of what lies between its README_BEGIN and README_END lines."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError as error:
    raise app.UsageError(f"--readme={path}: {error.strerror}") from error
  begin, end = text.find(README_BEGIN + "\n"), text.find(README_END)
  if begin < 0 or end < begin:
    raise app.UsageError(f"--readme={path}: no {README_BEGIN} ... {README_END} lines to "
                         "put the table between")
  return text, begin + len(README_BEGIN) + 1, end


def replace_block(path: str, table: str) -> None:
  text, start, end = readme_block(path)
  with open(path, "w") as f:
    f.write(text[:start] + table + text[end:])


def main(argv):
  del argv
  root_dir = repository_root()
  known = {h.config: h for h in HEADLINES}
  unknown = [c for c in _CONFIGS.value if c not in known]
  if unknown:
    sys.exit(f"error: unknown headline config(s) {', '.join(unknown)}; known: {', '.join(known)}")
  headlines = with_needs([known[c] for c in _CONFIGS.value] if _CONFIGS.value else [
      h for h in HEADLINES if os.path.exists(os.path.join(root_dir, "configs", f"{h.config}.py"))],
                         known)
  seeds = [int(s) for s in _SEEDS.value]
  if _README.value:
    readme_block(_README.value)  # a bad --readme fails now, not after hours of runs
  rows = []
  for headline in headlines:
    values, failures = {}, []
    for seed in seeds:
      workdir = run_workdir(_ROOT.value, headline.config, seed)
      command = run_command(headline, seed, _STEPS.value, _ROOT.value, _VARIANT.value)
      if _DRY_RUN.value:
        print(" ".join(command[1:]))
        continue
      record = last_eval(workdir, _STEPS.value)
      if record is None:
        print(f"running {headline.config} seed {seed} -> {workdir}", flush=True)
        done = subprocess.run(command, cwd=root_dir, capture_output=True, text=True, check=False)
        record = last_eval(workdir, _STEPS.value)
        if done.returncode or record is None:
          failures.append((done.stderr.strip().splitlines() or ["no output"])[-1][:120])
          continue
      for metric in headline.metrics:
        if metric in record:
          values.setdefault(metric, []).append(float(record[metric]))
    rows.append((headline, values, failures))
  if _DRY_RUN.value:
    return
  device = jax.devices()[0]
  table = results_table(rows, _STEPS.value, seeds, f"{device.platform} ({device.device_kind})",
                        _CONFIGS.value)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    f.write(table)
  if _README.value:
    replace_block(_README.value, table)
  print(table)


if __name__ == "__main__":
  app.run(main)

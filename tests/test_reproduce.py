"""gen_jax.reproduce and gen_jax.results: budgets, calibration, tables, verdicts, resuming."""

import json
import math
import os
import subprocess
import sys
import threading
import types

import numpy as np
import pytest
from absl import app, flags
from absl.testing import flagsaver

from conftest import REPO, load_config, read_only
from gen_jax import (figures, flatness, plots, reproduce, reproduce_run, results, schedule,
                     tables_file, writers)


def test_budget_parsing():
  assert reproduce.parse_budget("steps:2000") == ("steps", 2000)
  assert reproduce.parse_budget("minutes:30") == ("minutes", 30)
  for bad in ("hours:2", "steps:0", "steps:x", "steps", "minutes:-3"):
    with pytest.raises(app.UsageError, match=f"--budget={bad}: use steps:N or minutes:M"):
      reproduce.parse_budget(bad)


def test_calibration_leaves_out_the_compiling_interval_and_converts_minutes_to_steps():
  records = [{"step": 10, "steps_per_s": 0.5}, {"step": 20, "steps_per_s": 4.0},
             {"step": 30, "steps_per_s": 5.0}, {"step": 40, "steps_per_s": 4.0}]
  assert reproduce.seconds_per_step(records) == pytest.approx(0.25)  # median of 1/4, 1/5, 1/4
  assert reproduce.seconds_per_step(records[:1]) == pytest.approx(2.0)  # nothing else to use
  assert reproduce.steps_for_minutes(2, 0.25) == 480
  assert reproduce.steps_for_minutes(1, 0.7) == 85  # floor(60 / 0.7): never over the budget
  assert reproduce.steps_for_minutes(1, 1000.0) == 1
  with pytest.raises(ValueError):
    reproduce.seconds_per_step([{"step": 1, "loss": 2.0}])


def test_mean_and_spread():
  assert results.mean_spread([1.0, 2.0, 3.0]) == (2.0, 1.0)
  assert results.mean_spread([3.5]) == (3.5, 0.0)
  assert results.format_mean_spread([1.0, 2.0, 3.0]) == "2 ± 1"
  assert results.format_mean_spread([3.5]) == "3.5"


def test_ordering_sentence_says_whether_the_papers_order_holds():
  ordering = results.Ordering("bits_per_dim", ("diagonal_bilstm", "row_lstm", "pixelcnn"), "P")
  matching = results.ordering_sentence(ordering, {"diagonal_bilstm": 3.0, "row_lstm": 3.1,
                                                  "pixelcnn": 3.2})
  assert matching.endswith("ours: diagonal_bilstm > row_lstm > pixelcnn: **matches**.")
  flipped = results.ordering_sentence(ordering, {"diagonal_bilstm": 3.94, "row_lstm": 3.63,
                                                 "pixelcnn": 3.03})
  assert "**does not match**" in flipped
  assert "ours: pixelcnn > row_lstm > diagonal_bilstm" in flipped
  assert "pixelcnn 3.03 beats diagonal_bilstm 3.94" in flipped
  assert "row_lstm 3.63 beats diagonal_bilstm 3.94" in flipped
  # larger is better for accuracy; a missing row is left out, one row alone compares nothing
  accuracy = results.Ordering("accuracy", ("m2_labels1000", "m2_labels100"), "K")
  assert results.ordering_sentence(accuracy, {"m2_labels1000": 0.8, "m2_labels100": 0.6}
                                   ).endswith("**matches**.")
  assert "nothing to compare" in results.ordering_sentence(accuracy, {"m2_labels100": 0.6})
  # a flip smaller than the seeds' combined spread is a tie, not a reversal
  close = {"diagonal_bilstm": 3.0, "row_lstm": 3.097, "pixelcnn": 3.095}
  tie = results.ordering_sentence(ordering, close, {"row_lstm": 0.002, "pixelcnn": 0.003})
  assert tie.endswith("**matches within the seeds' spread** (pixelcnn 3.095 ~ row_lstm 3.097).")
  reversal = results.ordering_sentence(ordering, close, {"row_lstm": 0.001, "pixelcnn": 0.001})
  assert "**does not match** (pixelcnn 3.095 beats row_lstm 3.097)." in reversal
  # and so is an order in the papers' direction by less than the spread: no match either
  narrow = results.ordering_sentence(accuracy, {"m2_labels1000": 0.3738, "m2_labels100": 0.3696},
                                     {"m2_labels1000": 0.024, "m2_labels100": 0.059})
  assert narrow.endswith("**matches within the seeds' spread** (m2_labels1000 0.3738 ~ "
                         "m2_labels100 0.3696).")
  assert results.ordering_sentence(accuracy, {"m2_labels1000": 0.8, "m2_labels100": 0.6},
                                   {"m2_labels1000": 0.1, "m2_labels100": 0.1}
                                   ).endswith("**matches**.")  # 0.2 apart, spread 0.14
  mixed = results.ordering_sentence(ordering, {**close, "diagonal_bilstm": 3.2},
                                    {"row_lstm": 0.002, "pixelcnn": 0.003})
  assert mixed.endswith("(row_lstm 3.097 beats diagonal_bilstm 3.2; pixelcnn 3.095 beats "
                        "diagonal_bilstm 3.2; tied within the seeds' spread: pixelcnn 3.095 ~ "
                        "row_lstm 3.097).")


def test_flatten_detection():
  flat = [(100 * i, v) for i, v in enumerate([8.0, 4.0, 3.5, 3.3, 3.21, 3.2, 3.2, 3.19, 3.19])]
  note = flatness.flatten_note(flat)  # last quarter: the points from step 600 to 800
  assert note["flat"] is True and (note["from_step"], note["to_step"]) == (600, 800)
  assert note["change"] == pytest.approx((3.19 - 3.2) / 3.2)
  falling = [(i, 10.0 - i) for i in range(9)]
  note = flatness.flatten_note(falling)
  assert note["flat"] is False and note["change"] == pytest.approx((2.0 - 4.0) / 4.0)
  assert flatness.describe_flatten(note) == "still moving (-50.0%, steps 6-8)"
  assert flatness.flatten_note([(1, 3.0), (2, 2.0), (3, 2.0)])["flat"] is None
  # A model stuck at its initial 8 bits/dim is flat from its first eval, not converged.
  stuck = [(100 * i, 8.0 - 0.001 * i) for i in range(9)]
  assert flatness.flatten_note(stuck)["flat"] is True
  assert flatness.describe_flatten(flatness.flatten_note(stuck)).startswith(
      "flat from the first eval")
  assert flatness.describe_flatten(flatness.flatten_note(flat)).startswith("flat (")
  cell = flatness.describe_seed_flattening([flatness.flatten_note(c) for c in (flat, stuck)])
  assert cell.startswith("flat in 1/2 seeds, flat from the first eval in 1/2 seeds: "
                         "converged before it, or not learning (")
  all_stuck = flatness.describe_seed_flattening([flatness.flatten_note(stuck)] * 3)
  assert all_stuck.startswith("flat from the first eval in 3/3 seeds: converged")
  # The window is the last quarter of the steps: a final eval 3 steps after the one
  # before it (eval_every 59 at 298 steps) does not make a window of its own.
  uneven = [(59 * i, 4.0 - 0.1 * i) for i in range(1, 6)] + [(298, 3.5)]
  note = flatness.flatten_note(uneven)
  assert (note["from_step"], note["to_step"]) == (236, 298) and note["flat"] is False
  # A likelihood still falling 0.5% per quarter of the run is not flat; an accuracy is.
  slow = [(100 * i, 3.2 * (1 - 0.005 * i / 2)) for i in range(9)]
  assert flatness.flatten_note(slow, tolerance=flatness.flat_tolerance("bits_per_dim"))[
      "flat"] is False
  assert flatness.flatten_note(slow, tolerance=flatness.flat_tolerance("accuracy"))["flat"] is True


def test_a_noisy_metric_is_judged_by_the_trend_of_its_last_half():
  """FID, KID, MIG and accuracy (flatness.NOISY): the Theil-Sen trend of the last half's
  evals (at least 5) and Kendall's rank test, not the last two evals."""
  steps = [500 * i for i in range(1, 9)]  # 8 evals, 500-4000: the last half is 2250-4000
  # scatter about a level: the last quarter's two evals differ by 10%
  level = list(zip(steps, [60.0, 52.0, 48.0, 53.0, 48.0, 52.0, 49.0, 47.0]))
  assert flatness.flatten_note(level)["flat"] is False
  note = flatness.curve_note(level, "fid")
  assert note["flat"] is True and (note["from_step"], note["to_step"]) == (2000, 4000)
  # a curved fall (halving its pace each eval) is a trend: 5 evals that only fall have
  # Kendall's p = 2/5! < 0.05
  falling = list(zip(steps, [100.0, 70.0, 55.0, 47.0, 43.0, 41.0, 40.0, 39.5]))
  note = flatness.curve_note(falling, "fid")
  assert note["flat"] is False and not note["noise"] and note["change"] < -0.01
  # a straight slow line: its change over a quarter of the run (875 steps) relative to
  # the median of the window's evals (steps 2000-4000: the value at 3000), in closed form
  line = [(step, 100.0 - 0.0005 * step) for step in steps]
  note = flatness.curve_note(line, "accuracy")
  assert note["change"] == pytest.approx(-0.0005 * 875 / (100.0 - 0.0005 * 3000))
  assert note["flat"] is True and note["noise"] is False
  # the same line 10x steeper moves 4.5% a quarter: a trend, not flat
  steep = [(step, 100.0 - 0.005 * step) for step in steps]
  assert flatness.curve_note(steep, "mig")["flat"] is False
  # a large change whose evals zig-zag: the rank test finds no trend in them
  zigzag = list(zip(steps, [50.0, 60.0, 40.0, 62.0, 38.0, 58.0, 41.0, 57.0]))
  note = flatness.curve_note(zigzag, "kid")
  assert note["noise"] is True and note["flat"] is True and abs(note["change"]) > 0.01
  assert flatness.describe_flatten(note).startswith("no trend beyond the evals' scatter (trend "
                                                    "of steps 2000-4000: ")
  # likelihoods keep the endpoint rule; a noisy curve of 4 evals has too few for a trend
  assert flatness.curve_note(zigzag, "bits_per_dim") == flatness.flatten_note(
      zigzag, tolerance=0.0025)
  assert flatness.curve_note(falling[:4], "fid") == flatness.flatten_note(falling[:4])
  notes = [flatness.curve_note(c, "fid") for c in (zigzag, line, zigzag)]
  cell = flatness.describe_seed_flattening(notes)
  assert cell.startswith("flat in 1/3 seeds, no trend beyond the evals' scatter in 2/3 seeds "
                         "(trend of steps 2000-4000: ") and cell.endswith(
                             " mean a quarter of the run)")
  assert flatness.flattened_everywhere(cell) == "scatter"
  assert flatness.flattened_everywhere(flatness.describe_seed_flattening(
      [flatness.curve_note(c, "fid") for c in (zigzag, steep)])) is None
  assert flatness.flattened_everywhere(flatness.describe_flatten(notes[0])) == "scatter"
  # in a table: the rule is named under it, and the summary counts such rows apart
  group_d = next(g for g in results.GROUPS if g.name == "d")
  runs = {m: [dict(fake_record(m, s, 0.0), metrics={"fid": 50.0 + s}) for s in range(3)]
          for m in ("dcgan_hinge", "dcgan_minimax")}
  table = results.group_table(group_d, runs, {"dcgan_hinge": [zigzag, line, zigzag],
                                              "dcgan_minimax": [line] * 3}, {},
                              {"dcgan_hinge": "fid", "dcgan_minimax": "fid"})
  assert "Kendall's rank test" in table
  (row,) = tables_file.summarize_section("Budget: 4000 steps per run\n\n" + table)
  assert "| 1/2; 1/2 flat or no trend beyond their evals' scatter |" in row
  likelihoods = results.group_table(results.GROUPS[0], {"pixelcnn": runs["dcgan_hinge"]}, {
      "pixelcnn": [line] * 3}, {}, {"pixelcnn": "bits_per_dim"})
  assert "Kendall" not in likelihoods
  # a reversed order over rows flat or without a trend says which were the latter
  fids = {"dcgan_non_saturating": 60.0, "dcgan_minimax": 40.0}
  reversed_order = results.group_table(
      group_d, {m: [dict(fake_record(m, s, 0.0), metrics={"fid": f + 0.1 * s}) for s in range(3)]
                for m, f in fids.items()},
      {"dcgan_non_saturating": [line] * 3, "dcgan_minimax": [zigzag] * 3}, {},
      dict.fromkeys(fids, "fid"))
  assert ("**does not match**" in reversed_order and "every row had flattened at this budget "
          "(dcgan_minimax: in some seed no trend beyond the evals' scatter)." in reversed_order)


def fake_record(model, seed, value, steps=100, wall=60.0):
  return {"model": model, "seed": seed, "steps": steps, "device": "cpu TFRT_CPU_0 x1",
          "wall_s": wall, "metrics": {"bits_per_dim": value}, "final_eval": None,
          "command": "c", "overrides": []}


def test_group_table_has_mean_spread_wall_anchor_and_verdicts():
  group = results.GROUPS[0]
  runs = {"pixelcnn": [fake_record("pixelcnn", s, v) for s, v in enumerate((3.0, 3.2, 3.4))],
          "row_lstm": [fake_record("row_lstm", 0, 3.1, wall=120.0)]}
  curves = {"pixelcnn": [[(i, 5.0 - i) for i in range(5)]] * 3}
  metrics = {"pixelcnn": "bits_per_dim"}
  table = results.group_table(group, runs, curves, {"row_lstm": ["error: boom"]}, metrics)
  (row,) = [line for line in table.splitlines() if line.startswith("| pixelcnn |")]
  assert row.startswith("| pixelcnn | 3.2 ± 0.2 | 3 | 100 | 1 ± 0 | flat in 0/3 seeds "
                        "(-50.0% mean, steps 3-4) |")
  assert "3.14 bits/dim: van den Oord et al. 2016a (PixelRNN), CIFAR-10 8-bit RGB (other " \
         "data)" in row
  (row,) = [line for line in table.splitlines() if line.startswith("| row_lstm |")]
  assert "| 3.1 | 1 (1 failed: error: boom) | 100 | 2 | - |" in row
  assert "Device: cpu TFRT_CPU_0 x1." in table
  # 3.1 < 3.2 bits/dim, but closer than pixelcnn's spread of 0.2
  assert ("ours: row_lstm > pixelcnn: **matches within the seeds' spread** (row_lstm 3.1 ~ "
          "pixelcnn 3.2).") in table
  runs["row_lstm"] = [fake_record("row_lstm", 0, 3.5)]
  table = results.group_table(group, runs, curves, {}, metrics)
  assert ("ours: pixelcnn > row_lstm: **does not match** (pixelcnn 3.2 beats row_lstm 3.5). "
          "These runs stopped at 100 steps, far below the papers' budgets (hundreds of epochs), "
          "on other data; pixelcnn had not flattened, so the order may still change.") in table
  # Runs on two device settings: each named with its models, not run together.
  runs["row_lstm"][0]["device"] = "cpu TFRT_CPU_0 x1; 2 runs at once"
  table = results.group_table(group, runs, curves, {}, metrics)
  assert ("Device: cpu TFRT_CPU_0 x1 (pixelcnn); cpu TFRT_CPU_0 x1; 2 runs at once "
          "(row_lstm).") in table


def test_group_table_says_nothing_of_orderings_among_models_it_does_not_hold():
  group = next(g for g in results.GROUPS if g.name == "b")
  record = fake_record("beta_vae_beta1", 0, 0.05)
  record["metrics"]["mig"] = 0.1
  table = results.group_table(group, {"beta_vae_beta1": [record]}, {}, {}, {})
  assert "m2_labels" not in table  # the M2 orderings: none of their rows in this table
  assert "mig" in table and "Ordering in mig" not in table  # one of its rows: no sentence
  # with beta 4 in the table but failed in every seed, the ordering says why it is silent
  table = results.group_table(group, {"beta_vae_beta1": [record]}, {},
                              {"beta_vae_beta4": ["error: boom"]}, {})
  assert ("Ordering in mig (Higgins et al. 2017, Chen et al. 2018 (beta > 1 disentangles "
          "more)): fewer than two of beta_vae_beta4, beta_vae_beta1 ran, nothing to compare."
          ) in table
  # every beta above 1 is compared with beta 1 (the papers' claim), beta 16 too
  strong = {**fake_record("beta_vae_beta16", 0, 0.09), "metrics": {"mig": 0.3}}
  table = results.group_table(group, {"beta_vae_beta1": [record], "beta_vae_beta16": [strong]},
                              {}, {}, {})
  assert "ours: beta_vae_beta16 > beta_vae_beta1: **matches**." in table


def test_selected_runs_put_what_a_run_needs_first():
  assert reproduce.selected_runs(["c"], ["vqvae2_prior"]) == ["vqvae2", "vqvae2_prior"]
  assert reproduce.selected_runs(["d"], ["vaegan"]) == ["fmnist_classifier", "vaegan"]
  # --models' order, not the group's: a session can put the runs it can finish first
  assert reproduce.selected_runs(["d"], ["vaegan", "dcgan_hinge_r1", "dcgan_hinge"]) == [
      "fmnist_classifier", "vaegan", "dcgan_hinge_r1", "dcgan_hinge"]
  assert reproduce.selected_runs(["a"], [])[0] == "pixelcnn"
  assert reproduce.selected_runs(["b"], ["m1m2_labels100", "m1m2_labels1000"]) == [
      "vae_mlp", "m1m2_labels100", "m1m2_labels1000"]  # M1 first
  whole = reproduce.selected_runs(["b"], [])
  assert whole.index("vae_mlp") < whole.index("m1m2_labels100") < whole.index("m1m2_labels1000")
  with pytest.raises(app.UsageError, match="--groups: unknown z"):
    reproduce.selected_runs(["z"], [])
  with pytest.raises(app.UsageError, match="--models: vaegan not in groups a"):
    reproduce.selected_runs(["a"], ["vaegan"])
  every_group = {m for g in results.GROUPS for m in g.models}
  assert every_group == set(results.RUNS)  # every row has a run and every run a row


def reproduce_main(*args: str) -> None:
  """gen_jax.reproduce's main in-process with these flags (restored afterwards)."""
  with flagsaver.flagsaver():
    flags.FLAGS(["reproduce", *args])
    try:
      reproduce.main([])
    finally:
      flags.FLAGS.unparse_flags()


def record_training(monkeypatch, finishes: str) -> list[tuple[str, int, int]]:
  """Replaces reproduce's training with a record of (run, seed, steps) of each run it would
  train, in order; the run named `finishes` finishes, every other fails."""
  trained = []
  monkeypatch.setattr(reproduce, "describe_device", lambda: "cpu")

  def train_run(run, seed, budget_dir, steps, device, **_):
    trained.append((run.name, seed, steps))
    return (fake_record(run.name, seed, 3.0, steps) if run.name == finishes
            else "error: not trained")

  monkeypatch.setattr(reproduce_run, "train_run", train_run)
  monkeypatch.setattr(reproduce_run, "evaluate_run", lambda run, record, budget_dir, **_: record)
  return trained


def test_an_m1_trained_longer_trains_its_multiple_of_the_budget_first(tmp_path, monkeypatch):
  """vae_mlp_10x (steps_scale 10) trains 10x the budget's steps, before the M1+M2 rows over
  it, which get its workdir and the budget's steps; the header says so."""
  trained = record_training(monkeypatch, finishes="vae_mlp_10x")
  models = ["m1m2_labels100_m1_10x", "m1m2_labels1000_m1_10x"]
  reproduce_main("--budget=steps:20", "--groups=b", f"--models={','.join(models)}", "--seeds=2",
                 f"--root={tmp_path}")
  assert trained[:2] == [("vae_mlp_10x", 0, 200), ("vae_mlp_10x", 1, 200)]
  assert sorted(trained[2:]) == sorted((model, seed, 20) for model in models for seed in (0, 1))
  tables = (tmp_path / "results.md").read_text()
  assert tables.startswith("Budget: 20 steps per run (vae_mlp_10x: 10x that, 200 steps);")
  assert "| vae_mlp_10x | 3 ± 0 | 2 | 200 |" in tables
  command = reproduce_run.run_command(results.RUNS[models[0]], 1, "W", "B", 20, "", 2)
  assert "--config.data.m1_workdir=B/vae_mlp_10x/seed_1" in command
  assert "--config.model.alpha" not in command  # the paper's alpha = 0.1 N, the config's
  # the _alpha100x rows: the same M1, the labelled term weighted 100x the paper's alpha
  alpha = reproduce_run.run_command(results.RUNS["m1m2_labels1000_m1_10x_alpha100x"], 0, "W", "B",
                                20, "", 2)
  assert "--config.data.m1_workdir=B/vae_mlp_10x/seed_0" in alpha
  assert "--config.model.alpha=600000.0" in alpha and "--config.data.num_labelled=1000" in alpha
  assert load_config("semi_supervised_vae.py", "m1m2_labels1000").model.alpha == \
      results.PAPER_ALPHA  # so 600000 is 100x the alpha the other rows train with
  # M2 on pixels at that alpha, and each M1+M2 row compared with the M2 at its own alpha
  m2 = reproduce_run.run_command(results.RUNS["m2_labels100_alpha100x"], 0, "W", "B", 20, "", 2)
  assert "--config.model.alpha=600000.0" in m2 and "--config.data.num_labelled=100" in m2
  assert "m1_workdir" not in " ".join(m2) and not results.RUNS["m2_labels100_alpha100x"].needs
  group_b = next(g for g in results.GROUPS if g.name == "b")
  beats = {o.best_first[0]: o.best_first[1] for o in group_b.orderings if "M1+M2" in o.source}
  assert beats["m1m2_labels100_m1_10x_alpha100x"] == "m2_labels100_alpha100x"
  assert beats["m1m2_labels1000_m1_10x"] == beats["m1m2_labels1000"] == "m2_labels1000"
  assert all(model in group_b.models for pair in beats.items() for model in pair)
  assert "--config.train.num_steps=20" in command
  assert reproduce.selected_runs(["b"], models) == ["vae_mlp_10x", *models]


def test_the_fid_classifier_trains_its_fixed_steps_at_every_budget(tmp_path, monkeypatch):
  """fmnist_classifier (fixed_steps 1000) trains 1000 steps whatever the budget, so the GANs'
  FIDs at every budget are over the same features; the header says so."""
  trained = record_training(monkeypatch, finishes="fmnist_classifier")
  for budget in (20, 4000):
    trained.clear()
    reproduce_main(f"--budget=steps:{budget}", "--groups=d", "--models=dcgan_hinge",
                   "--seeds=1", f"--root={tmp_path}")
    assert trained == [("fmnist_classifier", 0, 1000), ("dcgan_hinge", 0, budget)]
    assert (tmp_path / "results.md").read_text().startswith(
        f"Budget: {budget} steps per run (fmnist_classifier: 1000 steps at every budget);")
  assert results.RUNS["fmnist_classifier"].steps(30) == 1000
  assert results.RUNS["vae_mlp_10x"].steps(30) == 300 and results.RUNS["vae_mlp"].steps(30) == 30


def test_an_archived_fid_classifier_scores_the_gans_instead_of_a_retrained_one(tmp_path,
                                                                              monkeypatch):
  """--fid_classifier copies a finished classifier run (checkpoints and all) into the budget,
  so the GANs' FIDs are over its features on any machine; it is not trained again."""
  calls = []
  monkeypatch.setattr(reproduce_run, "execute", lambda command, log: (calls.append(command)
                                                                      or (1, "error: x", 0.0)))
  monkeypatch.setattr(reproduce, "describe_device", lambda: "cpu")
  archive = tmp_path / "archive" / "seed_0"
  (archive / "checkpoints" / "1000").mkdir(parents=True)
  (archive / "checkpoints" / "1000" / "state").write_text("weights")
  wanted = reproduce_run.final_eval_overrides(results.RUNS["fmnist_classifier"], 5000)
  record = {**fake_record("fmnist_classifier", 0, 0.9, steps=1000), "final_eval": {
      "metrics": {}, "command": " ".join(["-m gen_jax.main --mode eval", *wanted])}}
  (archive / "reproduce.json").write_text(json.dumps(record))
  flags_ = ["--budget=steps:20", "--groups=d", "--models=dcgan_hinge", "--seeds=1",
            f"--root={tmp_path / 'runs'}"]
  reproduce_main(*flags_, f"--fid_classifier={archive}")
  adopted = tmp_path / "runs" / "steps_20" / "fmnist_classifier" / "seed_0"
  assert (adopted / "checkpoints" / "1000" / "state").read_text() == "weights"
  (gan,) = calls  # only the GAN trained (and failed here); the classifier was not
  assert "configs/dcgan.py" in gan and f"--config.eval.classifier_workdir={adopted}" in gan
  tables = (tmp_path / "runs" / "results.md").read_text()
  assert f"--fid_classifier={archive}" in tables.split("\n")[0]
  reproduce_main(*flags_, f"--fid_classifier={archive}")  # the same run there: fine again
  (adopted / "reproduce.json").write_text(json.dumps({**record, "wall_s": 1.0}))
  with pytest.raises(app.UsageError, match="steps_20/fmnist_classifier/seed_0 holds another"):
    reproduce_main(*flags_, f"--fid_classifier={archive}")
  with pytest.raises(app.UsageError, match="not a finished run's workdir"):
    reproduce_main(*flags_, f"--fid_classifier={tmp_path / 'archive'}")
  assert len(calls) == 2


def test_the_archived_fid_classifier_restores_read_only_and_scores_what_it_recorded(tmp_path):
  """The classifier that --fid_classifier adopts (docs/reproduce/fid_classifier) restores with
  today's code, from a read-only copy, and scores the first 1000 real test images as its
  training run's last eval did: the FID features are the ones the archived FIDs used."""
  from gen_jax.data import idx_builder
  if not idx_builder.has_idx_files("/usr/share/datasets/fashion-mnist"):
    pytest.skip("dataset-fashion-mnist is not installed (make test installs it as root)")
  archive = os.path.join(REPO, "docs/reproduce/fid_classifier/fmnist_classifier/seed_0")
  copy = tmp_path / "fmnist_classifier" / "seed_0"
  reproduce_run.adopt_run(archive, str(copy), "--fid_classifier")
  record = json.loads((copy / "reproduce.json").read_text())
  (last,) = [r for r in map(json.loads, (copy / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "eval" and r["step"] == 1000]
  command = record["command"].split()
  command[command.index("--workdir") + 1] = str(copy)
  output = tmp_path / "eval"
  with read_only(str(copy)):
    done = subprocess.run([sys.executable, *command, "--mode", "eval", f"--output_dir={output}"],
                          cwd=REPO, env={**os.environ, "TFDS_DATA_DIR": str(tmp_path / "tfds")},
                          capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  (scored,) = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
  assert scored["step"] == 1000 and "max_eval_examples=1000" in record["command"]
  assert abs(scored["accuracy"] - last["accuracy"]) <= 0.003  # 3 of 1000 images: other CPUs
  assert abs(scored["cross_entropy"] - last["cross_entropy"]) < 1e-3


def test_tabulate_only_writes_the_tables_of_finished_runs_and_runs_nothing(tmp_path,
                                                                            monkeypatch):
  calls = []
  monkeypatch.setattr(reproduce_run, "execute", lambda command, log: (calls.append(command)
                                                                  or (0, "trained", 0.0)))
  monkeypatch.setattr(reproduce, "describe_device", lambda: "cpu")
  wanted = reproduce_run.final_eval_overrides(results.RUNS["pixelcnn"], 5000)
  for seed, value in ((0, 3.0), (1, 3.4)):  # as an archive holds them
    workdir = tmp_path / "steps_100" / "pixelcnn" / f"seed_{seed}"
    workdir.mkdir(parents=True)
    (workdir / "reproduce.json").write_text(json.dumps({
        **fake_record("pixelcnn", seed, value), "final_eval": {
            "metrics": {}, "command": " ".join(["-m gen_jax.main --mode eval", *wanted])}}))
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": step, "split": "eval", "bits_per_dim": value + 1 / step}) + "\n"
        for step in (50, 100)))
  reproduce_main("--budget=steps:100", "--groups=a", "--models=pixelcnn,row_lstm", "--seeds=2",
                 f"--root={tmp_path}", "--tabulate_only")
  assert not calls  # nothing trained or evaluated, though row_lstm never ran
  tables = (tmp_path / "results.md").read_text()
  assert "| pixelcnn | 3.2 ± 0.28 | 2 | 100 |" in tables
  assert "not finished (--tabulate_only trains nothing)" in tables  # row_lstm's failures
  assert "--tabulate_only" not in tables.split("\n")[0]  # the header names the training command
  assert "validation" not in tables.split("\n")[0]  # no row picks its step on validation
  reproduce_main("--budget=steps:100", "--groups=e", "--models=char_rnn,char_rnn_best_val",
                 f"--root={tmp_path}", "--tabulate_only")
  assert ("the curves' evals on the first 1000 test examples (char_rnn_best_val: on the first "
          "1000 validation examples instead, held out of its training data, and the final "
          "evaluation at the step whose validation eval was best)") in (
              tmp_path / "results.md").read_text().split("\n")[0]
  assert not (tmp_path / "steps_100" / "row_lstm").exists()
  # a minutes:M budget needs the archived calibration; without it, a one-line error
  with pytest.raises(app.UsageError, match="no calibration"):
    reproduce_main("--budget=minutes:5", "--groups=a", "--models=pixelcnn", f"--root={tmp_path}",
                   "--tabulate_only")
  # with the archived calibration.json its steps are known, and a finished run tabulates
  minutes = tmp_path / "minutes_5"
  (minutes / "pixelcnn").mkdir(parents=True)
  (tmp_path / "steps_100" / "pixelcnn" / "seed_0").rename(minutes / "pixelcnn" / "seed_0")
  (minutes / "calibration.json").write_text(json.dumps({"pixelcnn": {"steps": 100}}))
  reproduce_main("--budget=minutes:5", "--groups=a", "--models=pixelcnn", "--seeds=1",
                 f"--root={tmp_path}", "--tabulate_only")
  assert "| pixelcnn | 3 | 1 | 100 |" in (tmp_path / "results.md").read_text()
  assert not calls


def train_one(run, seed, budget_dir, steps, device, **settings):
  """reproduce's two steps of one run: train_run, then evaluate_run unless training failed."""
  trained = reproduce_run.train_run(run, seed, budget_dir, steps, device, **settings)
  return trained if isinstance(trained, str) else reproduce_run.evaluate_run(
      run, trained, budget_dir, **settings)


def test_a_finished_run_is_not_repeated_and_an_unfinished_one_is(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(reproduce_run, "execute", lambda command, log: (calls.append(command)
                                                                  or (1, "error: x", 0.0)))
  workdir = tmp_path / "steps_100" / "pixelcnn" / "seed_0"
  workdir.mkdir(parents=True)
  record = {**fake_record("pixelcnn", 0, 3.0), "final_eval": {
      "metrics": {}, "command": "-m gen_jax.main --mode eval --config.data.max_eval_examples=0"}}
  (workdir / "reproduce.json").write_text(json.dumps(record))
  run = results.RUNS["pixelcnn"]
  assert train_one(run, 0, str(tmp_path / "steps_100"), 100, "cpu") == record
  assert not calls
  # another budget runs again
  assert train_one(run, 0, str(tmp_path / "steps_100"), 200, "cpu") == "error: x"
  assert "--config.data.max_eval_examples=1000" in calls[-1] and "--mode" not in calls[-1]
  # a trained run without its final evaluation gets only that, on the whole test split
  vae_dir = tmp_path / "steps_100" / "vae_mlp" / "seed_0"
  vae_dir.mkdir(parents=True)
  (vae_dir / "reproduce.json").write_text(json.dumps(fake_record("vae_mlp", 0, 3.0)))
  (vae_dir / "metrics.jsonl").write_text(json.dumps({"step": 100, "split": "eval",
                                                     "nll_nats": 250.0}) + "\n")
  vae = results.RUNS["vae_mlp"]
  assert train_one(vae, 0, str(tmp_path / "steps_100"), 100, "cpu",
                             final_eval=False)["metrics"] == {"bits_per_dim": 3.0}
  assert len(calls) == 1
  assert train_one(vae, 0, str(tmp_path / "steps_100"), 100, "cpu",
                             iwae_samples=700) == "error: x"
  assert len(calls) == 2 and "--mode" in calls[-1]  # only the final eval, no training
  final = calls[-1][calls[-1].index("--mode"):]
  assert {"--config.eval.iwae_samples=700", "--config.data.max_eval_examples=0"} <= set(final)
  assert not any("iwae" in flag for flag in reproduce_run.final_eval_overrides(run, 700))
  # a final eval made with other settings (k=1000, asked for 5000) is redone, not the training
  evaluated = {**fake_record("vae_mlp", 0, 3.0), "final_eval": {"metrics": {}, "command": (
      "-m gen_jax.main --mode eval " + " ".join(reproduce_run.final_eval_overrides(vae, 1000)))}}
  (vae_dir / "reproduce.json").write_text(json.dumps(evaluated))
  assert train_one(vae, 0, str(tmp_path / "steps_100"), 100, "cpu",
                             iwae_samples=1000) == evaluated
  assert len(calls) == 2
  assert train_one(vae, 0, str(tmp_path / "steps_100"), 100, "cpu",
                             iwae_samples=5000) == "error: x"
  assert len(calls) == 3 and "--config.eval.iwae_samples=5000" in calls[-1][
      calls[-1].index("--mode"):]


def test_runs_go_in_parallel_each_after_the_trainings_it_needs():
  jobs = [("vqvae", 0), ("vqvae", 1), ("vqvae_prior", 0), ("vqvae_prior", 1)]
  both_stage_1 = threading.Barrier(2, timeout=10)  # breaks unless two runs overlap
  log, lock = [], threading.Lock()

  def step(name):
    def work(job, *trained):
      with lock:
        log.append((name, job))
      if name == "train" and job[0] == "vqvae":
        both_stage_1.wait()
      with lock:
        log.append(("end " + name, job))
      return {"seed": job[1], "evaluated": bool(trained)}
    return work

  outcomes = schedule.run_jobs(jobs, reproduce.needed, step("train"), 2, step("evaluate"))
  assert outcomes == {job: {"seed": job[1], "evaluated": True} for job in jobs}
  for job in jobs:
    assert log.index(("end train", job)) < log.index(("evaluate", job))
  for seed in (0, 1):  # a prior trains after its own seed's stage 1 trained
    assert log.index(("end train", ("vqvae", seed))) < log.index(("train", ("vqvae_prior", seed)))
  # ... and not after stage 1's final evaluation: that one waits for the prior to start
  prior_started = threading.Event()

  def slow_evaluation(job, trained):
    assert job[0] != "vqvae" or prior_started.wait(timeout=10), "the prior waited for it"
    return trained

  def train(job):
    if job[0] == "vqvae_prior":
      prior_started.set()
    return {"seed": job[1]}

  assert schedule.run_jobs(jobs[::2], reproduce.needed, train, 2, slow_evaluation) == {
      ("vqvae", 0): {"seed": 0}, ("vqvae_prior", 0): {"seed": 0}}
  with pytest.raises(threading.BrokenBarrierError):  # one at a time: the barrier never fills
    schedule.run_jobs(jobs[:2], reproduce.needed,
                      lambda job: threading.Barrier(2, timeout=0.5).wait(), 1)
  # a prior whose stage 1 failed to train (a str outcome) is not run and says why; the other
  # seed's is, and a failed training is not evaluated
  ran = []
  outcomes = schedule.run_jobs(jobs, reproduce.needed, lambda job: ran.append(job) or (
      "error: boom" if job == ("vqvae", 1) else {"seed": job[1]}), 2,
                               lambda job, trained: ran.append(("evaluate", job)) or trained)
  assert outcomes[("vqvae_prior", 1)] == "not run: vqvae seed 1 failed"
  assert outcomes[("vqvae", 1)] == "error: boom" and ("evaluate", ("vqvae", 1)) not in ran
  assert ("vqvae_prior", 1) not in ran and outcomes[("vqvae_prior", 0)] == {"seed": 0}
  assert reproduce.needed(("m1m2_labels100", 2)) == [("vae_mlp", 2)]
  assert reproduce.needed(("dcgan_hinge", 2)) == [("fmnist_classifier", 0)]


def test_wall_seconds_continue_across_a_resume(tmp_path, monkeypatch):
  clock = iter([100.0, 103.0, 110.0, 500.0, 502.0])
  monkeypatch.setattr(writers, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
  writer = writers.MetricWriter(str(tmp_path), resume_step=0)
  writer.write_scalars(1, "train", {"loss": 1.0})
  writer.write_scalars(2, "eval", {"loss": 1.0})
  writer.close()
  resumed = writers.MetricWriter(str(tmp_path), resume_step=1)  # drops step 2 (wall 10)
  resumed.write_scalars(2, "train", {"loss": 0.5})
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["split"], r["wall_s"]) for r in lines] == [(1, "train", 3.0),
                                                                   (2, "train", 5.0)]
  plain = writers.MetricWriter(str(tmp_path / "eval_only"))  # not a training writer
  plain.write_scalars(3, "eval", {"loss": 1.0})
  assert "wall_s" not in json.loads((tmp_path / "eval_only" / "metrics.jsonl").read_text())


def test_figures_upscale_with_a_border_and_draw_each_curve():
  image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
  big = plots.upscale_with_border(image, 4, 5)
  assert big.shape == (2 * 4 + 10, 3 * 4 + 10, 3)
  assert (big[:5] == 255).all() and (big[:, -5:] == 255).all()
  np.testing.assert_array_equal(big[5:13, 5:17][::4, ::4], image)
  plot = plots.curves_plot({"a": (np.arange(5), np.arange(5.0)),
                            "b": (np.arange(3), np.ones(3))}, title="t")
  assert plot.shape == (320, 640, 3)
  for colour in plots.SET_COLOURS[:2]:
    assert (plot == colour).all(-1).sum() > 50  # each curve drawn in its legend colour
  # a long name widens the image by what its legend needs, the plot area unchanged; the
  # column right of the curves holds the whole name (a blank margin after it)
  name = "m1m2_labels1000_m1_10x_alpha100x"
  wide = plots.curves_plot({name: (np.arange(5), np.arange(5.0))})
  assert wide.shape[0] == 320 and wide.shape[1] > 640
  assert (wide[:, -6:] == 255).all() and not (wide[:, -60:-8] == 255).all()


def test_group_table_names_the_steps_picked_on_validation(tmp_path):
  group = results.GROUPS[0]
  records = [fake_record("pixelcnn", s, 3.0 + s) for s in range(3)]
  for record, step in zip(records, (40, 100, 60)):  # a final eval at the picked step
    record["final_eval"] = {"command": "c", "step": step, "metrics": {}}
  table = results.group_table(group, {"pixelcnn": records}, {}, {}, {})
  assert "| 3 | 100 (evaluated at the step picked on validation: 40, 100, 60) |" in table
  curves = [[(20, 4.5), (40, 4.0), (60, 4.2), (80, 4.3), (100, 4.4)],
            [(20, 4.5), (40, 4.3), (60, 4.2), (80, 4.1), (100, 4.0)],
            [(20, 4.6), (40, 4.3), (60, 4.1), (80, 4.2), (100, 4.3)]]
  table = results.group_table(group, {"pixelcnn": records}, {"pixelcnn": curves}, {},
                              {"pixelcnn": "bits_per_dim"})  # with the validation values
  assert ("| 3 | 100 (evaluated at the step picked on validation: 40, 100, 60; validation "
          "bits_per_dim there: 4, 4, 4.1) |") in table
  for record in records:  # every final eval at the last step (or none recorded): no note
    record["final_eval"]["step"] = 100
  records[0]["final_eval"] = None
  assert "| 3 | 100 | " in results.group_table(group, {"pixelcnn": records}, {}, {}, {})
  # A run with a validation split draws its curves from it, not from the test split.
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "metrics.jsonl").write_text(
      '{"step": 2, "split": "validation", "bits_per_dim": 5.0}\n'
      '{"step": 2, "split": "eval", "bits_per_dim": 7.0}\n')
  assert figures.eval_curve(str(workdir), "bits_per_dim") == [(2, 5.0)]


def test_a_curve_of_validation_evals_is_named_so_in_the_plot(tmp_path, monkeypatch):
  for model, split in (("pixelcnn", "eval"), ("row_lstm", "validation")):
    workdir = tmp_path / model / "seed_0"
    workdir.mkdir(parents=True)
    (workdir / "metrics.jsonl").write_text("".join(
        f'{{"step": {s}, "split": "{split}", "bits_per_dim": {5.0 - s}, "wall_s": {s}}}\n'
        for s in (1, 2)))
  drawn = []
  monkeypatch.setattr(plots, "curves_plot",
                      lambda lines, title: drawn.append(sorted(lines)) or np.zeros((2, 2, 3),
                                                                                   np.uint8))
  records = {model: [{"seed": 0}] for model in ("pixelcnn", "row_lstm")}
  figures.write_figures(results.GROUPS[0], records, str(tmp_path))
  assert drawn == [["pixelcnn", "row_lstm (validation)"]] * 2  # vs steps, vs wall-clock


def test_reproduce_end_to_end_two_models_one_seed(tiny_idx, tmp_path):
  idx_dir, data_dir, _ = tiny_idx
  from gen_jax.data import sources
  sources.read_split("fashion_mnist", "train", data_dir=data_dir, idx_dir=idx_dir)
  readme = tmp_path / "README.md"
  readme.write_text("# R\n<!-- reproduce:begin -->\nold\n<!-- reproduce:end -->\nend\n")
  summary = tmp_path / "SUMMARY.md"
  summary.write_text("# S\n<!-- reproduce:summary:begin -->\n<!-- reproduce:summary:end -->\n")
  args = [sys.executable, "-m", "gen_jax.reproduce", "--groups=a", "--models=pixelcnn,row_lstm",
          "--seeds=1", "--budget=steps:4", "--num_evals=2", "--variant=smoke",
          "--eval_examples=16", "--parallel=2", f"--root={tmp_path / 'runs'}",
          f"--tables_file={readme}", f"--summary={summary}"]
  env = {**os.environ, "TFDS_DATA_DIR": data_dir}
  result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  budget_dir = tmp_path / "runs" / "steps_4"
  for model in ("pixelcnn", "row_lstm"):
    record = json.loads((budget_dir / model / "seed_0" / "reproduce.json").read_text())
    evals = [json.loads(l) for l in (budget_dir / model / "seed_0" / "metrics.jsonl")
             .read_text().splitlines() if '"eval"' in l]
    assert [r["step"] for r in evals] == [2, 4] and record["steps"] == 4
    assert record["final_eval"]["step"] == 4  # no validation pick: the last step
    # the curve saw 16 test examples; the table's number is the whole split's (all 40)
    assert "--config.data.max_eval_examples=16" in record["command"]
    assert "--config.data.max_eval_examples=0" in record["final_eval"]["command"]
    (final,) = [json.loads(l) for l in (budget_dir / model / "seed_0" / "final_eval" /
                                        "metrics.jsonl").read_text().splitlines()]
    assert record["metrics"]["bits_per_dim"] == final["bits_per_dim"] != evals[-1]["bits_per_dim"]
    assert 0 < evals[0]["wall_s"] <= evals[1]["wall_s"] <= record["wall_s"] + 1e-9
    assert f"--config configs/{model}.py:smoke" in record["command"]
    assert (budget_dir / "samples" / f"{model}.png").is_file()
    row = f"| {model} | {record['metrics']['bits_per_dim']:.4g} | 1 | 4 |"
    assert any(line.startswith(row) for line in result.stdout.splitlines())
  assert (budget_dir / "plots" / "a_bits_per_dim_steps.png").is_file()
  assert (budget_dir / "plots" / "a_bits_per_dim_wall.png").is_file()
  tables = (tmp_path / "runs" / "results.md").read_text()
  section = f"<!-- reproduce:section {tmp_path / 'runs'}/steps_4 a pixelcnn,row_lstm -->\n"
  assert readme.read_text() == ("# R\n<!-- reproduce:begin -->\nold\n" + section
                                + tables.rstrip("\n") + "\n\n<!-- reproduce:end -->\nend\n")
  (row,) = [line for line in summary.read_text().splitlines() if line.startswith("| (a)")]
  assert row.startswith("| (a) autoregressive | 4 steps | CPU, ")
  assert "bits_per_dim: pixelcnn " in row and ", row_lstm " in row
  # a second invocation finds both runs finished: nothing trains, the same tables
  again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0 and "training" not in again.stdout
  assert (tmp_path / "runs" / "results.md").read_text() == tables


def test_a_run_gets_the_workdirs_it_needs(tmp_path, monkeypatch):
  budget_dir = str(tmp_path / "steps_10")
  prior = reproduce_run.run_command(results.RUNS["vqvae_prior"], 2, "W", budget_dir, 10, "", 5)
  assert f"--config.vqvae_workdir={budget_dir}/vqvae/seed_2" in prior  # its own seed's codes
  m1m2 = reproduce_run.run_command(results.RUNS["m1m2_labels100"], 2, "W", budget_dir, 10, "", 5)
  assert f"--config.data.m1_workdir={budget_dir}/vae_mlp/seed_2" in m1m2  # its own seed's M1
  gan = reproduce_run.run_command(results.RUNS["dcgan_hinge_r1"], 2, "W", budget_dir, 10, "", 5)
  assert f"--config.eval.classifier_workdir={budget_dir}/fmnist_classifier/seed_0" in gan
  assert {"--config.model.loss=hinge", "--config.model.r1_gamma=1.0", "--config.seed=2",
          "--config.train.num_steps=10", "--config.train.eval_every=5"} <= set(gan)
  # the curve's FIDs from 2000 samples, the table's (the final eval's, later flag wins) 10000
  final = gan + list(reproduce_run.final_eval_overrides(results.RUNS["dcgan_hinge_r1"], 10))
  fid_flags = [f for f in final if f.startswith("--config.eval.num_fid_samples=")]
  assert fid_flags[0].endswith("=2000") and fid_flags[-1].endswith("=10000")
  assert reproduce_run.eval_every(2000, 10) == 200 and reproduce_run.eval_every(3, 10) == 1
  unmarked = tmp_path / "README.md"
  unmarked.write_text("no markers\n")
  with pytest.raises(app.UsageError, match="no <!-- reproduce:begin -->"):
    tables_file.replace_section(str(unmarked), "k", "table")
  with pytest.raises(app.UsageError, match="No such file"):
    tables_file.replace_section(str(tmp_path / "missing.md"), "k", None)
  marked = tmp_path / "tables.md"
  marked.write_text("<!-- reproduce:begin -->\n<!-- reproduce:end -->\n")
  monkeypatch.setattr(tables_file.os, "access", lambda path, mode: False)  # a read-only file
  with pytest.raises(app.UsageError, match="--tables_file=.*tables.md: not writable"):
    tables_file.replace_section(str(marked), "k", None)  # found before any run, not after


def test_summary_has_a_row_per_table_with_budget_device_headlines_and_verdicts(tmp_path):
  group_a, group_b = results.GROUPS[0], results.GROUPS[1]
  runs = {"pixelcnn": [fake_record("pixelcnn", s, v) for s, v in enumerate((3.0, 3.2, 3.4))],
          "row_lstm": [fake_record("row_lstm", s, 3.5) for s in range(3)]}
  for record in runs["row_lstm"]:
    record["device"] = "gpu NVIDIA H100 x1, 16 host CPU cores (X(R) Y); 3 runs at once"
  flat_curve = [(i, 3.5) for i in range(4)] + [(4, 3.4), (5, 3.4), (6, 3.4), (7, 3.4)]
  curves = {"pixelcnn": [[(i, 5.0 - i) for i in range(5)]] * 3, "row_lstm": [flat_curve] * 3}
  metrics = {"pixelcnn": "bits_per_dim", "row_lstm": "bits_per_dim"}
  table_a = results.group_table(group_a, runs, curves, {}, metrics)
  m2 = {f"m2_labels{n}": [dict(fake_record(f"m2_labels{n}", s, 0.44),
                               metrics={"bits_per_dim": 0.44, "accuracy": a})
                          for s in range(2)] for n, a in ((100, 0.4), (1000, 0.7))}
  table_b = results.group_table(group_b, m2, {}, {}, {})
  document = ("x\n<!-- reproduce:begin -->\n"
              + tables_file.with_tables("<!-- reproduce:begin -->\n<!-- reproduce:end -->",
                                           "r/steps_9 b", "Budget: 9 steps per run; s\n\n"
                                           + table_b)[len("<!-- reproduce:begin -->\n"):]
              .replace("<!-- reproduce:end -->", "")
              + tables_file.SECTION.format("r/minutes_2 a") + "\nBudget: 2 minutes of training "
              "steps per run at each model's calibrated step time (steps: x 3); s\n\n"
              + table_a + "<!-- reproduce:end -->\n")
  rows = tables_file.summary_table(document).splitlines()
  assert rows[0].startswith("| table | budget per run | device | headline metric")
  # by group (a before b), whatever the block's order; the headline per the run's metric
  assert rows[2] == ("| (a) autoregressive | 2 min of steps | CPU; GPU (NVIDIA H100) | "
                     "bits_per_dim: pixelcnn 3.2 ± 0.2, row_lstm 3.5 ± 0 | 1/2 | "
                     "row_lstm > pixelcnn: does not match |")
  assert rows[3] == ("| (b) latent-variable | 9 steps | CPU | accuracy: m2_labels100 0.4 ± 0, "
                     "m2_labels1000 0.7 ± 0 | 0/2 | m2_labels1000 > m2_labels100: matches |")
  assert len(rows) == 4
  # a later row of the same budget and device names the headlines an earlier row gave
  again = document.replace("<!-- reproduce:end -->", tables_file.SECTION.format(
      "r/steps_9 b m2_labels1000") + "\nBudget: 9 steps per run; s\n\n"
      + results.group_table(group_b, {"m2_labels1000": m2["m2_labels1000"]}, {}, {}, {})
      + "<!-- reproduce:end -->")
  assert tables_file.summary_table(again).splitlines()[4] == (
      "| (b) latent-variable | 9 steps | CPU | as in a row above: m2_labels1000 | 0/1 | - |")
  both = again.replace("<!-- reproduce:end -->", tables_file.SECTION.format(
      "r/steps_9 b both") + "\nBudget: 9 steps per run; s\n\n" + table_b
      + "<!-- reproduce:end -->")  # the first row's table again: its verdict is counted
  assert tables_file.summary_table(both).splitlines()[5] == (
      "| (b) latent-variable | 9 steps | CPU | as in a row above: m2_labels100, m2_labels1000 | "
      "0/2 | 1 as in a row above |")
  head, _, tail = again.rpartition("Budget: 9 steps")  # the last section: another budget
  elsewhere = head + "Budget: 10 steps" + tail
  assert "accuracy: m2_labels1000 0.7 ± 0 | 0/1 |" in tables_file.summary_table(elsewhere)
  # one seed: its flattening cell reads "flat (...)", which counts as flat in every seed
  one_seed = results.group_table(group_a, {"row_lstm": runs["row_lstm"][:1]},
                                 {"row_lstm": [flat_curve]}, {}, metrics)
  (row,) = tables_file.summarize_section("Budget: 8 steps per run\n\n" + one_seed)
  assert "| flat (" in one_seed and "| 1/1 |" in row
  # a row flat from its first eval in every seed (converged early, or stuck) is counted apart;
  # one stuck seed of three is neither
  stuck_curve = [(i, 8.0) for i in range(8)]
  for seeds in (3, 1):
    stuck = results.group_table(group_a, {m: r[:seeds] for m, r in runs.items()}, {
        "pixelcnn": [stuck_curve] * seeds, "row_lstm": [flat_curve] * seeds}, {}, metrics)
    (row,) = tables_file.summarize_section("Budget: 8 steps per run\n\n" + stuck)
    assert "first eval (converged" in stuck if seeds == 1 else "in 3/3 seeds: conv" in stuck
    assert "| 1/2; 1/2 flat from their first eval |" in row
  mixed = results.group_table(group_a, runs, {"pixelcnn": [stuck_curve] + [[(
      i, 5.0 - i) for i in range(5)]] * 2, "row_lstm": [flat_curve] * 3}, {}, metrics)
  (row,) = tables_file.summarize_section("Budget: 8 steps per run\n\n" + mixed)
  assert "flat from the first eval in 1/3 seeds" in mixed and "| 1/2 |" in row
  assert tables_file.short_device("Device: cpu x1, 2 host CPU cores (Intel(R) Xeon(R) "
                              "Processor); 2 runs at once. Mean") == "CPU, 2 cores"
  readme = tmp_path / "README.md"
  readme.write_text("a\n<!-- reproduce:summary:begin -->\nold\n<!-- reproduce:summary:end -->\nb\n")
  tables = tmp_path / "results.md"
  tables.write_text(document)
  tables_file.replace_summary(str(readme), str(tables))
  assert readme.read_text() == ("a\n<!-- reproduce:summary:begin -->\n"
                                + tables_file.summary_table(document)
                                + "<!-- reproduce:summary:end -->\nb\n")
  with pytest.raises(app.UsageError, match="no <!-- reproduce:summary:begin -->"):
    tables_file.replace_summary(str(tables), str(tables), check=True)
  # a table written before the flatness column had its name: a usage error, README kept
  tables.write_text(document.replace(results.FLATTENED_COLUMN, "test metric flattened?"))
  before = readme.read_text()
  with pytest.raises(app.UsageError, match="no 'eval curve flattened.' column: rerun"):
    tables_file.replace_summary(str(readme), str(tables))
  assert readme.read_text() == before


def test_each_command_fills_its_own_section_of_the_readme_block():
  readme = "intro\n<!-- reproduce:begin -->\nkept\n<!-- reproduce:end -->\nafter\n"
  one = tables_file.with_tables(readme, "runs/steps_10 a", "table A1\n")
  two = tables_file.with_tables(one, "runs/steps_20 b", "table B1")
  assert two == ("intro\n<!-- reproduce:begin -->\nkept\n"
                 "<!-- reproduce:section runs/steps_10 a -->\ntable A1\n\n"
                 "<!-- reproduce:section runs/steps_20 b -->\ntable B1\n\n"
                 "<!-- reproduce:end -->\nafter\n")
  # rerunning the first command replaces its section in place; the second's is kept
  again = tables_file.with_tables(two, "runs/steps_10 a", "table A2")
  assert again == two.replace("table A1", "table A2")
  last = tables_file.with_tables(again, "runs/steps_20 b", "table B2\nmore")
  assert last == again.replace("table B1", "table B2\nmore")
  with pytest.raises(ValueError, match="no <!-- reproduce:begin -->"):
    tables_file.with_tables("no block", "k", "t")


def test_calibration_runs_once_per_model_and_records_its_arithmetic(tmp_path, monkeypatch):
  calls = []

  def fake_execute(command, log):  # a calibration run: 3 log intervals, the first compiling
    calls.append(command)
    workdir = command[command.index("--workdir") + 1]
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
      for step, rate in ((10, 0.1), (20, 2.0), (30, 2.0)):
        f.write(json.dumps({"step": step, "split": "train", "steps_per_s": rate}) + "\n")
    return 0, "", 1.0

  monkeypatch.setattr(reproduce_run, "execute", fake_execute)
  budget_dir = str(tmp_path / "minutes_5")
  entry = reproduce.calibrate(results.RUNS["pixelcnn"], budget_dir, 5, "", "cpu", 30)
  assert entry["seconds_per_step"] == pytest.approx(0.5) and entry["steps"] == 600
  assert "--config.train.num_steps=30" in calls[0] and "--config.train.log_every=10" in calls[0]
  again = reproduce.calibrate(results.RUNS["pixelcnn"], budget_dir, 5, "", "cpu", 30)
  assert again == entry and len(calls) == 1  # kept in calibration.json, not re-timed
  stored = json.loads((tmp_path / "minutes_5" / "calibration.json").read_text())
  assert stored["pixelcnn"]["steps"] == 600 and stored["pixelcnn"]["device"] == "cpu"


def test_every_override_names_a_key_of_its_config():
  from conftest import load_config
  for run in results.RUNS.values():
    config = load_config(f"{run.config}.py")
    needed = tuple(f"--config.{key}=x" for key, _, _ in run.needs)
    flags_ = run.overrides + reproduce_run.final_eval_overrides(run, 10) + needed
    for flag in flags_:
      node = config
      for part in flag.removeprefix("--config.").split("=")[0].split("."):
        assert part in node, f"{run.name}: {flag} names no key of configs/{run.config}.py"
        node = node[part]


def test_the_ar_p_anchor_is_its_configs_noise_entropy():
  from conftest import load_config
  sigma = load_config("ar_p.py").data.ar_noise_std
  anchor = dict(next(g for g in results.GROUPS if g.name == "e").anchors)["ar_p"]
  entropy = 0.5 * math.log(2 * math.pi * math.e * sigma ** 2)
  assert anchor.same_data and anchor.value == f"{entropy:.4f} nats/step"


@pytest.mark.parametrize("num", [100, 1000])
@pytest.mark.parametrize("m1", ["", "_m1_conv"])
def test_an_m1m2_run_has_its_config_variants_settings(num, m1):
  """RUNS' overrides (flags, not a :variant) set what configs/semi_supervised_vae.py's
  m1m2_labels<num> (m1m2_conv_labels<num>) variant sets, but the test-only data.m1_config,
  and the run needs the M1 of that config."""
  config = load_config("semi_supervised_vae.py")
  run = results.RUNS[f"m1m2_labels{num}{m1}"]
  with config.unlocked():
    for flag in run.overrides:
      key, value = flag[len("--config."):].split("=")
      section, name = key.split(".")
      config[section][name] = type(config[section][name])(value)
    config.data.m1_config = results.RUNS[run.needs[0][1]].config + ".py"
  variant = f"m1m2_conv_labels{num}" if m1 else f"m1m2_labels{num}"
  assert config.to_dict() == load_config("semi_supervised_vae.py", variant).to_dict()
  assert run.needs == (("data.m1_workdir", "vae_conv" if m1 else "vae_mlp", True),)


@pytest.mark.parametrize("m1,m1_run", [("_m1_10x", "vae_mlp_10x"), ("_m1_conv", "vae_conv")])
def test_an_m1m2_row_judged_on_validation_is_its_m2_rows_pick_over_its_m1(m1, m1_run):
  """m1m2_labels<num><m1>_best_val (and _alpha100x_best_val): the M1+M2 overrides, its M2
  row's held-out 10% and accuracy pick, its M1's workdir, and that M2 row to beat."""
  group_b = next(g for g in results.GROUPS if g.name == "b")
  beats = {o.best_first[0]: o.best_first[1] for o in group_b.orderings if "M1+M2" in o.source}
  for m2 in ("_best_val", "_alpha100x_best_val"):
    name = f"m1m2_labels100{m1}{m2}"
    command = reproduce_run.run_command(results.RUNS[name], 2, "W", "B", 20, "", 2)
    assert {*results.M2_VARIANTS[m2], "--config.data.binarization=none",
            f"--config.data.m1_workdir=B/{m1_run}/seed_2"} <= set(command)
    assert {"--config.data.validation_fraction=0.1", "--config.train.select_metric=accuracy",
            "--config.train.select_mode=max"} <= set(command)
    assert beats[name] == f"m2_labels100{m2}" and name in group_b.models


def test_readme_summary_is_the_one_generated_from_docs_results():
  """The committed README summary is what --summary writes from docs/results.md's tables,
  so a hand edit of either (or a table retabulated without --summary) shows here."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  readme = open(os.path.join(root, "README.md")).read()
  document = open(os.path.join(root, "docs", "results.md")).read()
  assert tables_file.with_summary(readme, tables_file.summary_table(document)) == readme

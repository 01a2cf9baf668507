"""The command line: one-line errors, SIGTERM saves, the :smoke config end to end, bench
(gen_jax.reproduce: tests/test_reproduce.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST_COMPILE, REPO
from gen_jax import bench
from gen_jax.data import idx_builder

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def command(*args, env_extra=None, **kwargs):
  env = {**os.environ, **(env_extra or {})}
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600, **kwargs)


def data_flags(tiny_idx, real_when_installed=False):
  """Real Fashion-MNIST where installed (when asked), else the tiny generated IDX files."""
  idx_dir, data_dir, _ = tiny_idx
  if real_when_installed and idx_builder.has_idx_files(FASHION_MNIST_DIR):
    return []
  return [f"--config.data.idx_dir={idx_dir}", f"--config.data.data_dir={data_dir}"]


def test_unknown_config_key_is_a_one_line_error(tmp_path):
  result = command("gen_jax.main", "--config", "configs/pixelcnn.py:smoke",
                   "--workdir", str(tmp_path), "--config.train.batchsize=32")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "error: unknown config key 'batchsize' in a --config override. "
      'Did you mean "batch_size" instead of "batchsize"?')
  assert "Traceback" not in result.stderr


def test_user_errors_are_one_line(tiny_idx, tmp_path):
  result = command("gen_jax.main", "--config", "configs/pixelcnn.py:smoke", "--workdir",
                   str(tmp_path), "--config.train.batch_size=3", *data_flags(tiny_idx),
                   env_extra={"XLA_FLAGS":
                              f"--xla_force_host_platform_device_count=2 {FAST_COMPILE}"})
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: train.batch_size=3 does not divide over 2 devices")
  result = command("gen_jax.main", "--config", "configs/pixelcnn.py:smoke", "--workdir",
                   str(tmp_path), "--config.data.name=mnist",
                   f"--config.data.data_dir={tmp_path / 'empty'}")
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert "error: dataset 'mnist' is not on disk" in result.stderr.strip().splitlines()[-1]


def test_sigterm_saves_a_checkpoint_and_exits(tiny_idx, tmp_path):
  workdir = tmp_path / "run"
  process = subprocess.Popen(
      [sys.executable, "-m", "gen_jax.main", "--config", "configs/pixelcnn.py:smoke",
       "--workdir", str(workdir), "--config.train.num_steps=100000",
       "--config.train.log_every=1", "--config.train.checkpoint_every=100000",
       "--config.train.progress_bar=False",
       *data_flags(tiny_idx)],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
    time.sleep(0.2)
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM, output[-2000:]  # not "finished"
  saved = [int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit()]
  assert len(saved) == 1 and 3 <= saved[0] < 100000, output[-3000:]  # saved where it stopped
  assert f"saved step {saved[0]}" in output
  assert output.strip().splitlines()[-1] == (
      f"stopped by signal {signal.SIGTERM:d}; step {saved[0]} is saved in "
      f"{workdir / 'checkpoints'}: rerun the same command to resume")


def test_sigint_during_the_first_compile_exits_130_without_a_traceback(tiny_idx, tmp_path):
  workdir = tmp_path / "run"
  process = subprocess.Popen(
      [sys.executable, "-m", "gen_jax.main", "--config", "configs/pixelcnn.py:smoke",
       "--workdir", str(workdir), "--config.train.num_steps=100000",
       "--config.train.progress_bar=False", *data_flags(tiny_idx)],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 300
  while time.time() < deadline and not (workdir / "config.json").exists():
    time.sleep(0.05)
  process.send_signal(signal.SIGINT)  # config.json is written just before init and compile
  output, _ = process.communicate(timeout=300)
  assert process.returncode == 128 + signal.SIGINT, output[-3000:]
  assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
  assert output.strip().splitlines()[-1].startswith(f"stopped by signal {signal.SIGINT:d};")


def test_smoke_config_end_to_end(tiny_idx, tmp_path):
  """configs/pixelcnn.py:smoke through main: real Fashion-MNIST where installed."""
  workdir = tmp_path / "smoke"
  result = command("gen_jax.main", "--config", "configs/pixelcnn.py:smoke", "--workdir",
                   str(workdir), *data_flags(tiny_idx, real_when_installed=True),
                   env_extra={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  evals = [r for r in records if r["split"] == "eval"]
  assert evals and evals[-1]["bits_per_dim"] < 8.0  # better than uniform after 20 steps
  assert (workdir / "samples" / "step_20.png").exists()
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]


def test_bench_prints_one_json_line(tiny_idx):
  result = command("gen_jax.bench", "--config", "configs/pixelcnn.py:smoke", "--steps", "3",
                   "--what", "summary", "--num_samples", "2", *data_flags(tiny_idx))
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [l for l in result.stdout.splitlines() if l.startswith("{")]
  figures = json.loads(line)
  for key in ("examples_per_s", "step_ms_median", "compile_s", "peak_rss_mb", "step_memory_mb",
              "input_examples_per_s", "sample_s"):
    assert figures[key] > 0, key
  # The input pipeline must outrun the train step it feeds.
  assert figures["input_over_train"] > 1
  table = bench.markdown_table([{**figures, "config": "configs/pixelcnn.py:smoke"},
                                {"config": "configs/x.py", "error": "no data"}])
  header, rule, row, failed = table.strip().splitlines()
  assert header.count("|") == rule.count("|") == row.count("|")
  assert row.startswith("| configs/pixelcnn.py:smoke | 16 |") and "n/a" not in row
  assert failed == "| configs/x.py | failed: no data |"
  assert figures["device"].startswith("cpu") and figures["model"]["name"] == "pixelcnn"
  assert figures["examples_per_s"] == pytest.approx(
      figures["batch_size"] / figures["step_ms_median"] * 1e3)


def test_bench_sample_reports_agreement_and_speedup():
  result = command("gen_jax.bench", "--config", "configs/pixelcnn.py:smoke", "--what", "sample",
                   "--num_samples", "2")
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [l for l in result.stdout.splitlines() if l.startswith("{")]
  figures = json.loads(line)
  assert figures["agree"] is True
  assert figures["speedup"] == pytest.approx(figures["naive_s"] / figures["cached_s"])

"""Two processes on 127.0.0.1 (JAX's distributed runtime, gloo CPU collectives) == one process.

`pytest -k multiprocess` selects this file. Every subprocess has a hard timeout,
and both are killed if either fails, so the test always stops by itself.
"""

import os
import socket
import subprocess
import sys

import chex
import pytest

from conftest import FAST_COMPILE, REPO, tiny_pixelcnn_config
from gen_jax import train

TIMEOUT_S = 240


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def config_flags(tiny_idx, num_steps):
  idx_dir, data_dir, _ = tiny_idx
  return ["--config", "configs/pixelcnn.py:smoke", f"--config.data.idx_dir={idx_dir}",
          f"--config.data.data_dir={data_dir}", "--config.data.max_eval_examples=0",
          "--config.model.features=8", "--config.model.head_features=8",
          "--config.model.num_blocks=1", "--config.model.first_kernel_size=3",
          "--config.train.eval_batch_size=16", "--config.train.progress_bar=False",
          f"--config.train.num_steps={num_steps}", f"--config.train.checkpoint_every={num_steps}",
          "--config.cpu_devices=1"]


def run_processes(tiny_idx, workdir, num_steps, num_processes=2):
  """Launches the job as `num_processes` processes of one CPU device each; waits for all."""
  address = f"127.0.0.1:{free_port()}"
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count=1 {FAST_COMPILE}"}
  processes = [subprocess.Popen(
      [sys.executable, "-m", "gen_jax.main", *config_flags(tiny_idx, num_steps),
       "--workdir", str(workdir), "--distributed", f"--coordinator_address={address}",
       f"--num_processes={num_processes}", f"--process_id={index}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for index in range(num_processes)]
  try:
    outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  if any(p.returncode for p in processes):
    pytest.fail("\n".join(f"process {i} exit {p.returncode}:\n{out[-2500:]}"
                          for i, (p, out) in enumerate(zip(processes, outputs))))
  return outputs


def test_multiprocess_training_equals_single_process(tiny_idx, tmp_path):
  num_steps = 4
  run_processes(tiny_idx, tmp_path / "two_processes", num_steps)
  # The same global batch (16) on one process with 2 devices (conftest's fake CPUs).
  config = tiny_pixelcnn_config(tiny_idx, num_steps=num_steps, checkpoint_every=num_steps,
                                batch_size=16)
  single = train.run(config, str(tmp_path / "one_process"))
  state_two, step_two = train.restore_run(config, str(tmp_path / "two_processes"))
  state_one, step_one = train.restore_run(config, str(tmp_path / "one_process"))
  assert step_two == step_one == num_steps
  chex.assert_trees_all_close(state_two.params, state_one.params, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(state_two.opt_state, state_one.opt_state, rtol=1e-5, atol=1e-6)
  # Only process 0 wrote logs: one train record per log interval, one eval at the end.
  with open(tmp_path / "two_processes" / "metrics.jsonl") as f:
    records = [line for line in f if line.strip()]
  with open(tmp_path / "one_process" / "metrics.jsonl") as f:
    assert len(records) == len([line for line in f if line.strip()])
  assert single["eval"]["bits_per_dim"] > 0


def test_multiprocess_bad_batch_size_is_one_line_error(tiny_idx, tmp_path):
  """A global batch that does not split over the processes fails on every process."""
  address = f"127.0.0.1:{free_port()}"
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count=1 {FAST_COMPILE}"}
  processes = [subprocess.Popen(
      [sys.executable, "-m", "gen_jax.main", *config_flags(tiny_idx, 2),
       "--config.train.batch_size=3", "--workdir", str(tmp_path / "run"), "--distributed",
       f"--coordinator_address={address}", "--num_processes=2", f"--process_id={index}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for index in range(2)]
  try:
    results = [p.communicate(timeout=TIMEOUT_S) for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  for p, (_, stderr) in zip(processes, results):
    assert p.returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: train.batch_size=3 does not divide")


@pytest.mark.parametrize("flag", ["--num_processes=2", "--process_id=0"])
def test_multiprocess_flags_without_distributed_are_an_error(flag, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "gen_jax.main", "--config", "configs/pixelcnn.py:smoke",
       "--workdir", str(tmp_path), flag], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --coordinator_address/--num_processes/--process_id need --distributed")

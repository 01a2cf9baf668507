"""The launch scripts: --dry-run prints the commands they would run; bad arguments get usage."""

import subprocess

from conftest import REPO


def launch(script, *args):
  return subprocess.run(["bash", f"launch/{script}", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=60)


TPU_ARGS = ["--name", "gj-test", "--zone", "us-central2-b", "--config",
            "configs/pixelcnn.py", "--workdir", "/mnt/shared/runs/pixelcnn"]


def test_tpu_dry_run_prints_every_step_for_all_workers():
  result = launch("run_tpu.sh", *TPU_ARGS, "--teardown", "--dry-run", "--",
                  "--config.train.num_steps=100")
  assert result.returncode == 0, result.stderr
  commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
  assert commands[0].startswith("+ gcloud compute tpus tpu-vm create gj-test --zone us-central2-b")
  assert any(c.startswith("+ git archive") for c in commands)
  ssh = [c for c in commands if " ssh gj-test " in c]
  assert len(ssh) == 3 and all("--worker=all" in c for c in ssh)  # setup, clear stale, run
  scp = [c for c in commands if " scp " in c]
  assert len(scp) == 1 and "--worker=all" in scp[0]
  assert "pkill" in ssh[1]
  run = ssh[2]
  for part in ("gen_jax.main", "--config\\ configs/pixelcnn.py", "--distributed",
               "/mnt/shared/runs/pixelcnn", "--config.train.num_steps=100", "worker_"):
    assert part in run, part
  assert commands[-1] == "+ gcloud compute tpus tpu-vm delete gj-test --zone us-central2-b --quiet"


def test_tpu_missing_or_bad_arguments_get_usage():
  result = launch("run_tpu.sh", "--name", "x", "--zone", "z", "--config", "configs/pixelcnn.py",
                  "--dry-run")
  assert result.returncode == 2 and not result.stdout
  assert result.stderr.strip().splitlines()[-1] == "error: missing --workdir"
  assert "bash launch/run_tpu.sh --name N --zone Z" in result.stderr
  result = launch("run_tpu.sh", *TPU_ARGS, "--bogus")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == "error: unknown argument '--bogus'"
  result = launch("run_tpu.sh", "--name", "x", "--zone", "z", "--config", "pixelcnn",
                  "--workdir", "w", "--dry-run")
  assert result.returncode == 2 and "--config must be configs/NAME.py" in result.stderr


def test_multigpu_dry_run():
  result = launch("run_multigpu.sh", "--config", "configs/pixelcnn.py", "--workdir", "w",
                  "--coordinator", "10.0.0.1:1234", "--num-hosts", "2", "--host-id", "1",
                  "--dry-run")
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == (
      "+ .venv/bin/python -m gen_jax.main --config configs/pixelcnn.py --workdir w "
      "--distributed --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=1")
  result = launch("run_multigpu.sh", "--config", "configs/pixelcnn.py", "--workdir", "w",
                  "--num-hosts", "2", "--dry-run")
  assert result.returncode == 2
  assert "need all of --coordinator, --num-hosts and --host-id" in result.stderr

"""Entry point: flags + config file -> train.run(config, workdir, mode).

  python -m gen_jax.main --config configs/pixelcnn.py --workdir DIR \
      [--config.train.num_steps=1000] [--mode train|eval|sample] [--output_dir OUT]

Exit status: 0 done; 1 an `error:` line (bad input, a failed checkpoint write,
non-finite training); 128 + N stopped by signal N (after saving).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax import applications, checkpointing, errors, parallel, train
from gen_jax.errors import NonFiniteError, StoppedBySignal, UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/pixelcnn.py[:smoke].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, samples).")
_MODE = flags.DEFINE_string(
    "mode", "train", f"What to do with the run: {', '.join(train.MODES)}, or an "
    f"application of the trained model: {', '.join(applications.RUN_MODES)}.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where modes other than train write metrics and samples "
    "(default: the workdir); for a read-only run directory.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() (multi-host TPU VM / multi-GPU).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (auto-detected on TPU VMs / SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  checkpointing.quiet_info_logs()
  parallel.configure_cpu_devices(_CONFIG.value.cpu_devices)
  try:
    parallel.initialize_distributed(_DISTRIBUTED.value, _COORDINATOR.value,
                                    _NUM_PROCESSES.value, _PROCESS_ID.value)
    train.run(_CONFIG.value, _WORKDIR.value, _MODE.value, output_dir=_OUTPUT_DIR.value)
  except (UserError, NonFiniteError) as error:
    logging.flush()
    sys.exit(f"error: {error}")
  except StoppedBySignal as stop:
    logging.flush()
    print(stop, file=sys.stderr)
    sys.exit(128 + stop.signal_number)
  except KeyboardInterrupt:  # a second signal, or one outside training
    logging.flush()
    print("interrupted", file=sys.stderr)
    sys.exit(128 + 2)


if __name__ == "__main__":
  app.run(main, flags_parser=errors.parse_flags)

"""Entry point: flags + config file -> train.run(config, workdir, mode).

  python -m gen_jax.main --config configs/pixelcnn.py --workdir DIR \
      [--config.train.num_steps=1000] [--mode train|eval|sample]
"""

import logging as std_logging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax import parallel, train
from gen_jax.errors import NonFiniteError, UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/pixelcnn.py[:smoke].",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, samples).")
_MODE = flags.DEFINE_string(
    "mode", "train", f"What to do with the run: {', '.join(train.MODES)}, or a mode of "
    "the model's task (e.g. a VAE's interpolate).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() (multi-host TPU VM / multi-GPU).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (auto-detected on TPU VMs / SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """absl flag parsing, with a bad --config.KEY override reported in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:  # a bad flag value, a missing required flag, a bad config file
    lines = [line for line in str(error).splitlines() if line.strip()]
    sys.exit(f"error: {lines[0]} {lines[-1]}" if len(lines) > 1 else f"error: {lines[0]}")
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    message = " ".join(str(error).encode().decode("unicode_escape").split())
    if isinstance(error, (AttributeError, KeyError)):  # ml_collections: locked, no such key
      key, _, hint = message.strip("'\"").partition("' ")
      sys.exit(f"error: unknown config key {key!r} in a --config override. {hint}".strip())
    sys.exit(f"error: bad --config override: {message}")


def quiet_orbax_info_logs() -> None:
  """Orbax logs every save step at INFO; keep its warnings and errors only."""
  class _Filter(std_logging.Filter):
    def filter(self, record):
      return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname
  logging.get_absl_handler().addFilter(_Filter())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  quiet_orbax_info_logs()
  parallel.configure_cpu_devices(_CONFIG.value.cpu_devices)
  try:
    parallel.initialize_distributed(_DISTRIBUTED.value, _COORDINATOR.value,
                                    _NUM_PROCESSES.value, _PROCESS_ID.value)
    train.run(_CONFIG.value, _WORKDIR.value, _MODE.value)
  except (UserError, NonFiniteError) as error:
    logging.flush()
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)

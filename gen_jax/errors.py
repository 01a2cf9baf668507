"""Errors that mean "the user asked for something that cannot work".

`main` prints them as one line (no traceback) and exits non-zero; anything else
is a bug and keeps its traceback.
"""

import sys

from absl import flags


class UserError(ValueError):
  """Bad input: a config value, a missing dataset, an unusable checkpoint."""


class NonFiniteError(FloatingPointError):
  """Training produced a NaN/Inf metric; no state after the last finite one is saved."""


class StoppedBySignal(Exception):
  """Training stopped on SIGTERM/SIGINT after saving; `main` exits with 128 + the signal."""

  def __init__(self, signal_number: int, message: str):
    super().__init__(message)
    self.signal_number = signal_number


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

"""Errors that mean "the user asked for something that cannot work".

`main` prints them as one line (no traceback) and exits non-zero; anything else
is a bug and keeps its traceback.
"""


class UserError(ValueError):
  """Bad input: a config value, a missing dataset, an unusable checkpoint."""


class NonFiniteError(FloatingPointError):
  """Training produced a NaN/Inf metric; no state after the last finite one is saved."""


class StoppedBySignal(Exception):
  """Training stopped on SIGTERM/SIGINT after saving; `main` exits with 128 + the signal."""

  def __init__(self, signal_number: int, message: str):
    super().__init__(message)
    self.signal_number = signal_number

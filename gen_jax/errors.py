"""Errors that mean "the user asked for something that cannot work".

`main` prints them as one line (no traceback) and exits non-zero; anything else
is a bug and keeps its traceback.
"""


class UserError(ValueError):
  """Bad input: a config value, a missing dataset, an unusable checkpoint."""


class NonFiniteError(FloatingPointError):
  """Training produced a NaN/Inf metric; the last good checkpoint is kept."""

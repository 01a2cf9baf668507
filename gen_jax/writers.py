"""Run outputs: metrics.jsonl, TensorBoard events, sample PNGs (process 0 only)."""

import copy
import json
import math
import os
import time

import numpy as np
from absl import logging
from tensorboardX import SummaryWriter

from gen_jax import sampling


class MetricWriter:
  """One JSON object a line ({"step", "split", metrics...}) plus TensorBoard scalars.

  A training writer (`resume_step` given) adds `wall_s` to each line: seconds of training
  since the run started, summed over its processes (a resumed run continues from its last
  kept line's `wall_s`; the time a stopped process spent after that line is not counted).
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None):
    """`resume_step`: training resumes from that step, so records of later steps (logged
    before the run was stopped) are dropped, in metrics.jsonl and TensorBoard alike."""
    self.workdir, self.enabled = workdir, enabled
    self.file_prefix, self.file_suffix = "", ""
    self._wall_start = None
    if enabled and resume_step is not None:
      path = os.path.join(workdir, "metrics.jsonl")
      drop_records_after(path, resume_step)
      self._wall_start = time.perf_counter() - last_wall_seconds(path)
    self._summary = (SummaryWriter(os.path.join(workdir, "tensorboard"),
                                   purge_step=None if resume_step is None else resume_step + 1)
                     if enabled else None)

  def tagged(self, prefix: str, suffix: str) -> "MetricWriter":
    """This writer, naming its files `samples/<prefix><name>_<step><suffix>.<ext>` (so that
    e.g. --mode sample never replaces a grid that training wrote)."""
    tagged = copy.copy(self)
    tagged.file_prefix, tagged.file_suffix = prefix, suffix
    return tagged

  def sample_path(self, step: int, name: str, extension: str) -> str:
    """`samples/<name>_<step>.<extension>` (with this writer's tags); makes `samples/`."""
    directory = os.path.join(self.workdir, "samples")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory,
                        f"{self.file_prefix}{name}_{step}{self.file_suffix}.{extension}")

  def write_scalars(self, step: int, split: str, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "split": split,
              **{k: float(v) if math.isfinite(float(v)) else str(float(v))
                 for k, v in metrics.items()}}
    if self._wall_start is not None:
      record["wall_s"] = round(time.perf_counter() - self._wall_start, 3)
    with open(os.path.join(self.workdir, "metrics.jsonl"), "a") as f:
      f.write(json.dumps(record) + "\n")
    for name, value in metrics.items():
      self._summary.add_scalar(f"{split}/{name}", float(value), step)
    self._summary.flush()

  def write_histogram(self, step: int, tag: str, counts: np.ndarray) -> None:
    """A TensorBoard histogram with one bucket per index: bucket i holds counts[i]
    (e.g. how often code i was used), as if the values were the indices."""
    if not self.enabled:
      return
    counts = np.asarray(counts, np.float64)
    values = np.arange(len(counts), dtype=np.float64)
    used = np.flatnonzero(counts)
    self._summary.add_histogram_raw(
        tag, min=float(used[0]) if len(used) else 0.0,
        max=float(used[-1]) if len(used) else 0.0, num=float(counts.sum()),
        sum=float(counts @ values), sum_squares=float(counts @ values**2),
        bucket_limits=(values + 0.5).tolist(), bucket_counts=counts.tolist(), global_step=step)
    self._summary.flush()

  def write_images(self, step: int, name: str, images: np.ndarray,
                   num_columns: int | None = None) -> str | None:
    """Saves `samples/<name>_<step>.png` (a grid) and logs it to TensorBoard."""
    if not self.enabled:
      return None
    path = self.sample_path(step, name, "png")
    sampling.save_image_grid(path, images, num_columns)
    self._summary.add_image(name, sampling.image_grid(images, num_columns), step,
                            dataformats="HWC")
    self._summary.flush()
    return path

  def write_text(self, step: int, name: str, text: str) -> str | None:
    """Saves `samples/<name>_<step>.txt` and logs it to TensorBoard."""
    if not self.enabled:
      return None
    path = self.sample_path(step, name, "txt")
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)
    self._summary.add_text(name, text, step)
    self._summary.flush()
    return path

  def close(self) -> None:
    if self._summary is not None:
      try:
        self._summary.close()
      except OSError as error:  # a full disk: the run's own error says what was lost
        logging.warning("TensorBoard events in %s could not be flushed: %s", self.workdir,
                        os.strerror(error.errno) if error.errno else error)


def drop_records_after(path: str, step: int) -> int:
  """Removes the records of steps after `step` from a metrics.jsonl (atomically); returns
  how many were dropped. A resumed run then logs one trajectory, not a repeat."""
  if not os.path.isfile(path):
    return 0
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  kept = [line for line in lines if line.endswith("\n") and _step_of(line) <= step]
  if len(kept) < len(lines):
    with open(path + ".tmp", "w") as f:
      f.writelines(kept)
    os.replace(path + ".tmp", path)
  return len(lines) - len(kept)


def last_wall_seconds(path: str) -> float:
  """The `wall_s` of the last line of a metrics.jsonl that has one (0 if none)."""
  if not os.path.isfile(path):
    return 0.0
  with open(path) as f:
    walls = [record["wall_s"] for record in map(json.loads, filter(str.strip, f))
             if "wall_s" in record]
  return float(walls[-1]) if walls else 0.0


def _step_of(line: str) -> float:
  """The step of a metrics.jsonl line; infinity for a line torn by a killed write."""
  try:
    return json.loads(line).get("step", 0)
  except ValueError:
    return math.inf

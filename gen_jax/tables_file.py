"""The files `python -m gen_jax.reproduce` writes its tables into: a tables file
(--tables_file, docs/results.md) whose reproduce block holds one section per command, and
a README whose summary block (--summary) has one row per table of that block, parsed from
the tables' own markdown (so sections whose runs are on another machine count too)."""

import dataclasses
import os
import re
from typing import Callable

from absl import app

from gen_jax import flatness, results

TABLES_BEGIN, TABLES_END = "<!-- reproduce:begin -->", "<!-- reproduce:end -->"
SECTION = "<!-- reproduce:section {} -->"
SUMMARY_BEGIN, SUMMARY_END = "<!-- reproduce:summary:begin -->", "<!-- reproduce:summary:end -->"


def block_span(text: str, begin: str, end: str) -> tuple[int, int]:
  """Where the lines between the marker line `begin` and the marker `end` lie in `text`.
  ValueError: no such block."""
  start, stop = text.find(begin + "\n"), text.find(end)
  if start < 0 or stop < start:
    raise ValueError(f"no {begin} ... {end} lines")
  return start + len(begin) + 1, stop


def with_tables(text: str, key: str, tables: str) -> str:
  """`text` with one command's tables in its reproduce block: the block holds one section
  per command (a marker line naming `key`, then its tables); this key's section is
  replaced, or appended when new, and the others are kept. ValueError: no block."""
  start, stop = block_span(text, TABLES_BEGIN, TABLES_END)
  marker = SECTION.format(key) + "\n"
  section = marker + tables.rstrip("\n") + "\n\n"
  block = text[start:stop]
  if marker not in block:
    return text[:start] + block + section + text[stop:]
  head, _, rest = block.partition(marker)
  following = rest.find(SECTION.format("").rstrip(" ->"))
  tail = rest[following:] if following >= 0 else ""
  return text[:start] + head + section + tail + text[stop:]


def short_device(device_line: str) -> str:
  """'Device: gpu NVIDIA H200 x1, 16 host CPU cores (...); 15 runs at once. Mean ...' ->
  'GPU (NVIDIA H200)'; a CPU's -> 'CPU, 2 cores'; several settings, each once."""
  kinds = [f"GPU ({name.strip()})" if kind == "gpu" else
           f"CPU, {cores} cores" if cores else "CPU"
           for kind, name, cores in re.findall(
               r"\b(gpu|cpu)\b(.*?) x\d+(?:, (\d+) host CPU cores)?", device_line)]
  return "; ".join(dict.fromkeys(kinds)) or "-"


@dataclasses.dataclass
class SummaryRow:
  """One group table of a section, as the README's summary shows it."""
  group: str  # "(b) latent-variable"
  budget: str  # "10000 steps"
  device: str
  headlines: dict[str, list[tuple[str, str]]]  # metric -> [(model, "mean ± sd")]
  flat: str  # "1/3; 2/3 flat or no trend beyond their evals' scatter"
  verdicts: list[str]  # "order: verdict", one per papers' ordering of the table

  def markdown(self, shown: set[tuple[str, ...]]) -> str:
    """The row; a model whose headline an earlier row (in `shown`, which this extends)
    gave at the same budget and on the same device is named, not repeated, and such a
    row's papers'-order verdicts are counted, not repeated."""
    cells, repeated = [], []
    for metric, values in self.headlines.items():
      fresh = []
      for model, value in values:
        if self.first_time((model, value), shown):
          fresh.append(f"{model} {value}")
        else:
          repeated.append(model)
      if fresh:
        cells.append(f"{metric}: {', '.join(fresh)}")
    if repeated:
      cells.append(f"as in a row above: {', '.join(repeated)}")
    verdicts = [v for v in self.verdicts if self.first_time((v,), shown)]
    if len(verdicts) < len(self.verdicts):
      verdicts.append(f"{len(self.verdicts) - len(verdicts)} as in a row above")
    return (f"| {self.group} | {self.budget} | {self.device} | {'; '.join(cells)} | "
            f"{self.flat} | {'; '.join(verdicts) or '-'} |")

  def first_time(self, item: tuple[str, ...], shown: set[tuple[str, ...]]) -> bool:
    """Whether no earlier row gave `item` at this budget and device; marks it given."""
    key = (self.budget, self.device, *item)
    first = key not in shown
    shown.add(key)
    return first


def section_rows(section: str) -> list[SummaryRow]:
  """The summary rows (one per group table) of one command's section of the reproduce
  block."""
  budget = re.search(r"^Budget: (\d+) (steps|minutes)", section, re.MULTILINE)
  how = ("-" if not budget else f"{budget.group(1)} steps" if budget.group(2) == "steps"
         else f"{budget.group(1)} min of steps")
  rows = []
  for table in re.split(r"^(?=### \()", section, flags=re.MULTILINE)[1:]:
    group = next(g for g in results.GROUPS if table.startswith(f"### ({g.name})"))
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| model |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    if results.FLATTENED_COLUMN not in columns:  # a table written before the column's name
      raise ValueError(f"a ({group.name}) table has no {results.FLATTENED_COLUMN!r} column: "
                       "rerun its command with --tabulate_only to rewrite it")
    headlines, models = {}, 0  # metric -> [(model, value)]
    flattened = {"flat": 0, "first eval": 0, "scatter": 0}  # rows so in every seed
    for line in lines:
      cells = [c.strip() for c in line.strip("|").split("|")]
      if cells[0] not in results.RUNS or len(cells) != len(columns):
        continue
      row = dict(zip(columns, cells))
      metric = results.RUNS[cells[0]].headline or next(
          (m for m in columns[1:] if m in group.metrics and row[m] != "-"), None)
      if metric and row.get(metric, "-") != "-":
        headlines.setdefault(metric, []).append((cells[0], row[metric]))
      models += 1
      everywhere = flatness.flattened_everywhere(row[results.FLATTENED_COLUMN])
      if everywhere:
        flattened[everywhere] += 1
    verdicts = [f"{order}: {verdict}" for order, verdict in re.findall(
        r"^Papers' order in \w+, best first \(.*?\): (.*?); ours: .*?\*\*(.*?)\*\*",
        table, re.MULTILINE)]
    device = next((line for line in lines if line.startswith("Device: ")), "")
    rows.append(SummaryRow(
        f"({group.name}) {group.short}", how, short_device(device), headlines,
        f"{flattened['flat']}/{models}"
        + (f"; {flattened['first eval']}/{models} flat from their first eval"
           if flattened["first eval"] else "")
        + (f"; {flattened['scatter']}/{models} flat or no trend beyond their evals' "
           "scatter" if flattened["scatter"] else ""),
        verdicts))
  return rows


def summarize_section(section: str) -> list[str]:
  """Summary rows (one per group table) of one command's section, each in full."""
  return [row.markdown(set()) for row in section_rows(section)]


def summary_table(document: str) -> str:
  """The README's short results table, from the reproduce block of `document` (the file
  `--tables_file` writes): per group table, its budget, device, each row's headline metric
  (mean ± spread over seeds; one an earlier row gave, by name only), how many rows had
  flattened in every seed, and whether the papers' orderings held (those an earlier row
  gave, by count only). ValueError: no block."""
  start, stop = block_span(document, TABLES_BEGIN, TABLES_END)
  sections = document[start:stop].split(SECTION.format("").rstrip(" ->"))[1:]
  rows = sorted((row for section in sections for row in section_rows(section)),
                key=lambda row: row.group)  # by group, in the block's order within one
  shown = set()
  return "\n".join(["| table | budget per run | device | headline metric (mean ± sd over "
                    "seeds) | rows flat in every seed | papers' order |",
                    "|---|---|---|---|---|---|"] + [row.markdown(shown) for row in rows]) + "\n"


def with_summary(readme: str, summary: str) -> str:
  """`readme` with `summary` between its summary marker lines. ValueError: no markers."""
  start, stop = block_span(readme, SUMMARY_BEGIN, SUMMARY_END)
  return readme[:start] + summary + readme[stop:]


def as_usage_error(flag: str, path: str, action: Callable[[], str]) -> str:
  """action(), with a file or block problem turned into a usage error naming --flag."""
  try:
    return action()
  except (OSError, ValueError) as error:
    why = error.strerror if isinstance(error, OSError) else error
    raise app.UsageError(f"--{flag}={path}: {why}") from error


def rewrite(path: str, flag: str, update: Callable[[str], str], check: bool = False) -> None:
  """Writes update(the file's text) back to `path`; check: only that it would work (the
  file is readable, has its block, and is writable), before any run. A problem is a usage
  error naming --flag."""
  def run() -> str:
    with open(path) as f:
      updated = update(f.read())
    if check and not os.access(path, os.W_OK):
      raise PermissionError(13, "not writable")
    if not check:
      with open(path, "w") as f:
        f.write(updated)
    return updated
  as_usage_error(flag, path, run)


def replace_section(path: str, key: str, tables: str | None) -> None:
  """Puts this command's tables (its section `key`) into the tables file's reproduce
  block, keeping the other commands' sections (None: only checks)."""
  rewrite(path, "tables_file", lambda text: with_tables(text, key, tables or ""),
          check=tables is None)


def replace_summary(path: str, tables_path: str, check: bool = False) -> None:
  """Puts the short table of every section of `tables_path`'s reproduce block into the
  summary block of `path` (check: only that both files would do)."""
  def read() -> str:
    with open(tables_path) as f:
      return summary_table(f.read())
  summary = as_usage_error("tables_file", tables_path, read)
  rewrite(path, "summary", lambda text: with_summary(text, summary), check=check)

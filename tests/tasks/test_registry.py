"""model.name -> task module: the documented rule is the registry's, name by name."""

import pathlib
import re

from gen_jax import tasks

ARCHITECTURE = pathlib.Path(__file__).resolve().parents[2] / "ARCHITECTURE.md"


def _registered_modules() -> dict[str, str]:
  """model.name -> the module (file stem under gen_jax/tasks/) its factory is defined in."""
  modules = {}
  for name, factory in tasks.TASKS.items():
    package, _, module = factory.__module__.rpartition(".")
    assert package == "gen_jax.tasks", (name, factory.__module__)
    modules[name] = module
  return modules


def _docstring_exceptions() -> dict[str, str]:
  """The '  a, b  -> module.py' lines of gen_jax/tasks/__init__.py's docstring."""
  exceptions = {}
  for names, module in re.findall(r"^\s+([\w, ]+?)\s+->\s+(\w+)\.py\s*$", tasks.__doc__, re.M):
    for name in names.split(","):
      exceptions[name.strip()] = module
  return exceptions


def _architecture_table() -> dict[str, str]:
  """The rows of ARCHITECTURE.md's 'From `model.name` to its task module' table."""
  text = ARCHITECTURE.read_text()
  section = text.split("## From `model.name` to its task module", 1)[1].split("\n## ", 1)[0]
  table = {}
  for names, module in re.findall(r"^\| (`[^|]+`) \| `tasks/(\w+)\.py` \|$", section, re.M):
    for name in re.findall(r"`(\w+)`", names):
      assert name not in table, f"{name} appears twice in ARCHITECTURE.md's table"
      table[name] = module
  return table


def test_architecture_table_names_every_registered_module():
  assert _architecture_table() == _registered_modules()


def test_docstring_rule_finds_every_registered_module():
  exceptions = _docstring_exceptions()
  assert exceptions, "the family table in gen_jax/tasks/__init__.py's docstring did not parse"
  assert set(exceptions) <= set(tasks.TASKS), set(exceptions) - set(tasks.TASKS)
  by_rule = {name: exceptions.get(name, name) for name in tasks.TASKS}
  assert by_rule == _registered_modules()


def test_a_shared_module_is_listed_as_an_exception():
  # Only a module that serves several names may differ from its name: a lone
  # name in a module of another name is what the rule exists to prevent.
  modules = _registered_modules()
  for name, module in modules.items():
    if module != name:
      sharing = [other for other, m in modules.items() if m == module]
      assert len(sharing) > 1, f"model.name={name} alone in tasks/{module}.py: name the module {name}.py"

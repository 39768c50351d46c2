"""docs/writing-a-task.md states what the code does: every run config field with its default,
the Task attributes' defaults, the subset rule's numbers, the built-in tasks' options, and
commands whose options exist. A default changed in the code fails here until the guide says so.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
from pathlib import Path

import pytest
import typer

from hyperagents.cli import _app
from hyperagents.runs import RunConfig, subset_defaults
from hyperagents.tasks import BUILTIN_TASKS, Task, load_task

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "writing-a-task.md"
TEXT = GUIDE.read_text(encoding="utf-8")


def table_defaults(first_column: str) -> dict[str, str]:
    """``{name: default}`` of the guide's table whose header starts with ``first_column``:
    rows ``| `name` | `default` | ...``."""
    header = re.search(rf"^\| {first_column} \| default \|.*$", TEXT, re.M)
    assert header is not None, f"no table headed '{first_column} | default'"
    rows: dict[str, str] = {}
    for line in TEXT[header.end() :].splitlines()[2:]:
        found = re.match(r"^\| `([^`]+)` \| `([^`]*)` \|", line)
        if found is None:
            break
        rows[found.group(1)] = found.group(2)
    return rows


def as_json(value: object) -> str:
    return json.dumps(value, default=list)


def test_every_run_config_field_is_in_the_guide_with_its_default() -> None:
    rows = table_defaults("field")
    fields = RunConfig.model_fields
    assert list(rows) == list(fields), "the guide's table lists the fields in the code's order"
    for name, field in fields.items():
        default = field.get_default(call_default_factory=True)
        assert rows[name] == as_json(default), f"{name}: the guide says {rows[name]}"


def test_every_task_attribute_is_in_the_guide_with_its_default() -> None:
    rows = table_defaults("attribute")
    names = [n for n, v in vars(Task).items() if not n.startswith("_") and not callable(v)]
    assert sorted(rows) == sorted(names)
    for name in names:
        assert rows[name] == as_json(getattr(Task, name)), name


@pytest.mark.parametrize("n_train", [400, 100, 60, 40, 20, 4])
def test_the_subset_rule_table_is_the_rule(n_train: int) -> None:
    size, margin = subset_defaults(n_train)
    assert re.search(rf"^\| {n_train} \| {size} \| {margin:g} \|$", TEXT, re.M), n_train


def test_the_builtin_tasks_options_are_their_constructors() -> None:
    for name in BUILTIN_TASKS:
        row = re.search(rf"^\| `{name}` \| (.*) \|$", TEXT, re.M)
        assert row is not None, name
        stated = dict(re.findall(r"`(\w+)` \(([^)]*)\)", row.group(1)))
        signature = inspect.signature(type(load_task(name)))
        assert stated == {p: str(v.default) for p, v in signature.parameters.items()}, name


def _commands() -> list[list[str]]:
    found = []
    for block in re.findall(r"```bash\n(.*?)```", TEXT, re.S):
        for line in block.splitlines():
            if line.startswith("hyperagents "):
                found.append(shlex.split(line, comments=True)[1:])
    return found


def test_the_guides_commands_and_options_exist() -> None:
    group = typer.main.get_command(_app.app)
    assert isinstance(group, typer.core.TyperGroup)
    commands = _commands()
    assert {"init-task", "test-task", "run", "experiment"} <= {c[0] for c in commands}
    for args in commands:
        command = group.commands[args[0]]
        flags = {opt for param in command.params for opt in param.opts}
        for arg in args[1:]:
            if arg.startswith("-"):
                assert arg in flags, f"hyperagents {args[0]} has no {arg}"


def test_the_readme_links_the_guide() -> None:
    assert "(docs/writing-a-task.md)" in (ROOT / "README.md").read_text(encoding="utf-8")

"""Task registry: built-ins, entry points and path/to/file.py:Class specs."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import hyperagents.tasks as tasks_module
from hyperagents.exceptions import TaskError, TaskNotFoundError
from hyperagents.tasks import Task, list_tasks, load_task

TOY_FILE = Path(__file__).resolve().parents[1] / "toytask.py"


def test_builtins_load() -> None:
    review = load_task("review")
    packing = load_task("packing")
    assert review.name == "review" and packing.name == "packing"
    assert {"task_agent.py", "meta_agent.py"} <= set(review.seed_program())


def test_file_spec_loads(tmp_path: Path) -> None:
    task = load_task(f"{TOY_FILE}:ToyTask")
    assert task.name == "toy"
    with pytest.raises(TaskNotFoundError, match="does not exist"):
        load_task(f"{tmp_path / 'missing.py'}:X")
    with pytest.raises(TaskNotFoundError, match="defines no"):
        load_task(f"{TOY_FILE}:Nope")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(TaskError, match="failed to import"):
        load_task(f"{broken}:X")
    not_task = tmp_path / "nottask.py"
    not_task.write_text("class X:\n    pass\n")
    with pytest.raises(TaskError, match=r"not a hyperagents\.tasks\.Task"):
        load_task(f"{not_task}:X")


def test_entry_points_are_discovered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = tmp_path / "plugin_task_mod.py"
    module.write_text(TOY_FILE.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="plugin-toy", value="plugin_task_mod:ToyTask", group="hyperagents.tasks")

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        return [ep] if group == "hyperagents.tasks" else []

    monkeypatch.setattr(tasks_module, "entry_points", fake_entry_points)
    task = load_task("plugin-toy")
    assert task.name == "toy"
    listed = {info.name: info for info in list_tasks()}
    assert listed["plugin-toy"].source == "entry point"
    assert listed["review"].source == "builtin"


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(TaskNotFoundError, match=r"known tasks: .*packing.*review"):
        load_task("nope")
    with pytest.raises(TaskNotFoundError):
        load_task("")


def test_task_objects_pass_through() -> None:
    task = load_task("review")
    assert load_task(task) is task


def test_checked_score_enforces_the_range() -> None:
    from hyperagents.tasks import Instance, Score

    from toytask import ToyTask

    class Bad(ToyTask):
        def score(self, instance: Instance, output: object) -> Score:
            return Score(2.0)

    class Raises(ToyTask):
        def score(self, instance: Instance, output: object) -> Score:
            raise KeyError("x")

    inst = ToyTask().instances("train")[0]  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="outside"):
        Bad().checked_score(inst, "hi")
    with pytest.raises(TaskError, match="raised"):
        Raises().checked_score(inst, "hi")
    assert isinstance(ToyTask(), Task)
    assert ToyTask().normalise(0.5) == 0.5
    assert ToyTask().aggregate([]) == 0.0

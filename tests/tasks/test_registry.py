"""Task registry: built-ins, entry points and path/to/file.py:Class specs."""

from __future__ import annotations

import sys
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


def test_a_task_file_imports_its_sibling_modules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("sibling_data_e3f1", "sibling_lazy_e3f1"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    folder = tmp_path / "my task"
    folder.mkdir()
    (folder / "sibling_data_e3f1.py").write_text("SIZES = (4, 2, 2)\n")
    (folder / "sibling_lazy_e3f1.py").write_text(
        "def label(x):\n    return 'hi' if x > 0.5 else 'lo'\n"
    )
    toy = TOY_FILE.read_text()
    (folder / "toy_copy.py").write_text(toy)
    (folder / "task.py").write_text(
        "from sibling_data_e3f1 import SIZES\n"
        "from toy_copy import ToyTask\n\n\n"
        "class SiblingTask(ToyTask):\n"
        "    def __init__(self):\n"
        "        super().__init__(sizes=SIZES)\n\n"
        "    def label(self, x):\n"
        "        import sibling_lazy_e3f1\n\n"
        "        return sibling_lazy_e3f1.label(x)\n"
    )
    task = load_task(f"{folder / 'task.py'}:SiblingTask")
    assert [len(task.instances(s)) for s in ("train", "val", "test")] == [4, 2, 2]
    assert task.label(0.9) == "hi"  # type: ignore[attr-defined]  # a sibling imported later
    # searched first only while task.py ran; kept last, once, for later imports
    assert sys.path[-1] == str(folder.resolve()) and sys.path.count(str(folder.resolve())) == 1
    load_task(f"{folder / 'task.py'}:SiblingTask")
    assert sys.path.count(str(folder.resolve())) == 1


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


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("demo_task", "DemoTask"),
        ("demo", "DemoTask"),
        ("knapsack_v2", "KnapsackV2Task"),
        ("myTask", "MyTask"),
        ("task", "TaskTask"),  # never the base class's own name
    ],
)
def test_init_task_names_the_class_once(name: str, cls: str) -> None:
    assert tasks_module.task_class_name(name) == cls

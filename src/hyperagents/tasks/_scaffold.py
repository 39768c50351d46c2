"""``hyperagents init-task``: scaffold a task folder with a seed hyperagent and a test."""

from __future__ import annotations

import keyword
from pathlib import Path

from hyperagents.exceptions import ConfigError

__all__ = ["scaffold_task"]

_TASK_PY = '''"""{name}: a hyperagents task (scaffolded by `hyperagents init-task`).

The example work: decide whether a point (x, y) lies inside a hidden disc. Replace the data,
`score` and the seed task agent with your own problem; keep the protocol:

* `instances(split)` returns the instances of "train", "val" and "test"; the task agent sees
  `Instance.inputs` only, never `Instance.target`;
* `score(instance, output)` is trusted code (it runs in the engine, outside the sandbox), returns
  a `Score` within `score_range` plus feedback text, and never raises on malformed output;
* `seed_program()` returns the starting hyperagent: `task_agent.py` (with `solve(inputs)`) and
  `meta_agent.py` (with `improve(workspace, report)`).

Run it:  hyperagents run --task {path}:{cls} --generations 10
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hyperagents.program import Program
from hyperagents.tasks import Instance, Score, Split, Task

_HERE = Path(__file__).resolve().parent


class {cls}(Task):
    """Is the point inside the hidden disc?"""

    name = "{name}"
    description = "Decide whether a point (x, y) lies inside a hidden disc."
    score_range = (0.0, 1.0)
    instance_timeout = 5.0

    def __init__(self, seed: int = 0) -> None:
        rng = random.Random(seed)
        centre, radius = (0.62, 0.41), 0.27  # the hidden rule; agents never see it
        self._splits: dict[Split, list[Instance]] = {{}}
        for split, size in ((Split.TRAIN, 200), (Split.VAL, 100), (Split.TEST, 100)):
            instances = []
            for k in range(size):
                x, y = rng.random(), rng.random()
                inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2
                target = "inside" if inside else "outside"
                instances.append(Instance(f"{{split.value}}-{{k:04d}}", {{"x": x, "y": y}}, target))
            self._splits[split] = instances

    def instances(self, split: Split) -> list[Instance]:
        return self._splits[Split(split)]

    def score(self, instance: Instance, output: Any) -> Score:
        if output not in ("inside", "outside"):
            return Score(0.0, f"invalid output {{output!r}}: expected 'inside' or 'outside'")
        if output == instance.target:
            return Score(1.0, f"correct: {{output}}")
        return Score(0.0, f"predicted {{output}}, expected {{instance.target}}")

    def seed_program(self) -> Program:
        return Program.from_directory(_HERE / "seed")
'''

_TASK_AGENT = '''"""Seed task agent: a parametrised rule the meta agent tunes through PARAMS."""

# Declared parameters: the offline meta agent edits the values of this literal.
PARAMS = {
    "cx": 0.5,
    "cy": 0.5,
    "radius": 0.1,
}
PARAM_SPACE = {
    "cx": {"type": "float", "low": 0.0, "high": 1.0, "feature": "x"},
    "cy": {"type": "float", "low": 0.0, "high": 1.0, "feature": "y"},
    "radius": {"type": "float", "low": 0.01, "high": 0.7},
}


def solve(inputs):
    """Return "inside" or "outside" for the point in ``inputs``."""
    dx = inputs["x"] - PARAMS["cx"]
    dy = inputs["y"] - PARAMS["cy"]
    return "inside" if dx * dx + dy * dy < PARAMS["radius"] ** 2 else "outside"
'''

_TEST = '''"""Checks of the {name} task (run with: pytest {path_dir})."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hyperagents.tasks import Split, load_task

HERE = Path(__file__).resolve().parent
SPEC = f"{{HERE / 'task.py'}}:{cls}"


def test_splits_are_nonempty_and_ids_unique() -> None:
    task = load_task(SPEC)
    ids = [inst.id for split in Split for inst in task.instances(split)]
    assert all(task.instances(split) for split in Split)
    assert len(ids) == len(set(ids))


def test_inputs_do_not_leak_targets() -> None:
    task = load_task(SPEC)
    for inst in task.instances(Split.TRAIN):
        assert inst.target not in (inst.inputs or {{}}).values()


def test_seed_agent_runs_and_scores_in_range() -> None:
    task = load_task(SPEC)
    program = task.seed_program()
    assert {{"task_agent.py", "meta_agent.py"}} <= set(program)
    path = HERE / "seed" / "task_agent.py"
    spec = importlib.util.spec_from_file_location("seed_task_agent", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    low, high = task.score_range
    val = task.instances(Split.VAL)
    scores = [task.score(inst, module.solve(inst.inputs)).value for inst in val]
    assert all(low <= s <= high for s in scores)


def test_malformed_output_scores_minimum() -> None:
    task = load_task(SPEC)
    inst = task.instances(Split.TRAIN)[0]
    assert task.score(inst, None).value == task.score_range[0]
'''


def scaffold_task(name: str, directory: Path) -> Path:
    """Create ``directory`` with ``task.py``, ``seed/`` (task + meta agent) and a test.

    Raises:
        ConfigError: ``name`` is not an identifier or ``directory`` exists and is not empty.
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"task name {name!r} must be a Python identifier")
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} already exists and is not empty")
    from hyperagents.improvers import offline_meta_agent_source

    cls = "".join(part.capitalize() for part in name.split("_")) + "Task"
    (directory / "seed").mkdir(parents=True, exist_ok=True)
    path = directory / "task.py"
    path.write_text(_TASK_PY.format(name=name, cls=cls, path=path), encoding="utf-8")
    (directory / "seed" / "task_agent.py").write_text(_TASK_AGENT, encoding="utf-8")
    (directory / "seed" / "meta_agent.py").write_text(offline_meta_agent_source(), encoding="utf-8")
    (directory / f"test_{name}.py").write_text(
        _TEST.format(name=name, cls=cls, path_dir=directory), encoding="utf-8"
    )
    return directory

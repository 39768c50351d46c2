"""``hyperagents init-task``: scaffold a task folder with a seed hyperagent and a test."""

from __future__ import annotations

import keyword
from pathlib import Path

from hyperagents.exceptions import ConfigError
from hyperagents.tasks._seeds import offline_meta_agent

__all__ = ["scaffold_task", "task_class_name"]

_TASK_PY = '''"""{name}: a hyperagents task (scaffolded by `hyperagents init-task`).

The example work: decide whether a point (x, y) lies inside a hidden disc. Replace the data,
`score` and the seed task agent with your own problem; keep the protocol:

* `instances(split)` returns the instances of "train", "val" and "test"; the task agent sees
  `Instance.inputs` only, never `Instance.target`;
* `score(instance, output)` is trusted code (it runs in the engine, outside the sandbox), returns
  a `Score` within `score_range` plus feedback text, and never raises on malformed output;
* `seed_program()` returns the starting hyperagent: `task_agent.py` (with `solve(inputs)`) and
  `meta_agent.py` (with `improve(workspace, report)`) with the `meta_*.py` modules it imports.
  Here `seed/` holds the task agent and, unless it has a `meta_agent.py` of its own
  (`init-task --copy-meta` puts a copy there to edit), the installed offline meta agent is used.

Run it:  hyperagents run --task {path}:{cls} --generations 10
The keyword arguments of `__init__` are task options, stored with the run:
         hyperagents run --task {path}:{cls} --task-option seed=3
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hyperagents.improvers import meta_agent_files
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
        seed = Program.from_directory(_HERE / "seed")
        if "meta_agent.py" in seed:  # a meta agent of this task's own
            return seed
        return seed.with_files(meta_agent_files("offline") or {{}})
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

_TEST = '''"""Checks of the {name} task. Run them with the Python that has hyperagents:

    python {test_file}

(or ``python -m unittest`` in this folder; pytest finds them too).
"""

from __future__ import annotations

import importlib.util
import unittest
from pathlib import Path

from hyperagents.tasks import Split, load_task, param_space_errors

HERE = Path(__file__).resolve().parent
SPEC = f"{{HERE / 'task.py'}}:{cls}"


class {cls}Checks(unittest.TestCase):
    """The protocol every task keeps (see task.py's docstring)."""

    def setUp(self) -> None:
        self.task = load_task(SPEC)

    def test_splits_are_nonempty_and_ids_unique(self) -> None:
        ids = [inst.id for split in Split for inst in self.task.instances(split)]
        self.assertTrue(all(self.task.instances(split) for split in Split))
        self.assertEqual(len(ids), len(set(ids)))

    def test_inputs_do_not_leak_targets(self) -> None:
        for inst in self.task.instances(Split.TRAIN):
            self.assertNotIn(inst.target, (inst.inputs or {{}}).values())

    def test_seed_agent_runs_and_scores_in_range(self) -> None:
        program = self.task.seed_program()
        self.assertLessEqual({{"task_agent.py", "meta_agent.py"}}, set(program))
        path = HERE / "seed" / "task_agent.py"
        spec = importlib.util.spec_from_file_location("seed_task_agent", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        low, high = self.task.score_range
        for inst in self.task.instances(Split.VAL):
            score = self.task.score(inst, module.solve(inst.inputs)).value
            self.assertTrue(low <= score <= high, f"{{inst.id}}: {{score}} outside the range")

    def test_malformed_output_scores_minimum(self) -> None:
        inst = self.task.instances(Split.TRAIN)[0]
        self.assertEqual(self.task.score(inst, None).value, self.task.score_range[0])

    def test_score_takes_any_output_without_raising(self) -> None:
        # Agents return anything JSON can hold. A run survives a score() that raises (the
        # output scores the minimum, the error is kept), but the agent then learns nothing from
        # the feedback: catch what your score() cannot handle and say why in the Score.
        inst = self.task.instances(Split.TRAIN)[0]
        odd = [None, True, -1, 1e308, "", "x" * 10_000, [], [1, [2]], {{}}, {{"a": None}}]
        for output in odd:
            with self.subTest(output=repr(output)[:40]):
                self.task.checked_score(inst, output)  # raises TaskError if score() does

    def test_seed_search_space_is_valid(self) -> None:
        source = (HERE / "seed" / "task_agent.py").read_text()
        self.assertEqual(param_space_errors(source), [])


if __name__ == "__main__":
    unittest.main()
'''


def task_class_name(name: str) -> str:
    """The class ``init-task NAME`` writes: ``demo`` → ``DemoTask``, ``demo_task`` →
    ``DemoTask`` (a name that already ends in ``task`` gets no second one)."""
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    return camel if camel.endswith("Task") and camel != "Task" else camel + "Task"


def scaffold_task(name: str, directory: Path, *, copy_meta: bool = False) -> Path:
    """Create ``directory`` with ``task.py``, ``seed/`` and ``test_NAME.py``: checks that need
    only the standard library (``python test_NAME.py``).

    ``seed/`` holds the task agent; the task's seed program adds the installed offline meta
    agent, unless ``copy_meta`` copies its files into ``seed/`` to be edited there.

    Raises:
        ConfigError: ``name`` is not an identifier or ``directory`` exists and is not empty.
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"task name {name!r} must be a Python identifier")
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} already exists and is not empty")
    cls = task_class_name(name)
    (directory / "seed").mkdir(parents=True, exist_ok=True)
    path = directory / "task.py"
    path.write_text(_TASK_PY.format(name=name, cls=cls, path=path), encoding="utf-8")
    (directory / "seed" / "task_agent.py").write_text(_TASK_AGENT, encoding="utf-8")
    meta = offline_meta_agent()  # also checks that the installed one is there
    if copy_meta:
        for seed_name, text in meta.items():
            (directory / "seed" / seed_name).write_text(text, encoding="utf-8")
    test_file = directory / f"test_{name}.py"
    test_file.write_text(_TEST.format(name=name, cls=cls, test_file=test_file), encoding="utf-8")
    return directory

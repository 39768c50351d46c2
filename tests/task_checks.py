"""Checks the tests of generated built-in tasks share: their ``task`` and ``agent`` fixtures,
loading a seed agent in this process, scoring it, the splits' determinism, the declared search
space and a short real run."""

from __future__ import annotations

import ast
import importlib.resources
import importlib.util
import json
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import pytest

from hyperagents import RunStatus, VariantState
from hyperagents.exceptions import ConfigError
from hyperagents.runs import Run
from hyperagents.storages import InMemoryStorage
from hyperagents.tasks import Instance, Split, Task, load_task, param_space_errors


def load_agent(source: str, name: str) -> ModuleType:
    """A task agent's source run as a fresh module (not the sandbox: for measuring only)."""
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def seed_source(task_class: type[Task]) -> str:
    """The source of a built-in task's seed task agent (``seed/task_agent.py`` of its package)."""
    package = importlib.resources.files(task_class.__module__)
    return package.joinpath("seed/task_agent.py").read_text("utf-8")


def seed_fixtures(task_class: type[Task]) -> tuple[Callable[[], Task], Callable[[], ModuleType]]:
    """The ``task`` fixture (the task with its defaults, one a module) and the ``agent`` fixture
    (its seed task agent, loaded afresh for each test) of a built-in task's tests:
    ``task, agent = seed_fixtures(ForecastTask)``."""

    @pytest.fixture(scope="module", name="task")
    def task_fixture() -> Task:
        return task_class()

    @pytest.fixture(name="agent")
    def agent_fixture() -> ModuleType:
        return load_agent(seed_source(task_class), f"{task_class.name}_seed_agent")

    return task_fixture, agent_fixture


def mean_score(task: Task, agent: ModuleType, instances: Sequence[Instance]) -> float:
    """The agent's mean score, with the JSON round trips of the sandbox boundary."""
    total = 0.0
    for inst in instances:
        output = agent.solve(json.loads(json.dumps(inst.inputs)))
        total += task.checked_score(inst, json.loads(json.dumps(output))).value
    return total / len(instances)


def declared_space(source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``PARAMS`` and ``PARAM_SPACE`` literals of a task agent's source."""
    found = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        if node.targets[0].id in ("PARAMS", "PARAM_SPACE")
    }
    return found["PARAMS"], found["PARAM_SPACE"]


def assert_splits_disjoint_and_deterministic(task: Task, again: Task, other: Task) -> None:
    """Ids unique across splits, inputs distinct between splits, JSON-clean; ``again`` (same
    seed) gives the same instances, ``other`` (another seed) other inputs."""
    ids = [inst.id for split in Split for inst in task.instances(split)]
    assert len(ids) == len(set(ids))
    seen = [json.dumps(inst.inputs, sort_keys=True) for s in Split for inst in task.instances(s)]
    assert len(seen) == len(set(seen))
    for split in Split:
        a, b = task.instances(split), again.instances(split)
        assert [(i.id, i.inputs, i.target) for i in a] == [(i.id, i.inputs, i.target) for i in b]
        assert [i.inputs for i in a] != [i.inputs for i in other.instances(split)]
        assert all(json.loads(json.dumps(i.inputs)) == i.inputs for i in a)


def assert_short_run_completes(task: Task, generations: int = 3) -> None:
    """A real run (process sandbox, the seed's offline meta agent) scores every variant."""
    run = Run.create(
        task=task,
        seed=0,
        storage=InMemoryStorage(),
        config={"sandbox": "process", "subset_size": 5},
    )
    assert run.optimize(generations=generations).status is RunStatus.COMPLETE
    variants = run.variants()
    assert len(variants) == generations + 1
    seed = variants[0]
    assert seed.state is VariantState.COMPLETE
    low, high = task.score_range
    assert low <= seed.scores["val"] <= high
    assert any(v.meta_info.get("params") for v in variants[1:])


def assert_registered(task: Task, sizes: tuple[int, int, int]) -> None:
    """The registry loads the task by its name; its default split sizes and a [0, 1] range;
    a size of 0 is refused."""
    assert type(load_task(task.name)) is type(task)
    assert task.describe()["splits"] == dict(zip(("train", "val", "test"), sizes, strict=True))
    assert task.score_range == (0.0, 1.0)
    with pytest.raises(ConfigError):
        type(task)(n_val=0)  # type: ignore[call-arg]


def assert_seed_space_valid(source: str) -> dict[str, Any]:
    """The seed's ``PARAM_SPACE`` passes the run's check, covers ``PARAMS`` exactly and holds
    every default strictly inside its bounds; returns ``PARAMS``."""
    assert param_space_errors(source) == []
    params, space = declared_space(source)
    assert set(params) == set(space)
    for key, value in params.items():
        assert space[key]["low"] < value < space[key]["high"], key
    return params


def assert_fast_and_deterministic(
    agent: ModuleType, instances: Sequence[Instance], seconds: float
) -> None:
    """``solve`` takes under ``seconds`` of this thread's CPU per instance and answers the
    same twice."""
    start = time.thread_time()
    first = [agent.solve(inst.inputs) for inst in instances]
    assert (time.thread_time() - start) / len(instances) < seconds
    assert first == [agent.solve(inst.inputs) for inst in instances]


def assert_seed_fast_and_in(
    task: Task, agent: ModuleType, *, seconds: float, low: float, high: float
) -> None:
    """On val, the seed agent is fast and deterministic (:func:`assert_fast_and_deterministic`)
    and its mean score is in ``[low, high]``."""
    insts = task.instances(Split.VAL)
    assert_fast_and_deterministic(agent, insts, seconds)
    assert low <= mean_score(task, agent, insts) <= high

"""The meta agent's plan read with bounds, the levers' reductions, and the checks of the model
a trainer wrote (done in the engine, without any library)."""

from __future__ import annotations

import json
import struct

import pytest

from hyperagents.exceptions import TaskError
from hyperagents.tasks import Instance
from hyperagents.weights import (
    DataGuard,
    Lever,
    TrainingPlan,
    check_model,
    entry_points_of,
    safetensors_problem,
    task_examples,
)

from weightstask import WeightsTask


def _tensor_file(payload: bytes = b"\x00" * 8, end: int | None = None) -> bytes:
    header = {
        "w": {
            "dtype": "F32",
            "shape": [2],
            "data_offsets": [0, len(payload) if end is None else end],
        }
    }
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


@pytest.mark.parametrize(
    ("data", "lever", "problem"),
    [
        (None, Lever.HARNESS, None),
        (b'{"lever": "both", "sources": ["self"]}', Lever.BOTH, None),
        (b"not json", Lever.HARNESS, "not valid JSON"),
        (b"[1, 2]", Lever.HARNESS, "not a JSON object"),
        (b'{"lever": "gears"}', Lever.HARNESS, "unknown lever"),
        (b"[" * 5000 + b"]" * 5000, Lever.HARNESS, "training_plan.json"),
        (b'{"lever": "weights", "options": 3}', Lever.WEIGHTS, "options is not an object"),
        (b" " * 70_000 + b"{}", Lever.HARNESS, "larger than"),
    ],
)
def test_a_plan_is_read_whatever_was_written(
    data: bytes | None, lever: Lever, problem: str | None
) -> None:
    plan = TrainingPlan.read(data)
    assert plan.lever is lever
    if problem is None:
        assert not plan.problems
    else:
        assert any(problem in p for p in plan.problems)


def test_unknown_sources_are_left_out_in_a_fixed_order() -> None:
    plan = TrainingPlan.read(b'{"lever": "weights", "sources": ["people", "val", "self"]}')
    assert plan.sources == ("self", "people")
    assert any("unknown sources ['val']" in p for p in plan.problems)


@pytest.mark.parametrize(
    ("wanted", "levers", "can_train", "taken", "reduced"),
    [
        (Lever.BOTH, Lever.BOTH, True, Lever.BOTH, False),
        (Lever.WEIGHTS, Lever.HARNESS, True, Lever.HARNESS, True),
        (Lever.BOTH, Lever.HARNESS, True, Lever.HARNESS, True),
        (Lever.HARNESS, Lever.WEIGHTS, True, Lever.WEIGHTS, True),
        (Lever.BOTH, Lever.WEIGHTS, True, Lever.WEIGHTS, True),
        (Lever.WEIGHTS, Lever.BOTH, False, Lever.HARNESS, True),
        (Lever.HARNESS, Lever.WEIGHTS, False, Lever.WEIGHTS, True),
    ],
)
def test_the_levers_reduce_a_choice(
    wanted: Lever, levers: Lever, can_train: bool, taken: Lever, reduced: bool
) -> None:
    lever, why = TrainingPlan(wanted).allowed(levers, can_train=can_train)
    assert lever is taken and (why is not None) is reduced


def test_a_well_formed_model_passes() -> None:
    assert safetensors_problem(_tensor_file()) is None
    assert check_model({"config.json": b'{"a": 1}', "m.safetensors": _tensor_file()}) is None


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, "no config.json"),
        ({"config.json": b"{"}, "config.json"),
        ({"config.json": b"[]"}, "not a JSON object"),
        ({"config.json": b"{}"}, "no *.safetensors"),
        ({"config.json": b"{}", "m.safetensors": b"\x01"}, "shorter than its header"),
        ({"config.json": b"{}", "m.safetensors": b"\xff" * 16}, "header larger"),
        ({"config.json": b"{}", "m.safetensors": _tensor_file(end=4)}, "where the header says"),
        (
            {"config.json": b"{}", "m.safetensors": struct.pack("<Q", 2) + b"[]"},
            "not a JSON object",
        ),
    ],
)
def test_a_model_that_is_not_one_is_refused_with_the_reason(
    files: dict[str, bytes], problem: str
) -> None:
    found = check_model(files)
    assert found is not None and problem in found


def test_a_trainer_is_validated_with_the_tasks_entry_points() -> None:
    task_points = {"task_agent.py": ("solve",)}
    assert entry_points_of(task_points, ["task_agent.py"]) == task_points
    assert entry_points_of(task_points, ["task_agent.py", "trainer.py", "teacher.py"]) == {
        "task_agent.py": ("solve",),
        "trainer.py": ("train",),
        "teacher.py": ("label",),
    }


def test_a_task_example_that_is_not_json_is_the_tasks_bug() -> None:
    class _Broken(WeightsTask):
        def training_examples(self) -> list[Instance]:
            return [Instance("task-x", {"x": 0.5}, {1, 2})]

    task = _Broken()
    with pytest.raises(TaskError, match="'task-x' is not JSON"):
        task_examples(task, DataGuard(task))

"""Behaviour of the built-in ``packing`` task, its strict validity check and its seed agent."""

from __future__ import annotations

import ast
import importlib.resources
import importlib.util
import json
import math
import time
from types import ModuleType
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.tasks._base import Instance, Split
from hyperagents.tasks.packing import N_CIRCLES, PackingTask, check_packing

SEED_AGENT = importlib.resources.files("hyperagents.tasks.packing").joinpath("seed/task_agent.py")
INST = Instance("train-0", {"n": N_CIRCLES, "seed": 0})


def load_agent(source: str, name: str = "packing_seed_agent") -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def grid_packing() -> list[list[float]]:
    """26 equal circles in the first cells of an 8 x 4 grid: row neighbours and walls touch.

    All numbers are dyadic, so the touching is exact in floating point: the packing is valid.
    """
    r = 1.0 / 16.0
    return [[(2 * (k % 8) + 1) * r, (2 * (k // 8) + 1) / 8.0, r] for k in range(26)]


@pytest.fixture(scope="module")
def task() -> PackingTask:
    return PackingTask()


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    return load_agent(SEED_AGENT.read_text("utf-8"))


def test_splits_are_distinct_instances_of_the_same_problem(task: PackingTask) -> None:
    sizes = [len(task.instances(s)) for s in Split]
    assert sizes == [4, 3, 3]
    insts = [i for s in Split for i in task.instances(s)]
    assert len({i.id for i in insts}) == len(insts)
    assert len({i.inputs["seed"] for i in insts}) == len(insts)
    assert all(i.inputs["n"] == 26 and set(i.inputs) == {"n", "seed"} for i in insts)
    assert [i.inputs for i in task.instances(Split.VAL)] == [
        i.inputs for i in PackingTask().instances(Split.VAL)
    ]
    other = PackingTask(seed=1)
    assert {i.inputs["seed"] for i in insts}.isdisjoint(
        i.inputs["seed"] for s in Split for i in other.instances(s)
    )
    with pytest.raises(ConfigError):
        PackingTask(n_val=0)


def test_score_range_is_the_area_bound(task: PackingTask) -> None:
    low, high = task.score_range
    assert low == 0.0 and high == pytest.approx(math.sqrt(26 / math.pi))
    assert task.instance_timeout >= 5


def test_valid_touching_packing_scores_sum_of_radii(task: PackingTask) -> None:
    circles = grid_packing()
    # Neighbours touch exactly and the outer circles touch the walls: still valid.
    assert circles[0][0] - circles[0][2] == 0.0
    result = task.checked_score(INST, circles)
    assert result.value == 26 / 16
    assert result.feedback.startswith("valid")
    pair = [[0.25, 0.25, 0.25], [0.75, 0.25, 0.25]] + [[0.5, 0.75, 0.0]] * 24
    assert task.score(INST, pair).value == 0.5


def test_zero_radius_circles_are_allowed_but_not_inside_others(task: PackingTask) -> None:
    circles = [[0.5, 0.5, 0.0]] * 26
    assert task.score(INST, circles).value == 0.0
    assert task.score(INST, circles).feedback.startswith("valid")
    inside = [[0.5, 0.5, 0.2]] + [[0.5, 0.6, 0.0]] + [[0.05, 0.05, 0.0]] * 24
    result = task.score(INST, inside)
    assert result.value == 0.0 and "circles 0 and 1 overlap" in result.feedback


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (None, "expected a list"),
        ("circles", "expected a list"),
        ({"circles": []}, "expected a list"),
        (grid_packing()[:25], "expected exactly 26 circles, got 25"),
        ([*grid_packing(), [0.5, 0.5, 0.0]], "got 27"),
        ([[0.5, 0.5]] * 26, "circle 0: expected [x, y, r]"),
        ([*grid_packing()[:3], "x", *grid_packing()[4:]], "circle 3"),
        ([*grid_packing()[:5], [0.5, 0.5, None], *grid_packing()[6:]], "circle 5"),
        ([*grid_packing()[:5], [True, 0.5, 0.1], *grid_packing()[6:]], "not a number"),
        ([*grid_packing()[:2], [math.nan, 0.5, 0.1], *grid_packing()[3:]], "not finite"),
        ([*grid_packing()[:2], [0.5, math.inf, 0.1], *grid_packing()[3:]], "not finite"),
        ([*grid_packing()[:4], [0.5, 0.5, -0.01], *grid_packing()[5:]], "negative radius"),
    ],
)
def test_malformed_outputs_score_zero_with_reason(
    task: PackingTask, output: Any, reason: str
) -> None:
    result = task.checked_score(INST, output)
    assert result.value == 0.0
    assert result.feedback.startswith("invalid packing")
    assert reason in result.feedback


@pytest.mark.parametrize(
    ("index", "circle", "side"),
    [
        (0, [0.05, 0.125, 0.0625], "left"),
        (7, [0.95, 0.125, 0.0625], "right"),
        (0, [0.0625, 0.05, 0.0625], "bottom"),
        (25, [0.1875, 0.95, 0.06], "top"),
        (25, [1.5, 0.5, 0.0], "right"),
    ],
)
def test_circles_leaving_the_square_are_named(
    task: PackingTask, index: int, circle: list[float], side: str
) -> None:
    circles = grid_packing()
    circles[index] = circle
    result = task.score(INST, circles)
    assert result.value == 0.0
    assert f"circle {index} crosses the {side} side" in result.feedback


def test_strict_check_catches_a_1e_12_overlap_and_wall_excess(task: PackingTask) -> None:
    rest = [[0.05 + 0.035 * k, 0.95, 0.0] for k in range(24)]
    touching = [[0.25, 0.25, 0.25], [0.625, 0.25, 0.125], *rest]
    assert task.score(INST, touching).value == 0.375
    overlap = [[0.25, 0.25, 0.25], [0.625, 0.25, 0.125 + 1e-12], *rest]
    result = task.score(INST, overlap)
    assert result.value == 0.0
    assert "circles 0 and 1 overlap" in result.feedback
    wall = [[0.25, 0.25, 0.25 + 1e-12], [0.75, 0.25, 0.2], *rest]
    result = task.score(INST, wall)
    assert result.value == 0.0 and "circle 0 crosses the left side" in result.feedback


def test_overlapping_pairs_are_named_and_counted(task: PackingTask) -> None:
    circles = grid_packing()
    circles[9] = [0.1875, 0.375, 0.1]  # grows into both row neighbours
    result = task.score(INST, circles)
    assert result.value == 0.0
    assert "circles 8 and 9 overlap" in result.feedback
    assert "2 overlapping pairs in all" in result.feedback
    ok, reason = check_packing(grid_packing())
    assert reason == "" and len(ok) == 26


def test_seed_agent_declares_its_parameters_and_is_standalone() -> None:
    tree = ast.parse(SEED_AGENT.read_text("utf-8"))
    modules = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    } | {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"__future__", "math", "typing", "numpy"}
    found = {
        n.targets[0].id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
        if n.targets[0].id in ("PARAMS", "PARAM_SPACE")
    }
    params, space = found["PARAMS"], found["PARAM_SPACE"]
    assert set(params) == set(space)
    for key, value in params.items():
        spec = space[key]
        if spec["type"] == "choice":
            assert value in spec["choices"]
        else:
            assert spec["low"] <= value <= spec["high"], key


def test_seed_agent_gives_valid_mediocre_packings_fast(
    task: PackingTask, agent: ModuleType
) -> None:
    scores = []
    for split in Split:
        for inst in task.instances(split):
            # CPU time of this thread: what the agent costs, not how busy the machine is.
            start = time.thread_time()
            output = json.loads(json.dumps(agent.solve(dict(inst.inputs))))
            assert time.thread_time() - start < 1.5
            result = task.checked_score(inst, output)
            assert result.feedback.startswith("valid"), result.feedback
            scores.append(result.value)
    assert min(scores) >= 2.2 and max(scores) <= 2.5
    again = agent.solve(dict(task.instances(Split.TRAIN)[0].inputs))
    assert json.loads(json.dumps(again)) == json.loads(
        json.dumps(agent.solve(dict(task.instances(Split.TRAIN)[0].inputs)))
    )


def test_tuned_parameters_reach_clearly_higher(task: PackingTask, agent: ModuleType) -> None:
    seed_params = dict(agent.PARAMS)
    inst = task.instances(Split.VAL)[0]
    seed_score = task.score(inst, agent.solve(inst.inputs)).value
    agent.PARAMS = {**seed_params, "steps": 1000, "learning_rate": 0.005, "lr_decay": 0.01}
    try:
        tuned = task.checked_score(inst, json.loads(json.dumps(agent.solve(inst.inputs))))
    finally:
        agent.PARAMS = seed_params
    assert tuned.feedback.startswith("valid")
    assert tuned.value >= 2.55 > seed_score + 0.1


def test_repair_makes_any_configuration_strictly_valid(
    task: PackingTask, agent: ModuleType
) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(5):
        centres = rng.random((26, 2)) * 1.2 - 0.1
        radii = rng.random(26) * 0.3
        circles = agent._repair(centres, radii)
        assert task.score(INST, circles).feedback.startswith("valid")


def test_seed_program_holds_task_and_meta_agent(task: PackingTask) -> None:
    try:
        program = task.seed_program()
    except TaskError as exc:  # the offline meta agent is built elsewhere
        pytest.skip(str(exc))
    assert set(program) >= {"task_agent.py", "meta_agent.py"}
    assert program["task_agent.py"].decode() == SEED_AGENT.read_text("utf-8")

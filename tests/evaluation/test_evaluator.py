"""Validation and staged evaluation: sandboxed agent, trusted scoring."""

from __future__ import annotations

from hyperagents.evaluation import evaluate_stage, validate_program
from hyperagents.program import Program
from hyperagents.sandbox import Limits, ProcessSandbox, workspace
from hyperagents.tasks import Split

from toytask import TASK_AGENT, ToyTask

SANDBOX = ProcessSandbox()
TASK = ToyTask()


def program(task_agent: str = TASK_AGENT) -> Program:
    return TASK.seed_program().with_files({"task_agent.py": task_agent})


def test_validation_passes_and_fails_with_reasons() -> None:
    ok = validate_program(
        program(), entry_points=TASK.entry_points, sandbox=SANDBOX, limits=Limits(wall_time=30)
    )
    assert ok.ok and not ok.errors
    bad = validate_program(
        program("import nonexistent_module_xyz\n"),
        entry_points=TASK.entry_points,
        sandbox=SANDBOX,
        limits=Limits(wall_time=30),
    )
    assert not bad.ok and "import failed: ModuleNotFoundError" in bad.reason
    hang = validate_program(
        program("while True:\n    pass\n"),
        entry_points=TASK.entry_points,
        sandbox=SANDBOX,
        limits=Limits(wall_time=1),
    )
    assert not hang.ok and "timeout" in hang.reason


def test_evaluate_stage_scores_outside_the_sandbox() -> None:
    instances = TASK.instances(Split.VAL)
    result = evaluate_stage(
        program(),
        task=TASK,
        instances=instances,
        stage="val",
        split="val",
        sandbox=SANDBOX,
        limits=Limits(wall_time=30),
    )
    expected = [TASK.score(i, "hi" if i.inputs["x"] > 0.2 else "lo").value for i in instances]
    assert [r["score"] for r in result.results] == expected
    assert result.score == sum(expected) / len(expected)
    assert result.metrics["n"] == len(instances) and result.metrics["errors"] == 0
    assert result.metrics["peak_memory_mb"] > 0 and result.metrics["wall_per_instance"] >= 0
    assert all("feedback" in r and "wall" in r for r in result.results)


def test_agent_never_sees_targets() -> None:
    spy = "def solve(inputs):\n    return 'hi' if set(inputs) == {'x'} else 'lo'\n"
    instances = [i for i in TASK.instances(Split.TRAIN) if i.target == "hi"]
    result = evaluate_stage(
        program(spy),
        task=TASK,
        instances=instances,
        stage="t",
        split="train",
        sandbox=SANDBOX,
        limits=Limits(wall_time=30),
    )
    assert result.score == 1.0


def test_crashes_and_timeouts_score_the_minimum_with_reasons() -> None:
    src = (
        "import os\n"
        "def solve(inputs):\n"
        "    if inputs['x'] < 0.3:\n"
        "        raise ValueError('nope')\n"
        "    if inputs['x'] > 0.9:\n"
        "        os._exit(1)\n"
        "    return 'lo'\n"
    )
    instances = sorted(TASK.instances(Split.TRAIN), key=lambda i: i.inputs["x"])
    result = evaluate_stage(
        program(src),
        task=TASK,
        instances=instances,
        stage="t",
        split="train",
        sandbox=SANDBOX,
        limits=Limits(wall_time=30),
    )
    by_x = {r["id"]: r for r in result.results}
    low = by_x[instances[0].id]
    assert low["score"] == 0.0 and "ValueError: nope" in low["error"]
    high = by_x[instances[-1].id]
    assert high["score"] == 0.0 and high["error"].startswith("crash")
    assert result.metrics["errors"] >= 2 and result.metrics["sandbox_outcome"] == "crash"


def test_malformed_outputs_are_scored_by_the_task() -> None:
    result = evaluate_stage(
        program("def solve(inputs):\n    return [1, 2]\n"),
        task=TASK,
        instances=TASK.instances(Split.VAL)[:3],
        stage="v",
        split="val",
        sandbox=SANDBOX,
        limits=Limits(wall_time=30),
    )
    assert all(r["score"] == 0.0 and "invalid output" in r["feedback"] for r in result.results)


def test_workspace_is_removed() -> None:
    with workspace(program()) as path:
        assert (path / "task_agent.py").is_file()
    assert not path.exists()


def test_a_scorer_that_raises_on_one_output_scores_it_the_minimum() -> None:
    """packing's trusted scorer overflows on a coordinate of 10**400: that output scores 0 with
    the exception recorded; the stage (and the run) go on."""
    from hyperagents.sandbox import get_sandbox
    from hyperagents.tasks import Split, load_task

    task = load_task("packing")
    instances = list(task.instances(Split.TRAIN))[:2]
    program = task.seed_program().with_files(
        {
            "task_agent.py": "def solve(inputs):\n"
            "    n = inputs.get('n', 26)\n"
            "    return [[10 ** 400, 0.5, 0.01]] + [[0.5, 0.5, 0.0]] * (n - 1)\n"
        }
    )
    result = evaluate_stage(
        program,
        task=task,
        instances=instances,
        stage="train",
        split="train",
        sandbox=get_sandbox("auto"),
        limits=Limits(wall_time=60),
    )
    assert result.score == task.score_range[0]
    assert result.metrics["scorer_errors"] == len(instances)
    for entry in result.results:
        assert entry["score"] == task.score_range[0]
        assert entry["error"].startswith("scorer error:") and "OverflowError" in entry["error"]

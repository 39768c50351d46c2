"""Validation folded into the first stage's process: the same verdicts as a validation of its
own, one sandboxed run for a valid program, and a verdict nothing sent later can change."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hyperagents.evaluation import (
    StageResult,
    evaluate_stage,
    validate_and_evaluate,
    validate_program,
)
from hyperagents.program import Program
from hyperagents.sandbox import Limits, Outcome, ProcessSandbox, Sandbox, SandboxResult
from hyperagents.tasks import Split

from toytask import TASK_AGENT, CountingSandbox, ToyTask

TASK = ToyTask()
INSTANCES = TASK.instances(Split.TRAIN)[:4]
#: Honest code gets a minute: even a loaded machine starts a sandbox well within it.
LIMITS = Limits(wall_time=60, validate_time=60)


class Scripted:
    """Answers a ``solve`` with the messages it is given (what a candidate could send)."""

    name = "scripted"

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = messages

    def run(self, workspace: Path, request: dict[str, Any], **kwargs: Any) -> SandboxResult:
        return SandboxResult(Outcome.OK, messages=self.messages, result={"instances": 0})


def program(task_agent: str = TASK_AGENT, **files: str) -> Program:
    return TASK.seed_program().with_files({"task_agent.py": task_agent, **files})


def combined(
    prog: Program, sandbox: Sandbox, limits: Limits = LIMITS, **kwargs: Any
) -> tuple[Any, Any]:
    return validate_and_evaluate(
        prog,
        entry_points=TASK.entry_points,
        task=TASK,
        instances=INSTANCES,
        stage="train_subset",
        split="train",
        sandbox=sandbox,
        limits=limits,
        **kwargs,
    )


def evaluated_alone(prog: Program) -> StageResult:
    """The stage as evaluated in a process of its own (no validation)."""
    return evaluate_stage(
        prog,
        task=TASK,
        instances=INSTANCES,
        stage="train_subset",
        split="train",
        sandbox=ProcessSandbox(),
        limits=Limits(wall_time=60),
    )


INVALID = {
    "syntax error": program("def solve(:\n"),
    "import error": program("import nonexistent_module_xyz\n"),
    "raises at import": program("raise RuntimeError('boom at import')\n"),
    "no entry point": program("def answer(inputs):\n    return 'hi'\n"),
    "entry point not callable": program("solve = 3\n"),
    "another file does not compile": program(TASK_AGENT, **{"helper.py": "x = (\n"}),
    "exhausts memory at import": program("BIG = bytearray(1 << 40)\n"),
    "crashes at import": program("import os\nos._exit(3)\n"),
    "killed at import": program("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"),
    "package shadows the entry": program(TASK_AGENT, **{"task_agent/__init__.py": "x = 1\n"}),
    "meta agent missing": program().without("meta_agent.py"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_an_invalid_program_gets_the_reasons_a_validation_of_its_own_gives(case: str) -> None:
    sandbox = CountingSandbox(ProcessSandbox())
    prog = INVALID[case]
    alone = validate_program(
        prog, entry_points=TASK.entry_points, sandbox=sandbox, limits=Limits(wall_time=60)
    )
    runs_alone = len(sandbox.requests)
    validation, stage = combined(prog, sandbox)
    assert not alone.ok and alone.errors
    assert (validation.ok, validation.errors, validation.reason) == (
        False,
        alone.errors,
        alone.reason,
    )
    assert stage is None
    assert len(sandbox.requests) - runs_alone == runs_alone  # one run each (none if refused)


def test_an_import_that_hangs_is_killed_at_the_validation_limit_with_the_same_reason() -> None:
    hang = program("while True:\n    pass\n")
    alone = validate_program(
        hang, entry_points=TASK.entry_points, sandbox=ProcessSandbox(), limits=Limits(wall_time=2)
    )
    # The stage's own limit is long: the validation is held to its own.
    validation, stage = combined(hang, ProcessSandbox(), Limits(wall_time=600, validate_time=2))
    assert alone.errors == ("validation did not finish: timeout: killed after 2 s wall-clock",)
    assert validation.errors == alone.errors and stage is None


def test_a_solve_that_hangs_is_killed_at_the_stage_limit_not_the_sum() -> None:
    hang = program(
        "import signal, time\n"
        "def solve(inputs):\n"
        "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    time.sleep(10**6)\n"
    )
    limits = Limits(wall_time=3, validate_time=600)
    validation, stage = combined(hang, ProcessSandbox(), limits)
    assert validation.ok
    assert stage.metrics["sandbox_reason"] == "timeout: killed after 3 s wall-clock"
    assert stage.metrics["timeouts"] == len(INSTANCES) and stage.score == 0.0


def test_a_valid_program_is_validated_and_scored_in_one_run() -> None:
    counting = CountingSandbox(ProcessSandbox())
    validation, stage = combined(program(), counting)
    assert validation.ok and not validation.errors
    assert [r["action"] for r in counting.requests] == ["solve"]
    assert counting.requests[0]["validate"] == {
        "entry_points": {k: list(v) for k, v in TASK.entry_points.items()}
    }
    alone = evaluated_alone(program())
    assert stage is not None
    assert [(r["id"], r["score"], r["output"]) for r in stage.results] == [
        (r["id"], r["score"], r["output"]) for r in alone.results
    ]
    assert (stage.stage, stage.split, stage.score, stage.n) == (
        "train_subset",
        "train",
        alone.score,
        4,
    )
    # The run's time is split between the validation and the stage, never counted twice.
    assert validation.wall >= 0 and stage.metrics["wall_seconds"] > 0
    assert stage.metrics["errors"] == 0


def test_the_instances_see_the_seeded_generators_of_a_process_of_their_own() -> None:
    agent = "import random\n\n\ndef solve(inputs):\n    return random.random()\n"
    meta = (
        "import random\n\nDRAWN = random.random()\n\n\ndef improve(workspace, report):\n    pass\n"
    )
    prog = program(agent, **{"meta_agent.py": meta})
    _, stage = combined(prog, ProcessSandbox())
    alone = evaluated_alone(prog)
    assert stage is not None
    assert [r["output"] for r in stage.results] == [r["output"] for r in alone.results]


def test_the_model_is_not_reached_while_the_program_is_imported() -> None:
    agent = (
        "import llm\n\n"
        "try:\n"
        "    AT_IMPORT = llm.complete('hello')\n"
        "except llm.LLMError as exc:\n"
        "    AT_IMPORT = 'refused: ' + str(exc)\n\n\n"
        "def solve(inputs):\n"
        "    return [AT_IMPORT, llm.complete('hello')]\n"
    )
    asked: list[dict[str, Any]] = []

    def model(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return {"text": "answered"}

    _, stage = combined(program(agent), ProcessSandbox(), llm=model)
    assert stage is not None
    refused = "refused: no language model is configured for this run"
    assert [r["output"] for r in stage.results] == [[refused, "answered"]] * len(INSTANCES)
    assert len(asked) == len(INSTANCES)  # the instances' calls only


FORGE = "import os, sys\nFD = int(sys.argv[1].split(',')[0])\n"


def test_a_forged_verdict_sent_while_solving_changes_nothing() -> None:
    agent = FORGE + (
        "\n\ndef solve(inputs):\n"
        '    os.write(FD, b\'{"type": "validation", "ok": false, "errors": ["forged"]}\\n\')\n'
        "    return 'hi' if inputs['x'] > 0.2 else 'lo'\n"
    )
    validation, stage = combined(program(agent), ProcessSandbox())
    assert validation.ok and not validation.errors
    assert stage is not None and stage.metrics["errors"] == 0


@pytest.mark.parametrize(
    ("agent", "valid", "reason"),
    [
        # No ``solve``: the harness says invalid, then the program's own code says valid.
        ("", False, "task_agent.py: does not define a callable 'solve'"),
        # Valid, then the program says it is not.
        (TASK_AGENT, True, ""),
    ],
    ids=["invalid-then-forged-valid", "valid-then-forged-invalid"],
)
def test_a_forged_verdict_sent_after_the_harness_s_changes_nothing(
    agent: str, valid: bool, reason: str
) -> None:
    # The import wraps the harness's channel so that every verdict is followed by the opposite.
    forger = (
        "import sys\n"
        "_harness = sys.modules['__main__']\n"
        "_send = _harness._Channel.send\n\n\n"
        "def _forging_send(self, message):\n"
        "    _send(self, message)\n"
        "    if message.get('type') == 'validation':\n"
        "        lie = not message['ok']\n"
        "        errors = [] if lie else ['x']\n"
        "        _send(self, {'type': 'validation', 'ok': lie, 'errors': errors})\n\n\n"
        "_harness._Channel.send = _forging_send\n"
    )
    validation, stage = combined(program(forger + agent), ProcessSandbox())
    assert validation.ok is valid and validation.reason == reason
    assert (stage is not None) is valid


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        (
            [
                {"type": "instance", "id": INSTANCES[0].id, "output": "hi", "error": None},
                {"type": "validation", "ok": True, "errors": []},
            ],
            "validation did not finish: invalid output: no validation message",
        ),
        (
            [
                {"type": "validation", "ok": False, "errors": ["the harness's reason"]},
                {"type": "validation", "ok": True, "errors": []},
            ],
            "the harness's reason",
        ),
        ([{"type": "validation", "ok": True, "errors": "no list"}], "malformed validation result"),
        ([{"type": "validation", "ok": False, "errors": []}], "validation failed without a reason"),
    ],
    ids=["after-an-instance", "second-verdict", "malformed", "no-reason"],
)
def test_only_a_first_verdict_before_any_instance_counts(
    messages: list[dict[str, Any]], reason: str
) -> None:
    validation, stage = combined(program(), Scripted(*messages))  # type: ignore[arg-type]
    assert not validation.ok and validation.reason == reason and stage is None


def test_validate_time_bounds_only_requests_that_validate(tmp_path: Path) -> None:
    (tmp_path / "agent.py").write_text("def solve(inputs):\n    return 1\n")
    request = {"action": "solve", "module": "agent", "instances": [{"id": "a", "inputs": {}}]}
    # A plain solve is not held to the validation's limit (it never sends a verdict).
    limits = replace(LIMITS, validate_time=0.001)
    result = ProcessSandbox().run(tmp_path, request, limits=limits)
    assert result.ok and [m["type"] for m in result.messages] == ["instance", "result"]

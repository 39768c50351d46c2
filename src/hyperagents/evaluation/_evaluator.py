"""Validation and evaluation of programs: the task agent runs sandboxed, scoring runs here.

These functions are stateless: they never touch storage. The engine calls them (possibly from
worker threads) and records what they return.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperagents.exceptions import TaskError
from hyperagents.program import Program
from hyperagents.sandbox import (
    Limits,
    Outcome,
    Sandbox,
    SandboxResult,
    shadowing_errors,
    workspace,
)
from hyperagents.tasks import Instance, Task

__all__ = [
    "StageResult",
    "ValidationResult",
    "evaluate_stage",
    "solve_in_sandbox",
    "validate_and_evaluate",
    "validate_program",
]

_OUTPUT_CAP = 2000
#: Decimal digits of seconds kept in an instance's ``wall`` and ``cpu`` (microseconds).
INSTANCE_TIME_DIGITS = 6


@dataclass(frozen=True)
class ValidationResult:
    """Whether a program compiles, imports and exposes its entry points.

    Attributes:
        ok: It does.
        errors: Why not (one entry per problem).
        wall: Sandbox seconds spent validating it (a validation that shared its process with
            a stage: the seconds up to its message, or the whole run when nothing followed).
        cpu: CPU seconds of that validation, where it shared its process (else 0).
    """

    ok: bool
    errors: tuple[str, ...] = ()
    wall: float = 0.0
    cpu: float = 0.0

    @property
    def reason(self) -> str:
        """One-line summary of the first problems."""
        return "; ".join(self.errors[:3]) if self.errors else ""


@dataclass(frozen=True)
class StageResult:
    """The outcome of evaluating a program on some instances of one split."""

    stage: str
    split: str
    score: float
    results: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of instances evaluated."""
        return len(self.results)


def validate_program(
    program: Program,
    *,
    entry_points: Mapping[str, Sequence[str]],
    sandbox: Sandbox,
    limits: Limits,
) -> ValidationResult:
    """Compile every ``.py`` file, import the entry modules and check the entry names — in the
    sandbox, never in this process.

    Raises:
        SandboxError: The sandbox itself failed.
    """
    shadows = shadowing_errors(program, entry_points)
    if shadows:  # refused before anything runs (the harness's validation refuses them too)
        return ValidationResult(False, tuple(shadows), 0.0)
    request = {"action": "validate", "entry_points": _entry_lists(entry_points)}
    with workspace(program) as path:
        result = sandbox.run(path, request, limits=limits)
    if not result.ok:
        return ValidationResult(
            False, (f"validation did not finish: {result.reason}",), result.wall
        )
    value = result.result if isinstance(result.result, dict) else {}
    errors = tuple(str(e) for e in value.get("errors", ["malformed validation result"]))
    return ValidationResult(bool(value.get("ok")) and not errors, errors, result.wall)


def _entry_lists(entry_points: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in entry_points.items()}


def _cap_output(output: Any) -> Any:
    if output is None or isinstance(output, bool | int | float):
        return output
    if isinstance(output, str) and len(output) <= _OUTPUT_CAP // 2:
        return output
    try:
        text = json.dumps(output, allow_nan=False)
    except (TypeError, ValueError):
        return repr(output)[:_OUTPUT_CAP]
    return output if len(text) <= _OUTPUT_CAP else text[:_OUTPUT_CAP] + "…"


def solve_in_sandbox(
    program: Program,
    inputs: Sequence[tuple[str, Any]],
    *,
    instance_timeout: float,
    sandbox: Sandbox,
    limits: Limits,
    module: str = "task_agent",
    function: str = "solve",
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    validate: Mapping[str, Sequence[str]] | None = None,
    timeouts: Mapping[str, float] | None = None,
) -> tuple[SandboxResult, dict[str, dict[str, Any]]]:
    """Run the task agent on ``(id, inputs)`` pairs in one sandboxed process (inputs only:
    nothing to score with ever enters it).

    ``timeouts`` gives some instances (by id) a shorter limit than ``instance_timeout``.

    With ``validate`` (entry points), the process first validates the program as
    :func:`validate_program` would, sends a ``validation`` message, and solves only if it is
    valid (see :func:`validate_and_evaluate`).

    Returns:
        The sandbox's result, and the agent's message for each id it answered (its
        ``output``, or its ``error``, with ``wall`` and ``cpu``).

    Raises:
        SandboxError: The sandbox itself failed.
    """
    request = {
        "action": "solve",
        "module": module,
        "function": function,
        "instance_timeout": instance_timeout,
        "instances": [_item(key, value, timeouts) for key, value in inputs],
    }
    if validate is not None:
        request["validate"] = {"entry_points": _entry_lists(validate)}
    with workspace(program) as path:
        # Sandboxes written before the LLM bridge take no ``llm``: pass it only when needed.
        extra = {"llm": llm} if llm is not None else {}
        run = sandbox.run(path, request, limits=limits, **extra)
    by_id: dict[str, dict[str, Any]] = {}
    for sent in run.messages:
        if sent.get("type") == "instance" and isinstance(sent.get("id"), str):
            by_id.setdefault(sent["id"], sent)
    return run, by_id


def _item(key: str, inputs: Any, timeouts: Mapping[str, float] | None) -> dict[str, Any]:
    """One instance of a ``solve`` request (with its own limit when it has one)."""
    item = {"id": key, "inputs": inputs}
    if timeouts is not None and key in timeouts:
        item["timeout"] = float(timeouts[key])
    return item


def evaluate_stage(
    program: Program,
    *,
    task: Task,
    instances: Sequence[Instance],
    stage: str,
    split: str,
    sandbox: Sandbox,
    limits: Limits,
    module: str = "task_agent",
    function: str = "solve",
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    timeouts: Mapping[str, float] | None = None,
) -> StageResult:
    """Run the task agent on ``instances`` in one sandboxed process and score every output.

    The sandbox receives only ``instance.inputs``; scoring (with the targets) happens here.
    An instance without an output (crash, timeout) scores the task's minimum with the reason.
    ``timeouts`` holds shorter limits than the task's ``instance_timeout`` for some instances.

    Raises:
        SandboxError: The sandbox itself failed.
        TaskError: The task's aggregation broke its protocol (a ``score()`` that raises or
            breaks it on one output scores that output the minimum, with the error kept).
    """
    agent = _Agent(module, function, llm, timeouts)
    run, by_id = _solve(program, task, instances, sandbox, limits, agent)
    return _scored_stage(task, instances, run, by_id, stage=stage, split=split)


@dataclass(frozen=True)
class _Agent:
    """Which callable of the program answers the instances, its LLM handler, and the
    instances' own (shorter) time limits."""

    module: str
    function: str
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None
    timeouts: Mapping[str, float] | None = None


def _solve(
    program: Program,
    task: Task,
    instances: Sequence[Instance],
    sandbox: Sandbox,
    limits: Limits,
    agent: _Agent,
    validate: Mapping[str, Sequence[str]] | None = None,
) -> tuple[SandboxResult, dict[str, dict[str, Any]]]:
    """:func:`solve_in_sandbox` on the inputs of a task's ``instances``."""
    return solve_in_sandbox(
        program,
        [(inst.id, inst.inputs) for inst in instances],
        instance_timeout=task.instance_timeout,
        sandbox=sandbox,
        limits=limits,
        module=agent.module,
        function=agent.function,
        llm=agent.llm,
        validate=validate,
        timeouts=agent.timeouts,
    )


def validate_and_evaluate(
    program: Program,
    *,
    entry_points: Mapping[str, Sequence[str]],
    task: Task,
    instances: Sequence[Instance],
    stage: str,
    split: str,
    sandbox: Sandbox,
    limits: Limits,
    module: str = "task_agent",
    function: str = "solve",
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    timeouts: Mapping[str, float] | None = None,
) -> tuple[ValidationResult, StageResult | None]:
    """Validate a program and, when it is valid, evaluate it on ``instances``, in ONE sandboxed
    process: :func:`validate_program` then :func:`evaluate_stage`, at the cost of one start.

    The harness validates exactly as the ``validate`` action does (the same errors), says so
    in a ``validation`` message, and only then solves. That message counts only when it is the
    first one and comes before any instance's, so nothing the agent's code sends once it is
    solving can turn a valid program invalid or an invalid one valid. (Code the program runs
    while its modules are imported runs in the process that validates it: as with
    :func:`validate_program`, what it says of itself is not evidence — the trusted scoring is.)
    A run that ends before the message (a hang, a crash) makes the program invalid with the
    reason :func:`validate_program` gives. Set ``limits.validate_time`` to hold the validation to
    its own limit (``limits.wall_time`` then counts from its message).

    Returns:
        The validation, and the stage's result (None when the program is invalid). The
        validation's ``wall`` and the stage's ``wall_seconds`` (and CPU) split the one run.

    Raises:
        SandboxError: The sandbox itself failed.
        TaskError: The task's aggregation broke its protocol.
    """
    shadows = shadowing_errors(program, entry_points)
    if shadows:  # refused before anything runs, as by validate_program
        return ValidationResult(False, tuple(shadows), 0.0), None
    agent = _Agent(module, function, llm, timeouts)
    run, by_id = _solve(program, task, instances, sandbox, limits, agent, entry_points)
    validation = _validation_of(run)
    if not validation.ok:
        return validation, None
    result = _scored_stage(task, instances, run, by_id, stage=stage, split=split)
    metrics = result.metrics
    metrics["wall_seconds"] = max(0.0, run.wall - validation.wall)
    metrics["cpu_seconds"] = max(0.0, run.cpu - validation.cpu)
    return validation, result


def _validation_of(run: SandboxResult) -> ValidationResult:
    """The validation a run that validated first reported: its first ``validation`` message,
    provided no instance (or final) message came before it."""
    message: dict[str, Any] | None = None
    for sent in run.messages:
        if sent.get("type") == "validation":
            message = sent
            break
        if sent.get("type") in ("instance", "result", "error"):
            break
    if message is None:  # it ended before validating (or its message was refused)
        refused = _refused(run).removeprefix("no valid output: ")
        why = run.reason or f"invalid output: {refused or 'no validation message'}"
        return ValidationResult(False, (f"validation did not finish: {why}",), run.wall, run.cpu)
    errors = message.get("errors")
    if not isinstance(errors, list):
        errors = ["malformed validation result"]
    found = tuple(str(e) for e in errors)
    ok = bool(message.get("ok")) and not found
    if not ok and not found:
        found = ("validation failed without a reason",)
    # Invalid: nothing else ran, the whole run was the validation.
    wall = min(_finite(message.get("wall")), run.wall) if ok else run.wall
    cpu = min(_finite(message.get("cpu")), run.cpu) if ok else run.cpu
    return ValidationResult(ok, found, wall, cpu)


def _scored_stage(
    task: Task,
    instances: Sequence[Instance],
    run: SandboxResult,
    by_id: Mapping[str, dict[str, Any]],
    *,
    stage: str,
    split: str,
) -> StageResult:
    """Score what the task agent sent for each instance (here, with the targets)."""
    low = task.score_range[0]
    tally = _Tally()
    results = [
        _instance_result(task, inst, by_id.get(inst.id), run, low, tally) for inst in instances
    ]
    score = task.aggregate([r["score"] for r in results])
    metrics = _stage_metrics(run, results, tally)
    return StageResult(stage=stage, split=split, score=score, results=results, metrics=metrics)


@dataclass
class _Tally:
    """What the instances of one stage added up to, besides their scores."""

    errors: int = 0
    timeouts: int = 0
    scorer_errors: int = 0
    walls: list[float] = field(default_factory=list)

    def failed(self, reason: str) -> None:
        """Count an instance without an output (``reason`` says why)."""
        self.errors += 1
        self.timeouts += reason.startswith("timeout")


def _instance_result(
    task: Task,
    inst: Instance,
    message: dict[str, Any] | None,
    run: SandboxResult,
    low: float,
    tally: _Tally,
) -> dict[str, Any]:
    """The result entry of one instance: its score, feedback, capped output and error (the
    task's minimum ``low`` with the reason when there is no output), with the agent's
    ``wall`` and ``cpu`` when it sent a message, to the microsecond (what the agent measures
    for itself, shown in milliseconds; the digits beyond were most of the stored bytes of a
    stage). (Called once per instance: built in place.)"""
    if message is None:
        reason = run.reason or _refused(run) or "no output for this instance"
        tally.failed(reason)
        feedback = f"no output: {reason}"
        return {"id": inst.id, "score": low, "feedback": feedback, "output": None, "error": reason}
    failure: str | None
    if message.get("error"):
        error = str(message["error"])
        tally.failed(error)
        score, feedback, output, failure = low, error, None, error
    else:
        score, feedback, output, failure = _scored(task, inst, message.get("output"), low, tally)
    wall = _finite(message.get("wall"))
    tally.walls.append(wall)
    return {
        "id": inst.id,
        "score": score,
        "feedback": feedback,
        "output": output,
        "error": failure,
        "wall": round(wall, INSTANCE_TIME_DIGITS),
        "cpu": round(_finite(message.get("cpu")), INSTANCE_TIME_DIGITS),
    }


def _scored(
    task: Task, inst: Instance, output: Any, low: float, tally: _Tally
) -> tuple[float, str, Any, str | None]:
    """Score one output with the trusted scorer: score, feedback, capped output, error."""
    try:
        verdict = task.checked_score(inst, output)
    except TaskError as exc:
        # The trusted scorer choked on this output (an overflow, a type it did not
        # expect…): the output scores the minimum, and the reason is kept.
        reason = f"scorer error: {exc}"[:1000]
        tally.errors += 1
        tally.scorer_errors += 1
        return low, reason, _cap_output(output), reason
    return float(verdict.value), verdict.feedback, _cap_output(output), None


def _stage_metrics(
    run: SandboxResult, results: list[dict[str, Any]], tally: _Tally
) -> dict[str, Any]:
    """The stage's metrics: counts, times and memory, and what went wrong in the sandbox."""
    walls = tally.walls
    metrics: dict[str, Any] = {
        "n": len(results),
        "wall_seconds": run.wall,
        "wall_per_instance": math.fsum(walls) / len(walls) if walls else None,
        "cpu_seconds": run.cpu,
        "peak_memory_mb": run.peak_memory_mb,
        "errors": tally.errors,
        "timeouts": tally.timeouts,
    }
    if tally.scorer_errors:
        metrics["scorer_errors"] = tally.scorer_errors
    if run.outcome is not Outcome.OK:
        metrics["sandbox_outcome"] = run.outcome.name.lower()
        metrics["sandbox_reason"] = run.reason
    if run.extra.get("output_truncated"):
        metrics["output_truncated"] = True
    return metrics


def _refused(run: SandboxResult) -> str:
    """Why the agent's messages were refused, if any were (e.g. a NaN output)."""
    refused = run.extra.get("refused_messages")
    if isinstance(refused, dict) and refused.get("first"):
        return f"no valid output: {refused['first']}"
    return ""


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0

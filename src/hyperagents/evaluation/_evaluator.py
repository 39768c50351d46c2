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
    "validate_program",
]

_OUTPUT_CAP = 2000


@dataclass(frozen=True)
class ValidationResult:
    """Whether a program compiles, imports and exposes its entry points."""

    ok: bool
    errors: tuple[str, ...] = ()
    wall: float = 0.0

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
    request = {"action": "validate", "entry_points": {k: list(v) for k, v in entry_points.items()}}
    with workspace(program) as path:
        result = sandbox.run(path, request, limits=limits)
    if not result.ok:
        return ValidationResult(
            False, (f"validation did not finish: {result.reason}",), result.wall
        )
    value = result.result if isinstance(result.result, dict) else {}
    errors = tuple(str(e) for e in value.get("errors", ["malformed validation result"]))
    return ValidationResult(bool(value.get("ok")) and not errors, errors, result.wall)


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
) -> tuple[SandboxResult, dict[str, dict[str, Any]]]:
    """Run the task agent on ``(id, inputs)`` pairs in one sandboxed process (inputs only:
    nothing to score with ever enters it).

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
        "instances": [{"id": key, "inputs": value} for key, value in inputs],
    }
    with workspace(program) as path:
        # Sandboxes written before the LLM bridge take no ``llm``: pass it only when needed.
        extra = {"llm": llm} if llm is not None else {}
        run = sandbox.run(path, request, limits=limits, **extra)
    by_id: dict[str, dict[str, Any]] = {}
    for sent in run.messages:
        if sent.get("type") == "instance" and isinstance(sent.get("id"), str):
            by_id.setdefault(sent["id"], sent)
    return run, by_id


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
) -> StageResult:
    """Run the task agent on ``instances`` in one sandboxed process and score every output.

    The sandbox receives only ``instance.inputs``; scoring (with the targets) happens here.
    An instance without an output (crash, timeout) scores the task's minimum with the reason.

    Raises:
        SandboxError: The sandbox itself failed.
        TaskError: The task's aggregation broke its protocol (a ``score()`` that raises or
            breaks it on one output scores that output the minimum, with the error kept).
    """
    low = task.score_range[0]
    run, by_id = solve_in_sandbox(
        program,
        [(inst.id, inst.inputs) for inst in instances],
        instance_timeout=task.instance_timeout,
        sandbox=sandbox,
        limits=limits,
        module=module,
        function=function,
        llm=llm,
    )
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
    ``wall`` and ``cpu`` when it sent a message. (Called once per instance: built in place.)"""
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
        "wall": wall,
        "cpu": _finite(message.get("cpu")),
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

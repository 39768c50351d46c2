"""The arena's agents in the sandbox: test agents' ``propose`` and code agents' answers,
evaluations and children.

Everything here runs agent code only through the sandbox and bounds what comes back: a test
agent's proposals are kept only as distinct strings of bounded length, at most ``n``; whatever
else it does (raise, loop, run out of memory, return something else) is a recorded failure of
that agent, with no proposals. Nothing sent to the sandbox carries a label: a test agent gets
its own earlier inputs and whether they broke a code agent, a code agent's meta agent gets its
own answers on the growing suite and whether each was right (as any train feedback).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hyperagents.arena._state import HISTORY_CAP
from hyperagents.arena._suite import instances_of
from hyperagents.evaluation import StageResult, validate_and_evaluate
from hyperagents.improvers import ImproveRequest, MetaAgentImprover
from hyperagents.program import Program
from hyperagents.sandbox import Limits, Sandbox, get_sandbox, task_locations, workspace
from hyperagents.tasks import Instance, Task

__all__ = [
    "Proposal",
    "arena_files",
    "arena_sandbox",
    "evaluate",
    "heldout_score",
    "make_child",
    "propose",
]


@dataclass(frozen=True)
class Proposal:
    """What a test agent proposed: the inputs kept, and why it failed (None: it did not)."""

    inputs: tuple[str, ...]
    failure: str | None = None
    dropped: int = 0


def arena_files(*names: str) -> dict[str, str]:
    """The arena's seed files ``names`` (``test_agent.py``, ``meta_arena.py``)."""
    folder = resources.files("hyperagents.arena.seeds")
    return {name: folder.joinpath(name).read_text(encoding="utf-8") for name in names}


def propose(
    program: Program,
    *,
    history: Sequence[dict[str, Any]],
    n: int,
    seed: int,
    max_chars: int,
    sandbox: Sandbox,
    limits: Limits,
) -> Proposal:
    """Run the test agent's ``propose(history, n, seed)`` and keep its well-formed inputs.

    Raises:
        SandboxError: The sandbox itself failed.
    """
    request = {
        "action": "propose",
        "module": "test_agent",
        "function": "propose",
        "history": [dict(h) for h in history[-HISTORY_CAP:]],
        "n": n,
        "seed": seed,
    }
    with workspace(program) as path:
        run = sandbox.run(path, request, limits=limits)
    if not run.ok:
        return Proposal((), f"{run.outcome.name.lower()}: {run.reason}"[:500])
    if not isinstance(run.result, list):
        return Proposal((), f"propose returned {type(run.result).__name__}, not a list")
    kept: list[str] = []
    seen: set[str] = set()
    for value in run.result[: n * 4]:
        if isinstance(value, str) and 0 < len(value) <= max_chars and value not in seen:
            seen.add(value)
            kept.append(value)
    kept = kept[:n]
    return Proposal(tuple(kept), None, len(run.result) - len(kept))


def evaluate(
    program: Program,
    instances: Sequence[Instance],
    *,
    task: Task,
    sandbox: Sandbox,
    limits: Limits,
) -> StageResult | None:
    """Validate a code agent and score it on ``instances`` (None: it is invalid).

    Raises:
        SandboxError: The sandbox itself failed.
    """
    validation, result = validate_and_evaluate(
        program,
        entry_points=task.entry_points,
        task=task,
        instances=instances,
        stage="arena",
        split="train",
        sandbox=sandbox,
        limits=limits,
    )
    return result if validation.ok else None


def make_child(
    program: Program,
    report: dict[str, Any],
    *,
    module: str,
    seed: int,
    sandbox: Sandbox,
    limits: Limits,
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[Program | None, dict[str, Any], str | None]:
    """A child of a code agent made by its meta agent (``module.improve``) in the sandbox
    (its ``llm.complete`` calls answered by ``llm``, the arena's gateway, when given).

    Returns:
        The child (None: the meta agent failed), its ``meta_info``, and why it failed.

    Raises:
        SandboxError: The sandbox itself failed.
    """
    improver = MetaAgentImprover(sandbox=sandbox, limits=limits, module=module)
    request = ImproveRequest(program=program, report=report, seed=seed, llm=llm)
    result = improver.improve(request)
    if result.program is not None and result.program.id == program.id:
        return None, result.meta_info, "the meta agent made no change"
    return result.program, result.meta_info, result.reason


def arena_sandbox(name: str, task: Task, *, memory_mb: int) -> Sandbox:
    """The sandbox ``name`` with the task's files hidden from agent code.

    Raises:
        ConfigError: A sandbox that cannot work here.
    """
    return get_sandbox(
        name,
        preload=tuple(task.sandbox_preload),
        hide=task_locations(task),
        memory_mb=memory_mb,
    )


def heldout_score(
    program: Program,
    cases: Sequence[dict[str, Any]],
    *,
    task: Task,
    sandbox: Sandbox,
    limits: Limits,
) -> float:
    """``program``'s accuracy on the held-out ``cases`` (0 when it is invalid), scored here.

    Raises:
        ConfigError: The task cannot play an arena.
        SandboxError: The sandbox itself failed.
    """
    instances = instances_of(list(cases), "h", key=task.arena_spec().input_key)
    result = evaluate(program, instances, task=task, sandbox=sandbox, limits=limits)
    return 0.0 if result is None else float(result.score)

"""Improvers: turn a parent program into a child program.

The default improver runs a program's own meta agent (``meta_agent.py``'s ``improve``) in the
sandbox on a private copy of the parent's files. Which meta agent runs, and on what, is the
run's *mode* (see :class:`hyperagents.runs.Mode`); the improver only executes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hyperagents.exceptions import ProgramError
from hyperagents.program import Program
from hyperagents.sandbox import Limits, Sandbox, workspace

__all__ = ["ImproveRequest", "ImproveResult", "Improver", "MetaAgentImprover"]

#: Largest ``meta_info`` kept per variant (bytes of JSON).
META_INFO_CAP = 64 * 1024


@dataclass(frozen=True)
class ImproveRequest:
    """What an improver gets.

    Attributes:
        program: The files the meta agent works on (the workspace's initial content).
        report: The evaluation report and archive summary given to the meta agent.
        seed: Seed for the meta agent's randomness.
        llm: Answers the meta agent's ``llm.complete`` calls (None: no model for this run).
    """

    program: Program
    report: Mapping[str, Any]
    seed: int
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(frozen=True)
class ImproveResult:
    """What an improver produced: a child program, or a failure reason."""

    program: Program | None
    meta_info: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    logs: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Improver(Protocol):
    """Produces a child program from an :class:`ImproveRequest`."""

    def improve(self, request: ImproveRequest) -> ImproveResult:
        """Return the child (or a failure); raise SandboxError only if infrastructure broke."""
        ...


def _cap_meta_info(value: Any) -> dict[str, Any]:
    info = value if isinstance(value, dict) else {"result": value}
    try:
        text = json.dumps(info, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return {"invalid_meta_info": str(exc)[:500]}
    if len(text) > META_INFO_CAP:
        return {"truncated_meta_info": text[:2000]}
    parsed: dict[str, Any] = json.loads(text)
    return parsed


class MetaAgentImprover:
    """Runs ``meta_agent.improve(workspace, report)`` of the request's program in the sandbox.

    The child is every regular file in the workspace after the call (``__pycache__`` excluded).

    Args:
        sandbox: Where the meta agent runs.
        limits: Its resource limits.
        module: Module name of the meta agent.
        function: Entry function.
    """

    def __init__(
        self,
        *,
        sandbox: Sandbox,
        limits: Limits,
        module: str = "meta_agent",
        function: str = "improve",
    ) -> None:
        self.sandbox, self.limits = sandbox, limits
        self.module, self.function = module, function

    def improve(self, request: ImproveRequest) -> ImproveResult:
        """Run the meta agent and read back the workspace.

        Raises:
            SandboxError: The sandbox itself failed.
        """
        payload = {
            "action": "improve",
            "module": self.module,
            "function": self.function,
            "report": dict(request.report),
            "seed": request.seed,
        }
        with workspace(request.program) as path:
            extra = {"llm": request.llm} if request.llm is not None else {}
            run = self.sandbox.run(path, payload, limits=self.limits, **extra)
            logs = (run.stdout + run.stderr)[-8000:]
            metrics: dict[str, Any] = {
                "wall": run.wall,
                "cpu": run.cpu,
                "peak_memory_mb": run.peak_memory_mb,
            }
            if run.extra.get("output_truncated"):
                metrics["output_truncated"] = True
            if not run.ok:
                return ImproveResult(None, {}, f"meta agent failed: {run.reason}", logs, metrics)
            try:
                child = Program.from_directory(path)
            except ProgramError as exc:
                return ImproveResult(
                    None, {}, f"meta agent left an invalid workspace: {exc}", logs, metrics
                )
        return ImproveResult(child, _cap_meta_info(run.result), None, logs, metrics)

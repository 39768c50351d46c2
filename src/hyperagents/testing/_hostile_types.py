"""What a hostile case is and what running one reports (see :mod:`hyperagents.testing.hostile`).

:class:`HostileCase` holds one attack; :class:`CaseReport` what happened to it in one sandbox;
:func:`recorded_reason` the reason the engine records for a run. Private to
:mod:`hyperagents.testing`: import these names from :mod:`hyperagents.testing.hostile`.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperagents.sandbox import Limits, Outcome, SandboxResult

__all__ = [
    "KILL_MARGIN",
    "STRAY_GRACE",
    "TRAITS",
    "CaseContext",
    "CaseReport",
    "HostileCase",
    "Observe",
    "Setup",
    "instance_outputs",
    "recorded_reason",
]

#: Isolation properties a sandbox may have (see :func:`sandbox_traits`).
TRAITS = ("filesystem", "network", "nproc", "pid", "tmpfs", "user")

#: Seconds past a case's wall-clock limit within which the sandbox must have answered (the
#: benchmark's measure of a prompt kill; a test on a busy machine passes a larger margin).
KILL_MARGIN = 2.0

#: Seconds to wait for a case's processes to go after the sandbox answered.
STRAY_GRACE = 3.0


# -- the host-side context of one case ------------------------------------------------------------
@dataclass
class CaseContext:
    """Where one case runs: a scratch directory outside the workspace, owned by the host."""

    directory: Path
    workspace: Path
    token: str
    params: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    score: float | None = None


Setup = Callable[[CaseContext], None]
Observe = Callable[[CaseContext, SandboxResult], list[str]]


def _no_setup(ctx: CaseContext) -> None:
    return None


def _no_breach(ctx: CaseContext, result: SandboxResult) -> list[str]:
    return []


@dataclass(frozen=True)
class HostileCase:
    """One hostile program and what the sandbox must do with it.

    Attributes:
        name: Identifier (``infinite_loop``…).
        title: What the program does, in a few words.
        source: The task-agent module (defines ``solve(inputs)``), a :class:`string.Template`:
            ``$token`` (a unique string to find its processes by) and case-specific parameters
            (``$port``, ``$db``, ``$outside``…) are filled in by :func:`run_case`.
        outcome: The :class:`~hyperagents.sandbox.Outcome` the run must end with.
        reason: Regular expression the recorded reason (:func:`recorded_reason`) must match.
        needs_any: Isolation properties (:data:`TRAITS`) of which the sandbox needs at least one
            to contain the case; empty when any sandbox must contain it.
        unsafe_uncontained: Not run at all where the sandbox is not expected to contain it.
        network_probe: Run only after :func:`network_probe` saw no network in the same sandbox.
        scored: Run through :func:`~hyperagents.evaluation.evaluate_stage` on
            :class:`ParityTask` (trusted scoring), so the score can be checked.
        wall_time: Wall-clock limit, seconds. A case that never ends by itself (an endless
            loop or sleep) is killed at it; for one that does, it is only a safety net, ample
            even on a loaded machine, where starting a sandbox alone can take seconds.
        cpu_time: CPU-time limit, seconds (None: the sandbox's default).
        memory_mb: Address-space limit, MiB.
        max_processes: Process-count limit.
        setup: Prepares the host side (listener, files) and fills template parameters.
        observe: Returns the containment breaches seen on the host after the run.
    """

    name: str
    title: str
    source: str
    outcome: Outcome
    reason: str
    needs_any: frozenset[str] = frozenset()
    unsafe_uncontained: bool = False
    network_probe: bool = False
    scored: bool = False
    wall_time: float = 30.0
    cpu_time: float | None = None
    memory_mb: int = 512
    max_processes: int = 32
    setup: Setup = _no_setup
    observe: Observe = _no_breach

    @property
    def limits(self) -> Limits:
        """The sandbox limits this case runs under."""
        return Limits(
            wall_time=self.wall_time,
            cpu_time=self.cpu_time,
            memory_mb=self.memory_mb,
            max_processes=self.max_processes,
            max_file_size_mb=16,
            max_output_bytes=64 * 1024,
        )

    @property
    def kill_bound(self) -> float:
        """Seconds within which the sandbox must have answered: the wall-clock limit plus
        :data:`KILL_MARGIN` (see :func:`run_case` for a larger margin).

        (A CPU-time limit usually ends the run sooner, but on a busy machine CPU seconds
        accrue slower than wall-clock seconds: only the wall clock is a guarantee.)
        """
        return self.wall_time + KILL_MARGIN

    def render(self, **params: str) -> str:
        """The agent source with its template parameters filled in."""
        return string.Template(self.source).substitute(params)


@dataclass
class CaseReport:
    """What happened to one hostile case in one sandbox.

    Attributes:
        case: The case's name.
        sandbox: The sandbox's name.
        ran: Whether the program was run (False: not run, see ``note``).
        expected_contained: Whether the sandbox's isolation should contain the case.
        contained: No breach, no stray process, killed in time (None when not run).
        breaches: Host-side evidence that the program got out (files, connections, secrets).
        stray: Processes the run left behind (pids; they are killed afterwards).
        outcome: The recorded outcome.
        reason: The recorded reason (:func:`recorded_reason`).
        reason_ok: Whether outcome and reason are the expected ones.
        seconds: Wall-clock seconds from start to the sandbox returning.
        kill_bound: The bound ``seconds`` was held to: the wall-clock limit plus the margin.
        in_time: Whether ``seconds`` is within ``kill_bound``.
        score: The trusted score of a ``scored`` case.
        note: Why the case was not run, or a remark.
        result: The raw sandbox result.
    """

    case: str
    sandbox: str
    ran: bool
    expected_contained: bool
    contained: bool | None = None
    breaches: list[str] = field(default_factory=list)
    stray: list[int] = field(default_factory=list)
    outcome: Outcome | None = None
    reason: str = ""
    reason_ok: bool = False
    seconds: float = 0.0
    kill_bound: float = 0.0
    in_time: bool = True
    score: float | None = None
    note: str = ""
    result: SandboxResult | None = None


# -- helpers shared by checks ---------------------------------------------------------------------
def instance_outputs(result: SandboxResult) -> list[Any]:
    return [m.get("output") for m in result.messages if m.get("type") == "instance"]


def _instance_errors(result: SandboxResult) -> list[str]:
    return [str(m["error"]) for m in result.messages if m.get("type") == "instance" and m["error"]]


def recorded_reason(result: SandboxResult) -> str:
    """The reason the engine records for a run: the sandbox's reason when the run failed, else
    the first per-instance error, else a note that it finished (and whether output was cut)."""
    if result.outcome is not Outcome.OK:
        return result.reason
    errors = _instance_errors(result)
    if errors:
        return errors[0]
    if result.extra.get("output_truncated"):
        kept = result.extra["output_truncated"]
        return (
            f"ok; output truncated (kept {kept['stdout_bytes_kept']} bytes of stdout, "
            f"{kept['stderr_bytes_kept']} of stderr)"
        )
    outputs = instance_outputs(result)
    shown = json.dumps(outputs[0] if outputs else None)
    return f"ok; returned {shown[:100]}"

"""Hostile candidates: real agent programs that try to escape, starve or fool the sandbox.

:data:`HOSTILE_CASES` lists one :class:`HostileCase` per attack of the sandbox issue (infinite
loop, fork bomb, 50 GB allocation, 1 GB of output, network, secrets, labels, the run database,
writes outside the workspace, killing the engine, escaped children, ignored signals, a segfault,
fake score lines, monkeypatched scoring, deleting the workspace). Each case holds the *source* of a
task-agent module (``solve(inputs)``), the limits it runs under, the outcome and reason the engine
must record, and the isolation properties that contain it. :func:`run_case` runs one case through a
real sandbox and reports what happened: whether it was contained (host-side evidence, stray
processes, time to kill), the recorded outcome and reason, and the time it took.

The test suite (``tests/sandbox/test_hostile.py``) and the benchmark
(``benchmarks/bench_hostile.py``) both use this list.

Safety: the cases run on shared machines. A case that would harm the host where the sandbox does not
contain it (the fork bomb, killing the parent process) is *not run* there: :func:`run_case`
reports ``ran=False`` with the reason. The fork bomb is bounded anyway (at most 4096 processes,
each exiting after a few seconds). The external-address case never sends a packet unless a probe
in the same sandbox saw no network interface but loopback and no route, and it only ever targets
192.0.2.1 (TEST-NET-1, reserved for documentation).

Example:
    >>> from hyperagents.testing.hostile import HOSTILE_CASES, run_case
    >>> from hyperagents.sandbox import BwrapSandbox
    >>> report = run_case(HOSTILE_CASES["segfault"], BwrapSandbox(), tmp_dir)  # doctest: +SKIP
    >>> report.contained, report.reason  # doctest: +SKIP
    (True, 'crash: killed by signal 11 (SIGSEGV)')
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperagents.program import Program
from hyperagents.sandbox import Limits, Sandbox, SandboxResult
from hyperagents.tasks import Split
from hyperagents.testing._hostile_catalogue import HOSTILE_CASES
from hyperagents.testing._hostile_checks import ParityTask, fork_bomb_counts
from hyperagents.testing._hostile_host import (
    PROBE_SOURCE,
    kill_all,
    network_probe,
    sandbox_traits,
    stray_processes,
    wait_for_strays,
)
from hyperagents.testing._hostile_types import (
    KILL_MARGIN,
    STRAY_GRACE,
    TRAITS,
    CaseContext,
    CaseReport,
    HostileCase,
    recorded_reason,
)

__all__ = [
    "HOSTILE_CASES",
    "KILL_MARGIN",
    "PROBE_SOURCE",
    "STRAY_GRACE",
    "TRAITS",
    "CaseReport",
    "HostileCase",
    "ParityTask",
    "fork_bomb_counts",
    "network_probe",
    "recorded_reason",
    "run_case",
    "sandbox_traits",
    "stray_processes",
]


class _Recording:
    """A sandbox proxy that keeps the last result (evaluate_stage only returns scores)."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner = inner
        self.name = inner.name
        self.last: SandboxResult | None = None

    def run(
        self,
        workspace: Path,
        request: dict[str, Any],
        *,
        limits: Limits,
        llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> SandboxResult:
        self.last = self.inner.run(workspace, request, limits=limits, llm=llm)
        return self.last


def run_case(
    case: HostileCase,
    sandbox: Sandbox,
    directory: Path,
    *,
    traits: frozenset[str] | None = None,
    kill_margin: float = KILL_MARGIN,
    stray_grace: float = STRAY_GRACE,
) -> CaseReport:
    """Run ``case`` in ``sandbox`` and report what happened.

    Args:
        case: The hostile case.
        sandbox: A real sandbox.
        directory: An empty scratch directory of the host (the workspace is created in it; its
            other files stand for the host's files outside the workspace).
        traits: The sandbox's isolation properties (default: :func:`sandbox_traits`).
        kill_margin: Seconds past the case's wall-clock limit within which the sandbox must
            have answered (``in_time``). A test on a busy machine passes a generous one: it
            tells a hang from a kill, whatever the machine's speed.
        stray_grace: Seconds to wait for the case's processes to go once the sandbox answered
            (the ones still there are ``stray``).

    Returns:
        The report; ``ran`` is False where running the case would be unsafe.

    Raises:
        SandboxError: The sandbox itself failed.
    """
    traits = sandbox_traits(sandbox) if traits is None else traits
    expected = not case.needs_any or bool(case.needs_any & traits)
    report = CaseReport(case.name, sandbox.name, ran=False, expected_contained=expected)
    report.kill_bound = case.wall_time + kill_margin
    if _refused(case, sandbox, directory, report):
        return report
    token = f"hyperagents-hostile-{case.name}-{uuid.uuid4().hex[:12]}"
    workspace = directory / "ws"
    workspace.mkdir(parents=True, exist_ok=True)
    ctx = CaseContext(directory=directory, workspace=workspace, token=token)
    try:
        case.setup(ctx)
        source = case.render(token=token, **ctx.params)
        start = time.perf_counter()
        result = (
            _run_scored(case, sandbox, source, ctx)
            if case.scored
            else _run(case, sandbox, source, ctx)
        )
        report.seconds = time.perf_counter() - start
        _judge(report, case, sandbox, ctx, result, stray_grace)
    finally:
        _clean_up(ctx)
    return report


def _refused(case: HostileCase, sandbox: Sandbox, directory: Path, report: CaseReport) -> bool:
    """Whether running ``case`` here would be unsafe (``report.note`` then says why)."""
    if case.unsafe_uncontained and not report.expected_contained:
        report.note = f"not contained by the {sandbox.name} sandbox here (not run: unsafe)"
        return True
    if case.network_probe:
        isolated, seen = network_probe(sandbox, directory)
        if not isolated:
            report.expected_contained = False
            report.note = f"the sandbox has a network ({seen}); not run: unsafe"
            return True
    return False


def _run(case: HostileCase, sandbox: Sandbox, source: str, ctx: CaseContext) -> SandboxResult:
    """Run the agent on one instance, straight through the sandbox."""
    (ctx.workspace / "task_agent.py").write_text(source)
    request = {
        "action": "solve",
        "instances": [{"id": "train-0", "inputs": {"n": 0}}],
        "instance_timeout": 0,
    }
    return sandbox.run(ctx.workspace, request, limits=case.limits)


def _run_scored(
    case: HostileCase, sandbox: Sandbox, source: str, ctx: CaseContext
) -> SandboxResult:
    """Run the agent through the trusted evaluation on :class:`ParityTask`; the score goes
    in ``ctx.score``."""
    from hyperagents.evaluation import evaluate_stage

    recording = _Recording(sandbox)
    task = ParityTask()
    stage = evaluate_stage(
        Program({"task_agent.py": source}),
        task=task,
        instances=task.instances(Split.TRAIN),
        stage="train",
        split="train",
        sandbox=recording,
        limits=case.limits,
    )
    ctx.score = stage.score
    assert recording.last is not None
    return recording.last


def _judge(
    report: CaseReport,
    case: HostileCase,
    sandbox: Sandbox,
    ctx: CaseContext,
    result: SandboxResult,
    stray_grace: float,
) -> None:
    """Fill ``report`` from the run's result and the host's evidence (killing strays)."""
    report.ran = True
    report.result = result
    report.score = ctx.score
    report.stray = _strays(sandbox, ctx, result, stray_grace)
    report.breaches = case.observe(ctx, result)
    report.outcome = result.outcome
    report.reason = recorded_reason(result)
    report.reason_ok = result.outcome is case.outcome and bool(
        re.search(case.reason, report.reason)
    )
    report.in_time = report.seconds <= report.kill_bound
    report.contained = not report.breaches and not report.stray and report.in_time


def _strays(
    sandbox: Sandbox, ctx: CaseContext, result: SandboxResult, stray_grace: float
) -> list[int]:
    """The case's processes still alive after ``stray_grace`` seconds, killed."""
    uid = result.extra.get("isolation", {}).get("user")
    cwd = ctx.workspace if ctx.workspace.is_dir() and sandbox.name != "bwrap" else None
    stray = wait_for_strays(ctx.token, uid, cwd, stray_grace)
    kill_all(stray)
    return stray


def _clean_up(ctx: CaseContext) -> None:
    """Undo the case's setup, kill whatever carries its token, remove its workspace."""
    for cleanup in reversed(ctx.cleanups):
        with contextlib.suppress(Exception):
            cleanup()
    kill_all(stray_processes(token=ctx.token))
    shutil.rmtree(ctx.workspace, ignore_errors=True)

"""The sandbox protocol: where untrusted agent code runs.

A sandbox runs the trusted *harness* (``_harness.py``) in a separate process whose working
directory is a private workspace holding the program's files. The harness imports the agent code
and performs one *action* (``validate``, ``solve`` — optionally validating first —, ``improve``,
``select``); it streams JSON messages back over a dedicated pipe (never stdout, which the agent
may write anything to).

Two kinds of failure are kept apart:

* the sandbox itself broke (cannot start the interpreter, workspace unusable…): the sandbox raises
  :class:`~hyperagents.exceptions.SandboxError`; the engine retries;
* the candidate failed (timeout, memory, crash, garbage output): :class:`SandboxResult` with a
  :class:`Outcome` other than ``OK`` and a human-readable ``reason`` — a recorded outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Limits", "Outcome", "Sandbox", "SandboxResult"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed process (a value object).

    Attributes:
        wall_time: Seconds before the whole process tree is killed.
        cpu_time: CPU seconds (RLIMIT_CPU); None for ``wall_time`` rounded up.
        memory_mb: Address-space limit in MiB (RLIMIT_AS).
        max_processes: RLIMIT_NPROC (not enforced for root by the kernel).
        max_file_size_mb: RLIMIT_FSIZE in MiB: the largest file the code may write.
        max_output_bytes: Captured stdout/stderr kept per stream (the rest is drained, dropped).
        max_result_bytes: Bytes read from the result channel before it counts as invalid output.
        validate_time: For a request that validates the program first (a ``solve`` with a
            ``validate`` part): seconds the validation may take from the start, after which
            ``wall_time`` counts from the harness's validation message (the CPU limit covers
            both). None: ``wall_time`` counts from the start. A sandbox that cannot tell the
            two parts apart holds the run to their sum.
    """

    wall_time: float = 60.0
    cpu_time: float | None = None
    memory_mb: int = 2048
    max_processes: int = 64
    max_file_size_mb: int = 64
    max_output_bytes: int = 64 * 1024
    max_result_bytes: int = 64 * 1024 * 1024
    validate_time: float | None = None


class Outcome(IntEnum):
    """How a sandboxed process ended."""

    OK = 0  #: exited 0 and delivered a well-formed result
    TIMEOUT = 1  #: killed at the wall-clock limit (or the CPU limit)
    MEMORY = 2  #: ran out of memory (MemoryError or killed for it)
    CRASH = 3  #: non-zero exit or killed by a signal
    INVALID_OUTPUT = 4  #: exited but the result channel held nothing valid
    ERROR = 5  #: the agent code raised an exception (reported by the harness)


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run produced.

    Attributes:
        outcome: How it ended; anything but ``OK`` is a candidate failure.
        reason: One-line explanation for a failure ("" when OK).
        messages: JSON messages received on the result channel, in order.
        result: The final ``{"type": "result"}`` message's ``value`` (None if absent).
        stdout: Captured standard output (capped).
        stderr: Captured standard error (capped).
        exit_code: Exit status, or ``-signal`` when killed by a signal.
        wall: Wall-clock seconds.
        cpu: User + system CPU seconds of the process.
        peak_memory_mb: Peak resident set size in MiB.
    """

    outcome: Outcome
    reason: str = ""
    messages: tuple[dict[str, Any], ...] = ()
    result: Any = None
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    wall: float = 0.0
    cpu: float = 0.0
    peak_memory_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.outcome is Outcome.OK


@runtime_checkable
class Sandbox(Protocol):
    """Runs one harness action on a workspace under limits."""

    name: str

    def run(
        self,
        workspace: Path,
        request: dict[str, Any],
        *,
        limits: Limits,
        llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> SandboxResult:
        """Run the harness with ``request`` (JSON) in ``workspace``.

        Args:
            workspace: Directory with the program's files.
            request: The harness action and its inputs.
            limits: Resource limits.
            llm: Engine-side handler for the sandboxed code's ``llm.complete(...)`` calls
                (``{"messages", "params", "purpose"}`` → ``{"text"}`` or ``{"error"}``).

        Raises:
            SandboxError: The sandbox itself failed (not the candidate).
        """
        ...

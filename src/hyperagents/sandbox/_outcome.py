"""A started harness process, and what the engine reads from it once it has finished.

:class:`Started` holds the process with the readers draining its pipes;
:func:`finish_readers` collects the rest of their output and closes the engine's ends;
:func:`measured` and :func:`annotate` turn what was received and measured outside the sandbox
into the parts of a :class:`~hyperagents.sandbox.SandboxResult`.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hyperagents.sandbox._base import Limits, SandboxResult
from hyperagents.sandbox._drain import Drain
from hyperagents.sandbox._forkserver import ForkedProcess
from hyperagents.sandbox._messages import Received
from hyperagents.sandbox._monitor import UsageProbe
from hyperagents.sandbox._readers import CappedBuffer, ChannelReader, StatusBuffer

__all__ = ["Started", "annotate", "cpu_limit", "finish_readers", "measured"]


@dataclass
class Started:
    """A sandboxed process that has been started and waits for (or runs) its request."""

    proc: subprocess.Popen[bytes] | ForkedProcess
    stdout: CappedBuffer
    stderr: CappedBuffer
    channel: ChannelReader
    status: StatusBuffer
    drain: Drain  #: the thread reading stdout, stderr and status (and watching the deadline)
    probe: UsageProbe
    streams: tuple[IO[bytes], ...]  #: the engine's ends of the pipes, closed once after use
    uid: int | None
    directory: Path  #: the directory the process sees as its workspace

    @property
    def forked(self) -> bool:
        """Whether the process is a fork server's child."""
        return isinstance(self.proc, ForkedProcess)

    @property
    def readers(self) -> tuple[Drain | ChannelReader, ...]:
        """Every thread draining the process's pipes."""
        return (self.drain, self.channel)


def finish_readers(started: Started) -> None:
    """Collect the rest of the output; never wait on a pipe an escaped child holds open."""
    deadline = time.monotonic() + 1.0
    for reader in started.readers:
        reader.join(timeout=max(0.0, deadline - time.monotonic()))
    for reader in started.readers:
        if reader.is_alive():
            reader.stop()
    for reader in started.readers:
        # A stopped reader leaves its poll at once (the channel's within 0.2 s); wait for it,
        # because closing a descriptor a thread still polls lets it read whatever reuses the
        # number next.
        reader.join(timeout=5.0)
    # Each descriptor is closed exactly once, through its file object: closing the number
    # behind the object's back (and the object again later) would close whichever pipe
    # another thread had opened with that number in between.
    for stream in started.streams:
        with contextlib.suppress(OSError, ValueError):
            stream.close()


def annotate(
    result: SandboxResult, started: Started, report: dict[str, Any], *, network: bool
) -> None:
    """Add what the engine saw (truncated output, the isolation report) to ``result.extra``."""
    stdout, stderr = started.stdout, started.stderr
    if stdout.truncated or stderr.truncated:
        result.extra["output_truncated"] = {
            "stdout_bytes_kept": stdout.size,
            "stderr_bytes_kept": stderr.size,
            "stdout_truncated": stdout.truncated,
            "stderr_truncated": stderr.truncated,
        }
    isolation = {k: v for k, v in report.items() if k != "type"}
    isolation["network"] = bool(isolation.get("network")) or network
    result.extra["isolation"] = isolation


def cpu_limit(limits: Limits) -> float:
    """The CPU seconds a run may use: its own limit, else its wall time (with its validation's,
    if any) rounded up, plus one."""
    if limits.cpu_time is not None:
        return limits.cpu_time
    return math.ceil(limits.wall_time + (limits.validate_time or 0.0)) + 1


def measured(received: Iterable[Received], status: StatusBuffer) -> list[dict[str, Any]]:
    """The accepted messages, with the wall and CPU time of each instance (and of the
    validation before them) replaced by what the engine measured from outside (time and CPU
    use between successive such messages, from the moment the harness reported itself
    isolated).

    Only the first ``validation`` message, before any instance's, is timed (the one the
    evaluation accepts): another one, which the agent's code may send while it solves, would
    otherwise hide the time of the instance it precedes.

    The status pipe and the result channel are read by different threads, so on a busy
    machine the first answer can be read before the isolation report that preceded it: a
    time is never negative (0 then), and the clocks only move forward."""
    messages: list[dict[str, Any]] = []
    last_at = status.at
    last_cpu = status.cpu
    verdict_due = True  # no validation and no instance yet
    for item in received:
        message = item.message
        if message is None or message["type"] in ("isolation", "done"):
            continue  # only the status pipe reports isolation; "done" is the ack handshake
        kind = message["type"]
        timed = kind == "instance" or (kind == "validation" and verdict_due)
        verdict_due = verdict_due and kind not in ("instance", "validation")
        if timed:
            wall = max(0.0, item.at - last_at) if last_at is not None else None
            cpu = (
                max(0.0, item.cpu - last_cpu)
                if item.cpu is not None and last_cpu is not None
                else None
            )
            message = {**message, "wall": wall, "cpu": cpu}
            last_at = item.at if last_at is None else max(last_at, item.at)
            if item.cpu is not None:
                last_cpu = item.cpu if last_cpu is None else max(last_cpu, item.cpu)
        messages.append(message)
    return messages

"""Reading what a sandboxed candidate sent: bounded JSON, and how a run ended.

Everything on the result channel was written, or could have been written, by agent code. It is
parsed here with bounds on size and nesting depth, with ``NaN`` and infinities refused (they are
not JSON, and no database or scorer should meet them), and it never decides that the *sandbox*
broke: only the harness's status pipe, closed before any agent code runs, can say that.
"""

from __future__ import annotations

import json
import math
import signal
from dataclasses import dataclass
from typing import Any

from hyperagents.sandbox._base import Limits, Outcome, SandboxResult

__all__ = [
    "MAX_JSON_DEPTH",
    "InvalidMessage",
    "Received",
    "check_depth",
    "classify",
    "loads_bounded",
]

#: Deepest nesting of lists and objects accepted from a candidate (outputs, results, reports).
MAX_JSON_DEPTH = 64
#: Longest single message line accepted from a candidate (bytes).
MAX_LINE_BYTES = 16 * 1024 * 1024


class InvalidMessage(ValueError):
    """A candidate's message is not bounded, finite JSON (the reason says why)."""


def _no_constant(name: str) -> Any:
    raise InvalidMessage(f"{name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidMessage(f"number {text[:40]} is out of range")
    return value


def check_depth(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`InvalidMessage` if lists/dicts in ``value`` nest deeper than ``max_depth``
    or a string in it (a key or a value) is not valid Unicode (a lone surrogate, which JSON's
    ``\\udXXX`` escapes can spell but no UTF-8 database column can store).

    Iterative, so a value of any depth is checked without recursion.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if isinstance(item, dict):
            for key in item:
                _check_text(key)
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= max_depth:
            raise InvalidMessage(f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


def _check_text(text: Any) -> None:
    if isinstance(text, str) and not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidMessage("a string is not valid Unicode (a lone surrogate)") from None


def loads_bounded(
    data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_LINE_BYTES
) -> Any:
    """Parse JSON written by a candidate.

    Raises:
        InvalidMessage: Malformed, larger than ``max_bytes``, nested deeper than ``max_depth``,
            or holding ``NaN``/``Infinity`` or a number out of float range.
    """
    if len(data) > max_bytes:
        raise InvalidMessage(f"message larger than {max_bytes} bytes")
    try:
        value = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except InvalidMessage:
        raise
    except RecursionError:
        raise InvalidMessage(f"nested deeper than {max_depth} levels") from None
    except (ValueError, TypeError, MemoryError) as exc:
        raise InvalidMessage(f"not valid JSON: {str(exc)[:200]}") from None
    check_depth(value, max_depth)
    return value


@dataclass(frozen=True)
class Received:
    """One line from the result channel, as the engine saw it.

    Attributes:
        message: The parsed message (a dict with a string ``type``), or None if invalid.
        problem: Why the line was refused (None when it was accepted).
        at: ``time.perf_counter()`` when the engine read it (measured outside the sandbox).
        cpu: CPU seconds the sandboxed harness had used by then, read from outside (``/proc``),
            or None where that could not be read.
    """

    message: dict[str, Any] | None
    problem: str | None
    at: float
    cpu: float | None = None


def parse_line(line: bytes, at: float, cpu: float | None) -> Received:
    """Parse one channel line into a :class:`Received` (never raises)."""
    try:
        value = loads_bounded(line)
    except InvalidMessage as exc:
        return Received(None, str(exc), at, cpu)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return Received(None, "a message must be a JSON object with a string 'type'", at, cpu)
    return Received(value, None, at, cpu)


def classify(
    *,
    messages: list[dict[str, Any]],
    problem: str | None,
    timed_out: bool,
    exit_code: int,
    cpu_used: float,
    cpu_limit: float,
    limits: Limits,
    stdout: str,
    stderr: str,
    wall: float,
    peak_mb: float,
    cpu_unknown: bool = False,
) -> SandboxResult:
    """Decide how a sandboxed run ended, from what the candidate sent and how it exited.

    Args:
        messages: Accepted channel messages, in order.
        problem: Why some channel data was refused or dropped (None if all was accepted).
        timed_out: The engine killed it at the wall-clock limit.
        exit_code: Exit status (``-N`` for signal N).
        cpu_used: CPU seconds measured from outside.
        cpu_limit: The CPU limit it ran under.
        limits: All its limits.
        stdout: Captured standard output.
        stderr: Captured standard error.
        wall: Wall-clock seconds.
        peak_mb: Peak memory measured from outside.
        cpu_unknown: The CPU use could not be read from outside (an unexplained SIGKILL is
            then the hard CPU limit).
    """
    common: dict[str, Any] = {
        "messages": tuple(messages),
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": exit_code,
        "wall": wall,
        "cpu": cpu_used,
        "peak_memory_mb": peak_mb,
    }
    if timed_out:
        reason = f"timeout: killed after {limits.wall_time:g} s wall-clock"
        return SandboxResult(Outcome.TIMEOUT, reason, **common)
    if exit_code == -signal.SIGXCPU or (
        exit_code == -signal.SIGKILL and (cpu_used >= cpu_limit - 0.5 or cpu_unknown)
    ):
        # SIGXCPU is the soft CPU limit; an unexplained SIGKILL inside a sandbox whose CPU use
        # cannot be read from outside is the hard one (nothing else there sends SIGKILL).
        reason = f"timeout: CPU-time limit of {cpu_limit:g} s exceeded"
        return SandboxResult(Outcome.TIMEOUT, reason, **common)
    final = next((m for m in reversed(messages) if m["type"] in ("result", "error")), None)
    if final is not None and final["type"] == "error":
        return _error_result(final, cpu_limit, limits, common)
    if exit_code != 0:
        return _crash_result(exit_code, stderr, limits, common)
    if final is None:
        what = problem or "no result"
        return SandboxResult(Outcome.INVALID_OUTPUT, f"invalid output: {what}", **common)
    return SandboxResult(Outcome.OK, "", result=final.get("value"), **common)


def _error_result(
    final: dict[str, Any], cpu_limit: float, limits: Limits, common: dict[str, Any]
) -> SandboxResult:
    kind = final.get("kind", "exception")
    if kind == "cpu":
        reason = f"timeout: CPU-time limit of {cpu_limit:g} s exceeded"
        return SandboxResult(Outcome.TIMEOUT, reason, **common)
    text = str(final.get("error", "")).strip()
    last = text.splitlines()[-1] if text else "error"
    if kind == "memory" or last.startswith("MemoryError"):
        reason = f"memory: ran out of memory (limit {limits.memory_mb} MiB)"
        return SandboxResult(Outcome.MEMORY, reason, **common)
    if kind == "output":
        return SandboxResult(Outcome.INVALID_OUTPUT, f"invalid output: {last}"[:500], **common)
    return SandboxResult(
        Outcome.ERROR, f"exception: {last}"[:500], extra={"traceback": text[-8000:]}, **common
    )


def _crash_result(
    exit_code: int, stderr: str, limits: Limits, common: dict[str, Any]
) -> SandboxResult:
    if exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else "?"
        reason = f"crash: killed by signal {-exit_code} ({name})"
    else:
        tail = stderr.strip().splitlines()[-1:] or [""]
        reason = f"crash: exit code {exit_code}" + (f": {tail[0][:300]}" if tail[0] else "")
    if "MemoryError" in stderr[-2000:]:
        reason = f"memory: ran out of memory (limit {limits.memory_mb} MiB)"
        return SandboxResult(Outcome.MEMORY, reason, **common)
    return SandboxResult(Outcome.CRASH, reason, **common)

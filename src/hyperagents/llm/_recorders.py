"""Records of the gateway's attempts: how each one's :class:`~hyperagents.llm.LLMCall` is made,
and where it goes (a list in memory, a JSON-lines file, or any callable).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hyperagents.exceptions import LLMError
from hyperagents.llm._base import Completion, LLMCall, redact_secrets, request_key

__all__ = [
    "JsonlRecorder",
    "MemoryRecorder",
    "Recorder",
    "answered_record",
    "failed_record",
    "request_record",
]

Recorder = Callable[[LLMCall], None]
"""Receives the record of every attempt; see :class:`JsonlRecorder`, :class:`MemoryRecorder`."""


class MemoryRecorder:
    """Keeps call records in a list (thread-safe), e.g. for tests or to store them later.

    Attributes:
        calls: The records, in the order they were made.
    """

    def __init__(self) -> None:
        self.calls: list[LLMCall] = []
        self._lock = threading.Lock()

    def __call__(self, call: LLMCall) -> None:
        """Keep a record.

        Args:
            call: The record.
        """
        with self._lock:
            self.calls.append(call)

    def __len__(self) -> int:
        with self._lock:
            return len(self.calls)

    def __iter__(self) -> Iterator[LLMCall]:
        with self._lock:
            return iter(list(self.calls))


class JsonlRecorder:
    """Appends call records to a JSON-lines file, one line per attempt, flushed at once.

    The file is opened for each record, so a crash loses at most the record being written.
    Threads may share one recorder; give each process its own file. Read it back with
    :func:`~hyperagents.llm.read_calls` or replay it with :meth:`Gateway.for_replay`.

    Args:
        path: The file; created (with its directory) on the first record.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __call__(self, call: LLMCall) -> None:
        """Append a record.

        Args:
            call: The record.

        Raises:
            LLMError: If the file cannot be written.
        """
        line = json.dumps(call.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
            except OSError as exc:
                raise LLMError(f"cannot record an LLM call to {str(self.path)!r}: {exc}") from None


def request_record(
    provider: str,
    model: str,
    plain: list[dict[str, str]],
    params: dict[str, Any],
    *,
    purpose: str,
    variant_id: int | None,
    scope: str,
    job: str,
) -> LLMCall:
    """What every attempt's record of one request starts from: the request and its key.

    Args:
        provider: The provider's name.
        model: The model name.
        plain: The checked messages.
        params: ``temperature``, ``max_tokens`` and ``seed`` (part of the key).
        purpose: What the call is for.
        variant_id: The variant it is made for.
        scope: Where in a run it is made.
        job: The job attempt making it.

    Returns:
        A record with no reply yet.
    """
    return LLMCall(
        key=request_key(provider, model, plain, **params),
        provider=provider,
        model=model,
        messages=tuple(plain),
        params=params,
        reply=None,
        purpose=purpose,
        variant_id=variant_id,
        scope=scope,
        job=job,
    )


def failed_record(base: LLMCall, exc: Exception, *, latency: float, attempt: int) -> LLMCall:
    """The record of an attempt that raised ``exc`` (its message with secrets removed)."""
    return dataclasses.replace(
        base,
        reply=None,
        error=redact_secrets(str(exc)) or type(exc).__name__,
        error_type=type(exc).__name__,
        latency=latency,
        attempt=attempt,
        created_at=datetime.now(UTC),
    )


def answered_record(
    base: LLMCall, completion: Completion, *, cost_known: bool, attempt: int
) -> LLMCall:
    """The record of an attempt that got ``completion`` (a cache hit is attempt 0)."""
    return dataclasses.replace(
        base,
        reply=completion.text,
        finish_reason=completion.finish_reason,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cost=completion.cost,
        cost_known=cost_known,
        latency=completion.latency,
        cached=completion.cached,
        attempt=attempt,
        created_at=datetime.now(UTC),
    )

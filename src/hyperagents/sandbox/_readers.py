"""Engine-side readers of a sandboxed process's pipes: output, the result channel, the status.

* :class:`CappedBuffer` keeps stdout or stderr in memory up to a cap (one thread per request,
  :class:`~hyperagents.sandbox._drain.Drain`, reads those pipes and the status pipe).
* :class:`ChannelReader` reads the result channel line by line as it arrives: it answers the
  agent's LLM requests, parses every other line with bounds (:func:`parse_line`) and stamps it
  with the time and the harness's CPU use *as measured from outside*.
* :class:`StatusBuffer` keeps the harness's status pipe: the harness writes its isolation report
  there and closes it before any agent code is imported, so what it holds is the harness's word,
  which the candidate cannot forge.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from hyperagents.sandbox._messages import (
    InvalidMessage,
    Received,
    loads_bounded,
    parse_line,
)
from hyperagents.sandbox._monitor import UsageProbe

__all__ = ["CappedBuffer", "ChannelReader", "LLMHandler", "MessageHook", "StatusBuffer"]

#: Handles an LLM request from sandboxed code: ``{"messages", "params", "purpose"}`` in,
#: ``{"text": ...}`` or ``{"error": ...}`` out. Runs in the engine, which owns the keys.
LLMHandler = Callable[[dict[str, Any]], dict[str, Any]]

#: Takes a ``progress`` message of the sandboxed code as it arrives (engine side).
MessageHook = Callable[[dict[str, Any]], None]


class CappedBuffer:
    """Keeps what is read from one pipe in memory up to a cap (the rest is read and dropped);
    :class:`~hyperagents.sandbox._drain.Drain` reads the pipe and hands each chunk to
    :meth:`consume`."""

    def __init__(self, stream: IO[bytes], cap: int = 64 * 1024) -> None:
        self.stream, self.cap = stream, cap
        self.fd = stream.fileno()
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def consume(self, chunk: bytes) -> None:
        """Keep what fits under the cap; note that the rest was dropped."""
        if self.size < self.cap:
            keep = chunk[: self.cap - self.size]
            self.chunks.append(keep)
            self.size += len(keep)
            if len(keep) < len(chunk):
                self.truncated = True
        else:
            self.truncated = True

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class StatusBuffer(CappedBuffer):
    """Keeps the harness's status pipe; on the first report, calls ``on_report`` (the engine
    then finds the harness's process while no agent code has run yet) and notes the time."""

    def __init__(self, stream: IO[bytes], on_report: Callable[[], float | None]) -> None:
        super().__init__(stream, cap=64 * 1024)
        self._on_report = on_report
        self.at: float | None = None
        self.cpu: float | None = None

    def consume(self, chunk: bytes) -> None:
        super().consume(chunk)
        if self.at is None:
            self.at = time.perf_counter()
            with contextlib.suppress(Exception):
                self.cpu = self._on_report()

    def report(self) -> dict[str, Any] | None:
        """The harness's last status message (None when it never wrote one)."""
        found: dict[str, Any] | None = None
        for line in self.data.split(b"\n"):
            if not line.strip():
                continue
            with contextlib.suppress(InvalidMessage):
                value = loads_bounded(line, max_depth=8)
                if isinstance(value, dict) and isinstance(value.get("type"), str):
                    found = value
        return found


class ChannelReader(CappedBuffer, threading.Thread):
    """Reads the result channel; answers ``llm_request`` messages on the reply pipe as they
    arrive (the sandboxed code waits for the answer), and parses everything else into
    :attr:`received`, each line stamped when it was read.

    It never blocks the engine on the sandboxed side: the reply pipe is non-blocking and a
    reply that cannot be delivered within a few seconds is dropped; once the job has ended
    (:attr:`closed`) no request is answered any more (no model is called for a dead job); a line
    longer than the cap is discarded. The thread owns the reply descriptor and closes it when
    it stops.
    """

    #: Seconds a reply may wait for room in the pipe before the reader gives up on it.
    REPLY_PATIENCE = 5.0

    def __init__(
        self,
        stream: IO[bytes],
        reply_fd: int,
        cap: int = 64 * 1024,
        probe: UsageProbe | None = None,
    ) -> None:
        CappedBuffer.__init__(self, stream, cap)
        threading.Thread.__init__(self, daemon=True)
        self._halt = threading.Event()
        self._reply_fd = reply_fd
        os.set_blocking(reply_fd, False)
        self._pending = bytearray()
        self._probe = probe
        self.handler: LLMHandler | None = None
        #: Answer the harness's ``done`` with an ack (it waits for one before exiting).
        self.ack_final = False
        self.llm_requests = 0
        #: Called once, on the first ``validation`` message (the run's deadline moves then).
        self.on_validation: Callable[[], None] | None = None
        #: Called with each ``progress`` message as it arrives (its failure is ignored).
        self.on_progress: MessageHook | None = None
        self.closed = threading.Event()
        self.received: list[Received] = []

    def stop(self) -> None:
        """Stop reading even if the pipe is still open (an escaped child may hold it)."""
        self._halt.set()

    def run(self) -> None:
        try:
            with contextlib.suppress(OSError, ValueError):
                while not self._halt.is_set():
                    # Its own thread (not the drain's): an LLM request it answers may take
                    # seconds, and output must be drained meanwhile.
                    ready, _, _ = select.select([self.fd], [], [], 0.2)
                    if not ready:
                        continue
                    chunk = os.read(self.fd, 65536)
                    if not chunk:
                        break
                    self.consume(chunk)
        finally:
            with contextlib.suppress(OSError):
                os.close(self._reply_fd)

    def consume(self, chunk: bytes) -> None:
        self._pending += chunk
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            line = bytes(self._pending[:end])
            del self._pending[: end + 1]
            if not line.strip() or (b'"llm_request"' in line and self._answer(line)):
                continue
            self._keep(line)
        if len(self._pending) > self.cap:  # an endless line: drop it, note the truncation
            self._pending.clear()
            self.truncated = True

    def _keep(self, line: bytes) -> None:
        if self.size + len(line) > self.cap:
            self.truncated = True
            return
        self.size += len(line) + 1
        at = time.perf_counter()
        cpu = self._probe.sample() if self._probe is not None else None
        received = parse_line(line, at, cpu)
        self.received.append(received)
        kind = received.message["type"] if received.message is not None else None
        if kind == "validation" and self.on_validation is not None:
            hook, self.on_validation = self.on_validation, None
            hook()
        if kind == "progress" and self.on_progress is not None and received.message is not None:
            with contextlib.suppress(Exception):  # the engine's hook never stops the reading
                self.on_progress(received.message)
        if kind == "done" and self.ack_final:
            # Its usage is read (above): the harness, waiting for this, may now exit.
            self._deliver(b'{"type": "ack"}\n')

    def _answer(self, line: bytes) -> bool:
        try:
            message = loads_bounded(line, max_depth=16)
        except InvalidMessage:
            return False
        if not isinstance(message, dict) or message.get("type") != "llm_request":
            return False
        self.llm_requests += 1
        if self.closed.is_set() or self._halt.is_set():
            return True  # the job is over: nobody is waiting, and no model is called for it
        request_id = message.get("id")
        answer: dict[str, Any] = {
            "type": "llm_response",
            "id": request_id if isinstance(request_id, int) else None,
        }
        if self.handler is None:
            answer["error"] = "no language model is configured for this run"
        else:
            request = {k: message.get(k) for k in ("messages", "params", "purpose")}
            try:
                answer.update(self.handler(request))
            except Exception as exc:  # the engine's failure is the agent's error reply
                answer["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        self._deliver(_encode_answer(answer))
        return True

    def _deliver(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self.REPLY_PATIENCE
        while view and not self.closed.is_set() and not self._halt.is_set():
            try:
                written = os.write(self._reply_fd, view)
                view = view[written:]
                continue
            except BlockingIOError:
                pass
            except OSError:
                return  # the sandboxed side is gone
            if time.monotonic() >= deadline:
                return  # it does not read its answers: stop trying
            with contextlib.suppress(OSError, ValueError):
                select.select([], [self._reply_fd], [], 0.2)


def _encode_answer(answer: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(answer, allow_nan=False)
    except (TypeError, ValueError) as exc:
        text = json.dumps(
            {"type": "llm_response", "id": answer.get("id"), "error": f"bad reply: {exc}"}
        )
    return (text + "\n").encode("utf-8")

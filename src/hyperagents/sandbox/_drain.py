"""One engine-side thread per sandboxed request for everything that only waits on a pipe or
the clock: it drains stdout, stderr and the harness's status pipe into their buffers, writes a
request body too large for the stdin pipe, samples the harness's usage while it runs (for
sandboxes that need it), and acts when the wall-clock deadline passes.

It replaces a thread per pipe plus a timer and a feeder thread; the result channel keeps a
thread of its own (:class:`~hyperagents.sandbox._readers.ChannelReader`), because an LLM
request it answers may take seconds and the output must be drained meanwhile. Nothing it calls
blocks: reading a pipe that ``poll`` reported ready, writing without blocking, reading
``/proc``, killing a process group.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import threading
import time
from collections.abc import Callable
from typing import IO

from hyperagents.sandbox._deadline import Deadline
from hyperagents.sandbox._readers import CappedBuffer, StatusBuffer

__all__ = ["Drain"]

#: Bytes read from a pipe (or written to stdin) at a time.
_CHUNK = 65536
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL


class Drain(threading.Thread):
    """Drains a process's output and status pipes, feeds its stdin, watches its deadline.

    Args:
        buffers: Where each pipe's data goes (each reads its own pipe; ``status`` among them).
        status: The status pipe's buffer: once it is closed after a report, ``sample`` is
            called every ``interval`` seconds until the run is over.
        sample: Reads the harness's usage from outside (None: no sampling).
        interval: Seconds between samples.
    """

    def __init__(
        self,
        buffers: tuple[CappedBuffer, ...],
        *,
        status: StatusBuffer,
        sample: Callable[[], object] | None = None,
        interval: float = 0.05,
    ) -> None:
        super().__init__(daemon=True)
        self._buffers = buffers
        self._status = status
        self._sample, self._interval = sample, interval
        self._halt = threading.Event()
        self._deadline: Deadline | None = None
        self._on_expiry: Callable[[], None] | None = None
        self._stdin: IO[bytes] | None = None
        self._body = memoryview(b"")
        self._wake_lock = threading.Lock()
        self._wake_fds: tuple[int, int] | None = None
        # State of the loop (its thread only).
        self._pending: dict[int, CappedBuffer] = {}
        self._stdin_fd: int | None = None
        self._next_sample: float | None = None
        self._fired = False  # the deadline passed and ``on_expiry`` was called

    def watch(self, deadline: Deadline, on_expiry: Callable[[], None]) -> None:
        """Call ``on_expiry`` once, from this thread, if ``deadline`` passes before it is
        stopped (it is looked at again whenever it moves). Call before :meth:`start`."""
        self._deadline, self._on_expiry = deadline, on_expiry
        deadline.listen(self.wake)

    def feed(self, stdin: IO[bytes], body: bytes) -> None:
        """Write ``body`` to ``stdin`` as the process reads it, then close ``stdin`` (also
        when the process is gone or the drain stops). Call before :meth:`start`."""
        self._stdin, self._body = stdin, memoryview(body)

    def wake(self) -> None:
        """Have the thread look at its deadline and state again now."""
        with self._wake_lock:
            if self._wake_fds is not None:
                with contextlib.suppress(OSError):
                    os.write(self._wake_fds[1], b"\0")

    def stop(self) -> None:
        """Stop draining even if a pipe is still open (an escaped child may hold it)."""
        self._halt.set()
        self.wake()

    def run(self) -> None:
        with self._wake_lock:
            self._wake_fds = os.pipe()
        for fd in self._wake_fds:
            os.set_blocking(fd, False)
        try:
            self._loop(self._wake_fds[0])
        except Exception:
            # A bug here must not leave the run without its wall clock: watch it the plain way.
            self._close_stdin()
            if self._deadline is not None and not self._fired and self._deadline.expired():
                self._expire()
            raise
        finally:
            with self._wake_lock:
                for fd in self._wake_fds:
                    os.close(fd)
                self._wake_fds = None
            self._close_stdin()

    def _loop(self, wake: int) -> None:
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        self._pending = {buffer.fd: buffer for buffer in self._buffers}
        for fd in self._pending:
            poller.register(fd, select.POLLIN)
        self._stdin_fd = self._open_stdin()
        if self._stdin_fd is not None:
            poller.register(self._stdin_fd, select.POLLOUT)
        while not self._halt.is_set():
            left = self._deadline.remaining() if self._deadline is not None else None
            if left is not None and left <= 0 and not self._fired:
                self._fired = True
                self._expire()
                continue
            waits = [] if left is None or self._fired else [left]
            if left is not None and self._next_sample is not None:  # the run goes on
                if time.monotonic() >= self._next_sample:
                    self._sample_now()
                    self._next_sample = time.monotonic() + self._interval
                waits.append(self._next_sample - time.monotonic())
            if not self._pending and self._stdin_fd is None and not waits:
                return
            timeout = None if not waits else math.ceil(max(0.0, min(waits)) * 1000)
            for fd, events in poller.poll(timeout):
                if fd == wake:
                    with contextlib.suppress(OSError):
                        os.read(wake, _CHUNK)
                elif not self._handle(fd, events):
                    poller.unregister(fd)

    def _handle(self, fd: int, events: int) -> bool:
        """Serve one ready pipe; False when it is done with (closed, or all written)."""
        if fd == self._stdin_fd:
            if self._write(fd, events):
                return True
            self._stdin_fd = None
            self._close_stdin()
            return False
        buffer = self._pending.get(fd)
        if buffer is None or self._read(buffer):
            return buffer is not None
        del self._pending[fd]
        if buffer is self._status and buffer.at is not None and self._sample is not None:
            # The harness reported and closed its status pipe: sample it while it runs.
            self._next_sample = time.monotonic() + self._interval
        return False

    def _read(self, buffer: CappedBuffer) -> bool:
        """Read what is ready into ``buffer``; False at the end of the pipe."""
        try:
            chunk = os.read(buffer.fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        buffer.consume(chunk)
        return True

    def _write(self, fd: int, events: int) -> bool:
        """Write what the stdin pipe takes now; False once all is written or it is closed."""
        if not events & _WRITABLE:
            return True
        try:
            written = os.write(fd, self._body[:_CHUNK])
        except BlockingIOError:
            return True
        except OSError:
            return False  # the process is gone, or closed its stdin
        self._body = self._body[written:]
        return bool(self._body)

    def _open_stdin(self) -> int | None:
        if self._stdin is None:
            return None
        try:
            fd = self._stdin.fileno()
            os.set_blocking(fd, False)
        except (OSError, ValueError):
            self._close_stdin()
            return None
        return fd

    def _close_stdin(self) -> None:
        stdin, self._stdin = self._stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    def _expire(self) -> None:
        if self._on_expiry is not None:
            with contextlib.suppress(Exception):  # the draining goes on whatever it raised
                self._on_expiry()

    def _sample_now(self) -> None:
        if self._sample is not None:
            with contextlib.suppress(Exception):
                self._sample()

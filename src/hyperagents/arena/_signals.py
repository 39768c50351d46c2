"""An interrupt seen by every thread the moment it comes.

Python runs a signal's handler (the :class:`KeyboardInterrupt` of Ctrl-C, and of SIGTERM under
the command line) in the main thread only, when it next runs Python code; a main thread that
waits for the arena's workers may take a while (the kernel may deliver the signal to a worker
thread, and the waiting main thread only looks every fraction of a second). A worker that asks
in that time whether to start its agent's next step must already hear "no".

:class:`SignalWatch` asks the interpreter to write each signal it catches to a pipe
(:func:`signal.set_wakeup_fd`; the interpreter's C-level handler writes it at once, in the
thread that received the signal), which any thread reads without blocking. It works in the
main thread only (elsewhere signals do not reach Python code either), and only while no one
else uses the wake-up descriptor (an event loop): otherwise it sees nothing and the stop comes
from the :class:`KeyboardInterrupt` alone.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SignalWatch"]

#: The signals that interrupt an arena (SIGTERM: under the command line).
_INTERRUPTS = frozenset({int(signal.SIGINT), int(signal.SIGTERM)})


class SignalWatch:
    """Whether SIGINT or SIGTERM came while :meth:`watching` (see the module docstring)."""

    def __init__(self) -> None:
        self._pipe: tuple[int, int] | None = None
        self._came = False
        self._lock = threading.Lock()

    @contextmanager
    def watching(self) -> Iterator[SignalWatch]:
        """Watch from entry to exit (where the main thread enters; elsewhere: never sees one)."""
        self._came = False
        if not self._open():
            yield self
            return
        try:
            yield self
        finally:
            self._close()

    def came(self) -> bool:
        """Whether an interrupt came since :meth:`watching` was entered (any thread may ask)."""
        with self._lock:
            if self._came or self._pipe is None:
                return self._came
            try:
                received = os.read(self._pipe[0], 4096)
            except (BlockingIOError, OSError):
                return False
            self._came = any(number in _INTERRUPTS for number in received)
            return self._came

    def _open(self) -> bool:
        """Make the pipe the interpreter's wake-up descriptor; whether it now is."""
        if threading.current_thread() is not threading.main_thread():
            return False
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        try:
            previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # pragma: no cover - not the main interpreter
            previous = None
        if previous != -1:  # someone else's (an event loop): give it back
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read)
            os.close(write)
            return False
        with self._lock:
            self._pipe = (read, write)
        return True

    def _close(self) -> None:
        """Give the wake-up descriptor back and close the pipe."""
        signal.set_wakeup_fd(-1)
        with self._lock:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            os.close(pipe[0])
            os.close(pipe[1])

"""Interrupts that land where the engine can take them.

Ctrl-C (SIGINT) and, under the CLI, SIGTERM raise :class:`KeyboardInterrupt` in the main
thread between any two bytecodes. Raised while the engine is between two storage writes that
belong together — a child recorded but not yet handed to a worker, a finished job taken off the
in-flight list but not yet looked at — it would leave that child unfinished although the engine
promises to finish its work in flight. :class:`DeferredInterrupts` holds such an interrupt back
until the engine next waits (:meth:`DeferredInterrupts.allowed`), where it is raised at once.
A second interrupt after the first was raised (or while it is held) is raised where it lands:
that is the "interrupt again to abort" a person asks for.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], Any]


class DeferredInterrupts:
    """While entered (in the main thread; elsewhere it does nothing), the Python handlers of
    SIGINT and SIGTERM run as before, but a :class:`KeyboardInterrupt` they raise outside an
    :meth:`allowed` block is held and raised at the next :meth:`allowed` or
    :meth:`raise_pending`. Handlers that are not Python functions (ignored, default) are left
    alone. The previous handlers are restored on exit."""

    def __init__(self) -> None:
        self._previous: dict[int, Handler] = {}
        self._open = 0
        self._pending = False
        self._seen = 0

    def install(self) -> None:
        """Wrap the handlers (what entering does)."""
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread
        for signum in _SIGNALS:
            previous = signal.getsignal(signum)
            if callable(previous):
                self._previous[signum] = previous
                signal.signal(signum, self._wrap(previous))

    def restore(self) -> None:
        """Put the previous handlers back (what leaving does); an interrupt still held is
        dropped (see :attr:`pending`)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __enter__(self) -> DeferredInterrupts:
        self.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()

    @property
    def pending(self) -> bool:
        """Whether an interrupt is being held."""
        return self._pending

    def raise_pending(self) -> None:
        """Raise the held interrupt, if any.

        Raises:
            KeyboardInterrupt: One was held.
        """
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt

    @contextmanager
    def allowed(self) -> Iterator[None]:
        """A block (a wait) where an interrupt is raised where it lands; one held is raised on
        entry."""
        self.raise_pending()
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1

    def _wrap(self, previous: Handler) -> Handler:
        def handler(signum: int, frame: FrameType | None) -> None:
            try:
                previous(signum, frame)
            except KeyboardInterrupt:
                self._seen += 1
                if self._open or self._seen > 1:
                    raise
                self._pending = True

        return handler


#: Seconds a waiting main thread sleeps at most before it looks at its signals again.
_AWAKE_SECONDS = 0.25


def wait_awake(futures: Iterable[Future[Any]]) -> set[Future[Any]]:
    """Wait until at least one of ``futures`` is done; return those done.

    The same as ``concurrent.futures.wait(..., return_when=FIRST_COMPLETED)``, but the waiting
    thread wakes every :data:`_AWAKE_SECONDS`: the kernel may deliver SIGINT or SIGTERM to any
    thread of the process, and a main thread blocked without a timeout would then not run its
    handler (nor raise the :class:`KeyboardInterrupt`) until something it waits for is done,
    which for a long run is never.
    """
    pending = list(futures)
    while True:
        done, _ = wait(pending, timeout=_AWAKE_SECONDS, return_when=FIRST_COMPLETED)
        if done:
            return done

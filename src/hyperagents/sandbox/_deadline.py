"""The wall-clock limit of one sandboxed run, in one phase or two.

A plain run has one limit, counted from when its request is sent. A run that validates its
program before solving (a ``solve`` request with a ``validate`` part) has two: the validation
may take ``Limits.validate_time`` from the start, and once the harness's validation message
arrives the rest may take ``Limits.wall_time`` from that moment. Each part is thus held to the
limit it had when it ran in a process of its own, and a candidate is never given more than the
two together, whatever it sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Deadline"]


class Deadline:
    """A deadline that a validating run moves once, when its validation is over.

    Args:
        wall_time: Seconds the run (or, with ``validate_time``, its part after validation)
            may take.
        validate_time: Seconds its validation may take from the start (None: one phase).
    """

    def __init__(self, wall_time: float, validate_time: float | None = None) -> None:
        self._wall_time = wall_time
        self._validate_time = validate_time
        self._changed = threading.Condition()
        self._validating = validate_time is not None
        self._stopped = False
        self._at = time.monotonic() + self.limit
        self._listener: Callable[[], None] | None = None

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (without the lock held) whenever the deadline moves or stops
        (a thread that waits for it elsewhere, e.g. in a poll, wakes up to look again)."""
        self._listener = listener

    def _changed_now(self) -> None:
        if self._listener is not None:
            self._listener()

    @property
    def limit(self) -> float:
        """The seconds of the phase in force: the validation's, then the rest's."""
        if self._validating and self._validate_time is not None:
            return self._validate_time
        return self._wall_time

    @property
    def longest(self) -> float:
        """The most seconds the run may take: both phases in full."""
        return self._wall_time + (self._validate_time or 0.0)

    def start(self) -> None:
        """Start counting again from now (the request is about to be sent)."""
        with self._changed:
            self._at = time.monotonic() + self.limit
            self._changed.notify_all()
        self._changed_now()

    def validated(self) -> None:
        """The validation is over: the rest has ``wall_time`` from now (once; later calls,
        calls on a one-phase deadline, and calls once the run is over or killed, change
        nothing: a verdict read after the kill leaves the limit that killed it)."""
        with self._changed:
            if not self._validating or self._stopped or time.monotonic() >= self._at:
                return
            self._validating = False
            self._at = time.monotonic() + self._wall_time
            self._changed.notify_all()
        self._changed_now()

    def stop(self) -> None:
        """The run is over: :meth:`expired` returns False."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._changed_now()

    def remaining(self) -> float | None:
        """Seconds until the deadline now (0 or less: it has passed); None once the run is
        over (:meth:`stop`). Never waits."""
        with self._changed:
            return None if self._stopped else self._at - time.monotonic()

    def expired(self) -> bool:
        """Wait until the deadline passes (True) or the run is over (False)."""
        with self._changed:
            while not self._stopped:
                left = self._at - time.monotonic()
                if left <= 0:
                    return True
                self._changed.wait(left)
            return False

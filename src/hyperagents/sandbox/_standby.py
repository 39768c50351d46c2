"""Warm standbys: sandboxed fork servers started ahead of time, waiting for requests.

A :class:`StandbyPool` keeps up to a target number of them. It knows nothing of processes: it is
given how to start one, how to tell whether one can still serve, and how to discard one, so the
launcher (:class:`~hyperagents.sandbox._launcher.Launcher`) decides what a standby is.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["StandbyPool"]

logger = logging.getLogger("hyperagents")

T = TypeVar("T")


class StandbyPool(Generic[T]):
    """Up to :attr:`target` standbys, started in the background and taken one per run.

    One long-lived thread starts every standby: bubblewrap's ``--die-with-parent``
    (``PR_SET_PDEATHSIG``) fires when the *thread* that started a process exits, so a
    short-lived thread would take its standby with it. A standby that fails to start is logged
    and only costs a cold start later. Standbys no longer wanted (the pool was closed or its
    target lowered) are discarded, also those that finish starting afterwards.

    Args:
        start: Starts one standby (called in the pool's thread).
        alive: Whether a waiting standby can still take a request.
        discard: Stops a standby that will not be used and frees what it holds.
        name: The sandbox's name, for the log.
    """

    def __init__(
        self,
        *,
        start: Callable[[], T],
        alive: Callable[[T], bool],
        discard: Callable[[T], None],
        name: str,
    ) -> None:
        self._start, self._alive, self._discard, self._name = start, alive, discard, name
        self._target = 0
        self._idle: list[T] = []
        self._lock = threading.Lock()
        self._spawned = threading.Condition(self._lock)
        self._spawning = 0
        self._closed = False
        self._spawner: threading.Thread | None = None
        self._requests: queue.SimpleQueue[bool] = queue.SimpleQueue()

    @property
    def target(self) -> int:
        """How many standbys the pool keeps."""
        return self._target

    @property
    def closed(self) -> bool:
        """Whether the pool was closed (it starts nothing until :meth:`set_target`)."""
        return self._closed

    @property
    def waiting(self) -> int:
        """How many standbys are started and wait for a request now."""
        with self._lock:
            return len(self._idle)

    def set_target(self, count: int) -> None:
        """Keep ``count`` standbys (0: none; those still starting are discarded before this
        returns, so no idle process outlives the call). Reopens a closed pool."""
        with self._lock:
            self._target = max(0, int(count))
            self._closed = False
            surplus = self._idle[self._target :]
            del self._idle[self._target :]
        for standby in surplus:
            self._discard(standby)
        self.replenish()
        if self._target == 0:
            self._wait_for_spawns(timeout=15.0)

    def close(self) -> None:
        """Discard every standby and start no more until :meth:`set_target` is called again."""
        with self._lock:
            self._closed = True
            standbys, self._idle = self._idle, []
        for standby in standbys:
            self._discard(standby)
        self._wait_for_spawns(timeout=15.0)

    def take(self) -> T | None:
        """The oldest standby that is still alive (None: none waits); dead ones are discarded
        and replaced. The caller owns the standby: it gives it back (:meth:`put_back`), or
        discards it and calls :meth:`replenish` to have it replaced."""
        dead: list[T] = []
        taken: T | None = None
        with self._lock:
            while self._idle:
                standby = self._idle.pop(0)
                if self._alive(standby):
                    taken = standby
                    break
                dead.append(standby)
        for standby in dead:
            self._discard(standby)
        if dead:
            self.replenish()
        return taken

    def put_back(self, standby: T) -> None:
        """Give back a standby that served a request and can serve more (one that is no longer
        wanted, the pool being closed or full, is discarded)."""
        with self._lock:
            keep = self._wanted() and self._alive(standby)
            if keep:
                self._idle.append(standby)
        if not keep:
            self._discard(standby)
            self.replenish()

    def replenish(self) -> None:
        """Start standbys in the background until the pool holds its target."""
        with self._lock:
            missing = self._target - len(self._idle) - self._spawning
            if self._closed or missing <= 0:
                return
            self._spawning += missing
            if self._spawner is None or not self._spawner.is_alive():
                self._spawner = threading.Thread(
                    target=self._spawn_loop, daemon=True, name="hyperagents-standby"
                )
                self._spawner.start()
        for _ in range(missing):
            self._requests.put(True)

    def _wanted(self) -> bool:
        """Whether one more standby is wanted (call with the lock held)."""
        return not self._closed and len(self._idle) < self._target

    def _spawn_loop(self) -> None:
        while self._requests.get():
            self._spawn_one()

    def _spawn_one(self) -> None:
        standby: T | None = None
        keep = False
        try:
            with self._lock:  # no longer wanted (closed, or warm starts turned off)
                wanted = self._wanted()
            if wanted:
                standby = self._start()
        except Exception as exc:  # a failed standby only costs a cold start later
            logger.warning("could not start a warm %s sandbox: %s", self._name, exc)
        finally:
            with self._lock:
                keep = standby is not None and self._wanted()
                if keep and standby is not None:
                    self._idle.append(standby)
            if standby is not None and not keep:
                self._discard(standby)
            with self._spawned:
                self._spawning -= 1
                self._spawned.notify_all()

    def _wait_for_spawns(self, timeout: float) -> None:
        """Wait until no standby is being started or discarded (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._spawned:
            while self._spawning > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._spawned.wait(left)

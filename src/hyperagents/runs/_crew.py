"""The crew: several engines on one run, each in a process of its own.

One engine holds the run's engine slot (the *lead*, see :class:`~hyperagents.runs._lease.Lease`):
it starts the run, evaluates champions on the test split and records how the run ended. Any
number of others *join* it (``Run.optimize(join=True)``, ``hyperagents resume RUN --join``):
they share the run's generation target and take work by compare-and-set in the database, so
each generation is done once, whoever does it —

* a new generation is taken by creating its variant: a run has at most one variant per
  generation, so of engines racing for one, exactly one creates it (the others read the
  archive again and go on);
* unfinished work is taken by :meth:`~hyperagents.storages.BaseStorage.claim_variant` on the
  owner read, only when that owner is gone (a dead process on this host, or a heartbeat older
  than the grace period): the work of an engine killed mid-run is finished by the others;
* when the lead is gone, a member takes its slot over the same way and leads from then on.

Every engine, lead or member, is a row of the run's engines
(:meth:`~hyperagents.storages.BaseStorage.register_engine`) while it drives the run, and
stamps what it ran with its owner token and worker slot (``engine``, ``worker`` on variants and
evaluations), which the dashboard and ``hyperagents status`` show.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from hyperagents.exceptions import RunStateError
from hyperagents.storages import EngineStatus

if TYPE_CHECKING:
    from hyperagents.runs._context import RunContext

__all__ = ["Crew", "check_joinable", "slot_initializer", "worker_slot"]

logger = logging.getLogger("hyperagents")

_slots = threading.local()


def worker_slot() -> int | None:
    """The worker slot (0, 1, …) of the engine's pool thread running now (None: not a pool
    thread, e.g. the thread that called :meth:`Run.optimize` or :meth:`Run.tell`)."""
    slot: int | None = getattr(_slots, "slot", None)
    return slot


def slot_initializer() -> Callable[[], None]:
    """An initializer for a pool's threads: each thread takes the next slot, from 0."""
    counter = itertools.count()
    lock = threading.Lock()

    def take() -> None:
        with lock:
            _slots.slot = next(counter)

    return take


def check_joinable(ctx: RunContext) -> None:
    """Refuse to join a run whose storage cannot take several writers at once.

    Raises:
        RunStateError: The storage is SQLite (one writer at a time); nothing was changed.
    """
    if not ctx.storage.joinable:
        raise RunStateError(
            f"run {ctx.name!r}: engines cannot join a run stored in SQLite, which has one "
            "writer at a time (store runs in PostgreSQL to drive one with several engines); "
            "nothing was changed"
        )


class Crew:
    """This engine's row among the run's engines: joined at the start of a drive, kept alive
    by the heartbeat, left at its end.

    Args:
        ctx: The run context (its owner token names the engine).
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self.joined = False

    def register(self, workers: int) -> None:
        """Record that this engine works on the run now, with ``workers`` slots."""
        ctx = self._ctx
        ctx.storage.register_engine(
            ctx.run_id, ctx.owner, host=socket.gethostname(), pid=os.getpid(), workers=workers
        )
        self.joined = True

    def beat(self) -> None:
        """Say this engine is alive (registering again if another engine marked it lost)."""
        ctx = self._ctx
        if self.joined and not ctx.storage.beat_engine(ctx.run_id, ctx.owner):
            logger.warning("run %r: this engine was marked lost by another", ctx.name)

    def leave(self) -> None:
        """Record that this engine left the run (best effort: its heartbeat expires anyway)."""
        ctx = self._ctx
        if self.joined:
            with contextlib.suppress(Exception):
                ctx.storage.leave_engine(ctx.run_id, ctx.owner)
            self.joined = False

    def mark_lost(self, owners: Iterable[str]) -> None:
        """Record that the engines ``owners`` are gone (their work was taken over)."""
        ctx = self._ctx
        for owner in set(owners) - {ctx.owner, ""}:
            with contextlib.suppress(Exception):
                if ctx.storage.leave_engine(ctx.run_id, owner, status=EngineStatus.LOST):
                    ctx.event("engine.lost", f"engine {owner} stopped beating; work taken over")

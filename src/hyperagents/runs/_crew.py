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
import math
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from hyperagents.exceptions import RunStateError
from hyperagents.runs._owner import heartbeat_grace, owner_is_dead
from hyperagents.runs._scope import LeaseScope
from hyperagents.storages import BaseStorage, EngineStatus, RunRecord, VariantRecord

if TYPE_CHECKING:
    from hyperagents.runs._context import RunContext

__all__ = [
    "ENGINE_COLUMNS",
    "Crew",
    "check_joinable",
    "engine_label",
    "run_engines",
    "slot_initializer",
    "worker_slot",
]

#: The fields of :func:`run_engines`' rows, in the order faces show them.
ENGINE_COLUMNS = (
    "engine",
    "host",
    "pid",
    "workers",
    "status",
    "lead",
    "heartbeat_age",
    "variants",
    "joined_at",
    "left_at",
)

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

    def __init__(self, ctx: LeaseScope) -> None:
        self._ctx = ctx
        self._workers = 1
        self.joined = False

    def register(self, workers: int) -> None:
        """Record that this engine works on the run now, with ``workers`` slots."""
        ctx = self._ctx
        ctx.storage.register_engine(
            ctx.run_id, ctx.owner, host=socket.gethostname(), pid=os.getpid(), workers=workers
        )
        self._workers = workers
        self.joined = True

    def beat(self) -> None:
        """Say this engine is alive (registering again if another engine marked it lost: it
        missed beats, and its work in flight may have been taken over; it goes on)."""
        ctx = self._ctx
        if self.joined and not ctx.storage.beat_engine(ctx.run_id, ctx.owner):
            logger.warning("run %r: another engine marked this one lost", ctx.name)
            self.register(self._workers)

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


def engine_label(owner: str | None) -> str:
    """A short name of an engine owner token: ``host:pid`` (the token itself if malformed;
    ``""`` for None)."""
    if not owner:
        return ""
    parts = owner.split("|")
    return f"{parts[0]}:{parts[1]}" if len(parts) == 4 else owner


def run_engines(
    storage: BaseStorage,
    record: RunRecord,
    *,
    variants: Sequence[VariantRecord] | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The run's engines as faces show them (the fields of :data:`ENGINE_COLUMNS`, plus
    ``owner``): ``status`` is ``active``, ``left``, ``lost`` (another engine took its work
    over) or ``dead`` (still marked active, but its process is gone or it stopped beating);
    ``lead`` says whether it holds the run's engine slot; ``variants`` counts the children
    whose meta agent it ran.

    Raises:
        RunNotFoundError: No such run.
    """
    rows = storage.list_engines(record.id)
    made = Counter(
        v.engine for v in (storage.list_variants(record.id) if variants is None else variants)
    )
    at = time.time() if now is None else now
    grace = heartbeat_grace(record)
    shown = []
    for e in rows:
        age = max(0.0, at - e.heartbeat_at.timestamp())
        status = e.status.name.lower()
        if e.status is EngineStatus.ACTIVE and (
            owner_is_dead(e.owner) or not (math.isfinite(age) and age < grace)
        ):
            status = "dead"
        shown.append(
            {
                "engine": engine_label(e.owner),
                "owner": e.owner,
                "host": e.host,
                "pid": e.pid,
                "workers": e.workers,
                "status": status,
                "lead": bool(record.engine) and record.engine == e.owner,
                "heartbeat_age": round(age, 1),
                "variants": made.get(e.owner, 0),
                "joined_at": e.joined_at.isoformat(),
                "left_at": None if e.left_at is None else e.left_at.isoformat(),
            }
        )
    return shown

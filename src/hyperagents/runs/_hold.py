"""A run that a level's own loop drives (the arena's rounds), held the way the engine holds its
runs: :func:`hold_run`.

The loop's process claims the run's engine slot with the engine's lease (refused while another
live engine holds it; taken over from a holder that is gone: a dead process on this host, or a
heartbeat older than the grace period), registers as the run's engine, beats while it plays,
and gives the slot back when it ends, recording how: ``complete``, ``stopped`` (a stop request,
an interrupt, SIGTERM under the command line) or ``failed``. Between two steps the loop asks
:meth:`HeldRun.stop_reason`: a stop request (``hyperagents stop``, the dashboard's Stop) or
another engine having taken the run over ends it there. So faces show its engine, a killed
process's run is recognisably dead, and ``hyperagents resume`` continues it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hyperagents.runs._config import RunConfig
from hyperagents.runs._lease import Heartbeat, Lease
from hyperagents.runs._owner import new_owner_token
from hyperagents.storages import (
    BaseStorage,
    EventSpec,
    RunRecord,
    RunStatus,
    VariantRecord,
    VariantState,
)

__all__ = ["HeldRun", "hold_run"]

logger = logging.getLogger("hyperagents")

#: Why a loop stops when the run was marked stopped while it played.
STOP_REQUESTED = "stopped by request"
#: Why a loop stops when another engine took its run over.
TAKEN_OVER = "taken over by another engine"


@dataclass(frozen=True)
class _Times:
    heartbeat_interval: float
    heartbeat_grace: float


class HeldRun:
    """A run whose engine slot this process holds while a level's own loop drives it (what
    :func:`hold_run` yields; the lease's scope).

    Attributes:
        storage: The run's storage.
        run_id: Its id.
        name: Its name.
        owner: The owner token this process holds it with.
        config: The heartbeat times.
        status: How the drive ends if nothing goes wrong (see :meth:`end`).
        message: Why, in words.
    """

    def __init__(self, storage: BaseStorage, record: RunRecord, *, times: _Times) -> None:
        self.storage = storage
        self.run_id = record.id
        self.name = record.name
        self.owner = new_owner_token()
        self.config = times
        self.status = RunStatus.COMPLETE
        self.message = "done"
        self._elapsed_before = record.elapsed_seconds
        self._started = time.monotonic()
        self._lost = threading.Event()

    def record(self) -> RunRecord:
        """The run's record as stored now."""
        return self.storage.get_run(self.run_id)

    def variants(self, states: Iterable[VariantState] | None = None) -> list[VariantRecord]:
        """The run's variants (only those in ``states``, if given)."""
        return self.storage.list_variants(self.run_id, states=states)

    def store_elapsed(self, seconds: float) -> None:
        """Store the seconds engines have spent on the run."""
        self.storage.set_elapsed_seconds(self.run_id, seconds)

    def event(
        self, kind: str, message: str = "", variant_id: int | None = None, **data: Any
    ) -> None:
        """Record an event of the run."""
        self.storage.add_event(self.run_id, kind, message, variant_id=variant_id, data=data or None)

    def spent(self) -> float:
        """Seconds engines have spent on the run, this drive included."""
        return self._elapsed_before + (time.monotonic() - self._started)

    def lost(self) -> None:
        """Note that another engine took the run over (the heartbeat calls it)."""
        self._lost.set()

    def stop_reason(self) -> str | None:
        """Why the loop should stop before its next step: another engine took the run over, or
        someone asked it to stop (the run is marked stopped); None: go on."""
        if self._lost.is_set():
            return TAKEN_OVER
        if self.record().status is RunStatus.STOPPED:
            return STOP_REQUESTED
        return None

    def end(self, status: RunStatus, message: str) -> None:
        """Say how the drive ends (recorded when the slot is given back)."""
        self.status, self.message = status, message


def _times(interval: float | None, grace: float | None) -> _Times:
    defaults = RunConfig.parse({})
    return _Times(
        interval if interval is not None else defaults.heartbeat_interval,
        grace if grace is not None else defaults.heartbeat_grace,
    )


def _claim(lease: Lease, held: HeldRun, started: str, workers: int) -> None:
    """Claim the run's engine slot, mark it running and register as its engine (the slot is
    given back if that fails).

    Raises:
        RunStateError: Another live engine drives the run (nothing was changed).
    """
    lease.claim_engine()
    try:
        held.storage.set_run_status(
            held.run_id, RunStatus.RUNNING, event=EventSpec("run.started", started)
        )
        lease.crew.register(workers)
    except BaseException:
        lease.give_back()
        raise


@contextlib.contextmanager
def hold_run(
    storage: BaseStorage,
    run_id: int,
    *,
    started: str,
    interval: float | None = None,
    grace: float | None = None,
    workers: int = 1,
) -> Iterator[HeldRun]:
    """Hold the run's engine slot while a level's own loop drives it in the block (see the
    module docstring).

    The drive ends as :meth:`HeldRun.end` says (default: complete); ``stopped`` after a
    :class:`KeyboardInterrupt` (an interrupt, SIGTERM under the command line), ``failed``
    after any other error, which is raised again. The slot is given back in every case.

    Args:
        storage: The run's storage.
        run_id: The run.
        started: What the ``run.started`` event says.
        interval: Seconds between heartbeats (default: the run engine's).
        grace: Seconds without a heartbeat after which an engine on another host counts as
            gone (default: the run engine's).
        workers: The workers the loop plays with (registered with its engine, as the run
            engine registers its own).

    Raises:
        RunStateError: Another live engine drives the run, or claimed it first (nothing was
            changed).
        RunNotFoundError: No such run.
    """
    held = HeldRun(storage, storage.get_run(run_id), times=_times(interval, grace))
    lease = Lease(held)
    _claim(lease, held, started, workers)
    heartbeat = Heartbeat(lease, held, in_flight=list, spent=held.spent, on_lost=held.lost)
    heartbeat.start()
    aborted = False
    try:
        yield held
    except BaseException as exc:
        aborted = True
        if isinstance(exc, KeyboardInterrupt):
            held.end(RunStatus.STOPPED, "interrupted")
        else:
            held.end(RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        heartbeat.stop()
        try:
            lease.let_go(held.status, held.message, held.spent())
        except Exception as exc:
            if not aborted:
                raise
            # Storage fails too: keep the error that ended the drive; the run shows
            # "running (engine dead)" once this process has exited, and resumes.
            logger.error("could not record the end of run %r: %s", held.name, exc)

"""Stopping a run from any process: gracefully, or at once (the kill switch)."""

from __future__ import annotations

import os
import signal
import time

from hyperagents.exceptions import RunStateError
from hyperagents.runs._owner import EngineState, engine_state, live_local_pid, owner_is_dead
from hyperagents.storages import BaseStorage, EventSpec, RunRecord, RunStatus

__all__ = ["request_stop"]

#: Seconds to wait for a killed engine process to be gone.
_KILL_WAIT = 10.0


def request_stop(store: BaseStorage, record: RunRecord, *, who: str, now: bool = False) -> str:
    """Stop a run from any process; return what was done, in words.

    Graceful (the default): the run is marked stopped; its engine notices, finishes the work in
    flight, records it and exits. With ``now``, the engine process is also killed (SIGKILL) at
    once, with the sandboxed agents it runs (bubblewrap's die-with-parent): the work in flight is
    lost like in a crash, and a resume redoes it from the last recorded step, so nothing recorded
    is lost or done twice. Both are recorded as events saying who asked. A running run that no
    engine drives (its engine died without letting go) is only marked stopped, and the answer
    says so.

    Raises:
        RunStateError: The run is not running; or ``now`` was asked and its engine runs on
            another host (the graceful stop is still recorded then).
    """
    holder = record.engine
    pid = live_local_pid(holder) if holder else None
    stopping = record.status is RunStatus.STOPPED and pid is not None
    if record.status is not RunStatus.RUNNING and not (now and stopping):
        raise RunStateError(f"run {record.name!r} is not running ({record.status.name.lower()})")
    if record.status is RunStatus.RUNNING:
        changed = store.set_run_status(
            record.id,
            RunStatus.STOPPED,
            expected=RunStatus.RUNNING,
            event=EventSpec(
                "run.stop_requested",
                f"{'immediate' if now else 'graceful'} stop requested by {who}",
                {"by": who, "now": now},
            ),
        )
        if not changed:
            raise RunStateError(f"run {record.name!r} stopped meanwhile")
    state = engine_state(record)
    if state is not EngineState.LIVE and (pid is None or not now):
        return _no_engine(store, record, state)
    if not now:
        return "stop requested: the engine finishes the work in flight, then stops"
    if pid is None:
        raise RunStateError(
            f"the engine of {record.name!r} runs on another host "
            f"({str(holder).split('|')[0]}): it stops gracefully; kill it there to stop at once"
        )
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped (the engine had just exited)"
    deadline = time.monotonic() + _KILL_WAIT
    while time.monotonic() < deadline and not owner_is_dead(str(holder)):
        time.sleep(0.05)
    if owner_is_dead(str(holder)):  # its slot is free: nothing says "running" any more
        store.release_run_engine(record.id, str(holder))
    store.add_event(
        record.id,
        "run.killed",
        f"engine process {pid} killed by {who}; the work in flight is redone on resume",
        data={"by": who, "pid": pid},
    )
    return f"stopped at once: engine process {pid} killed (resume redoes the work in flight)"


def _no_engine(store: BaseStorage, record: RunRecord, state: EngineState) -> str:
    """Say that no engine drives the run (now marked stopped); a holder that is certainly dead
    (its process is gone from this host) lets go of the run, so nothing says it runs."""
    holder = record.engine
    if holder and owner_is_dead(holder):
        store.release_run_engine(record.id, holder)
    why = " (its engine is dead)" if state is EngineState.DEAD else ""
    return (
        f"no engine drives it{why}: it is marked stopped; "
        f"`hyperagents resume {record.name}` continues it"
    )

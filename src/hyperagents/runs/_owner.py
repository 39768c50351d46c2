"""Owner tokens: which engine process holds a piece of work, and whether it is still alive.

Also the one liveness decision every face shows (CLI, dashboard): whether the engine holding a
run drives it now (:func:`engine_state`, :func:`engine_alive`, :func:`status_label`).
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from enum import StrEnum

from hyperagents.storages import RunRecord, RunStatus

__all__ = [
    "EngineState",
    "engine_alive",
    "engine_state",
    "heartbeat_grace",
    "live_local_pid",
    "new_owner_token",
    "owner_is_dead",
    "status_label",
]


def _process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), None if unknown or not running."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):  # a zombie has finished running
        return None
    return fields[19] if len(fields) > 19 else None


def new_owner_token() -> str:
    """A token naming this process: ``host|pid|start-time|nonce``."""
    pid = os.getpid()
    return f"{socket.gethostname()}|{pid}|{_process_start_time(pid) or '-'}|{uuid.uuid4().hex[:8]}"


def owner_is_dead(token: str) -> bool:
    """Whether ``token`` names a process on *this* host that no longer runs.

    Tokens from other hosts (or malformed ones) are never declared dead here; for those, the
    heartbeat grace period decides.
    """
    local = _local(token)
    if local is None:
        return False
    pid, stamp = local
    started = _process_start_time(pid)
    if started is None:
        return True
    return stamp != "-" and started != stamp


def _local(token: str) -> tuple[int, str] | None:
    """``(pid, start time)`` of a well-formed token naming a process of *this* host."""
    parts = token.split("|")
    if len(parts) != 4 or parts[0] != socket.gethostname() or not os.path.isdir("/proc/self"):
        return None
    try:
        return int(parts[1]), parts[2]
    except ValueError:
        return None


def live_local_pid(token: str) -> int | None:
    """The process id ``token`` names when that very process runs on this host now (its start
    time matches, so a reused pid is never taken for it); None otherwise."""
    local = _local(token)
    if local is None or local[1] == "-" or owner_is_dead(token):
        return None
    return local[0]


class EngineState(StrEnum):
    """Whether an engine drives a run now."""

    LIVE = "live"  #: an engine holds the run, its process runs and it beats
    DEAD = "dead"  #: the holder's process is gone (this host), or it stopped beating
    NONE = "none"  #: no engine holds the run


def heartbeat_grace(record: RunRecord) -> float:
    """The run's ``heartbeat_grace`` (the default for a config another version wrote)."""
    from hyperagents.runs._config import RunConfig

    try:
        return RunConfig.parse(dict(record.config)).heartbeat_grace
    except Exception:  # a config written by another version: use the default
        return RunConfig.parse({}).heartbeat_grace


def engine_state(
    record: RunRecord, *, grace: float | None = None, now: float | None = None
) -> EngineState:
    """Whether the engine holding ``record`` drives it now, whatever the run's status (after a
    stop request the engine finishes its work in flight and lets go when it exits).

    Args:
        record: The run.
        grace: Seconds without a heartbeat after which a holder counts as dead (default: the
            run's ``heartbeat_grace``).
        now: The time (seconds since the epoch) to judge at (default: now).
    """
    holder = record.engine
    if not holder:
        return EngineState.NONE
    if owner_is_dead(holder):
        return EngineState.DEAD
    beat = record.engine_heartbeat_at
    if beat is None:
        return EngineState.DEAD
    limit = heartbeat_grace(record) if grace is None else grace
    age = (time.time() if now is None else now) - beat.timestamp()
    return EngineState.LIVE if math.isfinite(age) and age < limit else EngineState.DEAD


def engine_alive(record: RunRecord, *, grace: float | None = None) -> bool:
    """Whether an engine is driving the run now (see :func:`engine_state`)."""
    return engine_state(record, grace=grace) is EngineState.LIVE


def status_label(record: RunRecord) -> str:
    """The run's status in words, saying when it does not match what happens: ``running
    (engine dead)`` / ``running (no engine)`` for a running run nobody drives (resume it),
    ``stopping`` for a stopped run whose engine is still finishing its work."""
    status = record.status.name.lower()
    state = engine_state(record)
    if record.status is RunStatus.RUNNING and state is EngineState.DEAD:
        return "running (engine dead)"
    if record.status is RunStatus.RUNNING and state is EngineState.NONE:
        return "running (no engine)"
    if record.status is RunStatus.STOPPED and state is EngineState.LIVE:
        return "stopping"
    return status

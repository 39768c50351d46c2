"""Owner tokens: which engine process holds a piece of work, and whether it is still alive."""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["live_local_pid", "new_owner_token", "owner_is_dead"]


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

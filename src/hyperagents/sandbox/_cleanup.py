"""Process cleanup: what a sandboxed run started dies with it.

A run's harness is started in a session (and process group) of its own; after the run, and at
the wall-clock limit, the whole group is killed (:func:`kill_group`). A child that left the group
(``setsid``, a daemonised helper) is found another way: by the run's private uid
(:func:`kill_user_processes`) or, without one, by its working directory inside the run's
workspace (:func:`kill_processes_in`). Every function here is best effort and never raises for
a process that is already gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "kill_group",
    "kill_processes_in",
    "kill_user_processes",
    "processes_in",
    "processes_of",
]


def _proc_entries() -> list[str]:
    """Process ids listed in /proc. Listing /proc can fail transiently while processes come and
    go (seen as ENOTDIR here): retry, then give up (every caller is best effort)."""
    for attempt in range(5):
        try:
            return [entry for entry in os.listdir("/proc") if entry.isdigit()]
        except OSError:
            time.sleep(0.005 * (attempt + 1))
    return []


def processes_of(uid: int) -> list[int]:
    """Processes whose real uid is ``uid``."""
    pids = []
    for entry in _proc_entries():
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as handle:
                for line in handle:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except (OSError, ValueError):
            continue
    return pids


def processes_in(directory: Path) -> list[int]:
    """Processes (not this one) whose working directory is inside ``directory``."""
    target = os.path.realpath(directory)
    me = os.getpid()
    pids = []
    for entry in _proc_entries():
        if int(entry) == me:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == target or cwd.startswith(target + "/"):
            pids.append(int(entry))
    return pids


def _kill_rounds(find: Callable[[], list[int]], rounds: int) -> int:
    """SIGKILL what ``find`` returns until it returns nothing (children may still be forking
    when the first round runs); return how many were found in all."""
    found = 0
    for _ in range(rounds):
        pids = find()
        if not pids:
            break
        found += len(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return found


def kill_processes_in(directory: Path, *, rounds: int = 3) -> int:
    """SIGKILL processes of this user whose working directory is inside ``directory``."""
    return _kill_rounds(lambda: processes_in(directory), rounds)


def kill_user_processes(uid: int, *, rounds: int = 5) -> int:
    """SIGKILL every process whose real uid is ``uid``; return how many were found."""
    return _kill_rounds(lambda: processes_of(uid), rounds)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (a sandboxed process started in its own
    session): whatever the process left in its group dies with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)

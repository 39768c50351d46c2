"""Measuring a sandboxed harness from outside: CPU time and peak memory read from ``/proc``.

Agent code runs in the harness's process, so anything the harness says about itself could be
forged. The engine instead reads the kernel's accounts of the harness process (``/proc/PID/stat``
and ``/proc/PID/status``), which nothing inside the sandbox can write.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

__all__ = ["UsageProbe", "descendant_harness"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc/PID/task/*/children``, else a scan of /proc)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    readable = False
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found.extend(int(p) for p in handle.read().split())
            readable = True
    if readable:
        return found
    for entry in os.listdir("/proc"):  # kernels without CONFIG_PROC_CHILDREN
        if entry.isdigit() and _parent(int(entry)) == pid:
            found.append(int(entry))
    return found


def _parent(pid: int) -> int | None:
    stat = _stat_fields(pid)
    return int(stat[1]) if stat else None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    end = raw.rfind(b")")  # the command name may hold spaces and parentheses
    if end < 0:
        return None
    return raw[end + 2 :].decode("ascii", "replace").split()


def descendant_harness(root: int, monitor_name: str) -> int | None:
    """The first process below ``root`` whose command is not ``monitor_name`` (bubblewrap's
    monitor and its PID-namespace init are ``bwrap``; the harness is the first other one).

    Asked when the engine first hears from the harness (its status report or its first
    message): processes the agent forks are the harness's children, not its siblings, and the
    lowest pid is taken among siblings, so the harness is still the one found.
    """
    current = root
    for _ in range(8):
        kids = _children(current)
        if not kids:
            return None
        current = min(kids)
        try:
            with open(f"/proc/{current}/comm", encoding="utf-8", errors="replace") as handle:
                name = handle.read().strip()
        except OSError:
            return None
        if name != monitor_name:
            return current
    return None


class UsageProbe:
    """CPU seconds (the process and its reaped children) and peak resident memory of one
    process, read from ``/proc``; remembers the last reading so a late sample after the process
    has gone still returns what was last seen.
    """

    def __init__(
        self, pid: int | None = None, *, resolve: Callable[[], int | None] | None = None
    ) -> None:
        self._pid = pid
        self._resolve = resolve
        self._lock = threading.Lock()
        self.cpu: float | None = None
        self.peak_mb = 0.0

    @property
    def pid(self) -> int | None:
        """The process watched (None until known)."""
        return self._pid

    def sample(self) -> float | None:
        """Read the process's CPU time now (keeps the peak memory); None if never readable."""
        with self._lock:
            if self._pid is None and self._resolve is not None:
                # Found on first use: whichever of the status report or the first message
                # the engine reads first (both come before the harness may exit).
                self._pid, self._resolve = self._resolve(), None
            pid = self._pid
            if pid is None:
                return self.cpu
            fields = _stat_fields(pid)
            if fields is not None and len(fields) > 14:
                with contextlib.suppress(ValueError):
                    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
                    cpu = ticks / _TICKS
                    self.cpu = cpu if self.cpu is None else max(self.cpu, cpu)
            self.peak_mb = max(self.peak_mb, _peak_mb(pid))
            return self.cpu


def _peak_mb(pid: int) -> float:
    """Peak resident set size (``VmHWM``) of ``pid`` in MiB, 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0

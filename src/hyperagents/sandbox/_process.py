"""The ``process`` sandbox: a separate, resource-limited process with a scrubbed environment."""

from __future__ import annotations

import functools
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._cleanup import kill_processes_in, kill_user_processes
from hyperagents.sandbox._hiding import hidden_locations, plan_hiding
from hyperagents.sandbox._launcher import Launcher
from hyperagents.sandbox._provision import interpreter_dirs

logger = logging.getLogger("hyperagents")

__all__ = [
    "UNSAFE_PROCESS_SANDBOX_ENV",
    "ProcessSandbox",
    "unsafe_process_sandbox_allowed",
]


def _usable_by_others(path: Path, *, ancestors: bool = True) -> bool:
    """Whether a user with no special rights can reach and read ``path`` (``ancestors``:
    False checks the directory itself only, for one the harness makes reachable)."""
    try:
        current = path.resolve()
        mode = current.stat().st_mode
        if not (mode & stat.S_IROTH and mode & stat.S_IXOTH):
            return False
        for parent in current.parents if ancestors else ():
            if not parent.stat().st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


@functools.cache
def _mount_namespaces_work(python: str) -> bool:
    """Whether the harness (run as root by ``python``) can make a private mount namespace."""
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None, use_errno=True).unshare(0x20000))"
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", probe], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


#: The environment variable (``1``) that lets the process sandbox run agent code as root.
UNSAFE_PROCESS_SANDBOX_ENV = "HYPERAGENTS_UNSAFE_PROCESS_SANDBOX"


def unsafe_process_sandbox_allowed() -> bool:
    """Whether :data:`UNSAFE_PROCESS_SANDBOX_ENV` opts in to the unisolated process sandbox."""
    value = os.environ.get(UNSAFE_PROCESS_SANDBOX_ENV, "").strip().lower()
    return value in ("1", "true", "yes", "on")


class ProcessSandbox(Launcher):
    """Runs the harness in a child process in its own session with rlimits and a hard kill.

    The child gets a scrubbed environment (no API keys or user settings), the workspace as its
    current directory and home, and limits on CPU time, address space, process count and file
    size that the harness applies to itself before any agent code is imported. The whole process
    group is killed at the wall-clock limit and again after the run. The harness drops every
    capability and installs a system-call filter (no new namespaces, mounts, ptrace…).

    When the engine runs as root, the harness isolates itself before importing agent code: an
    empty network namespace, private mount and IPC namespaces (a private, sized ``/tmp`` and
    ``/dev/shm``; directories other users cannot traverse, such as ``/root``, covered by an empty
    tmpfs in which only the interpreter and the workspace are bound again; the hyperagents package
    and the task plug-ins' files covered; a ``/proc`` on which it sees only its own processes)
    and an unprivileged uid of its own; after the run every process of that uid is killed (so a
    child that left the process group with ``setsid`` dies too). It still sees the rest of the
    host's filesystem as any unprivileged user would: use the ``bwrap`` sandbox where you can.

    As root without that private uid (``isolate_user=False``, or an interpreter other users
    cannot read), agent code would keep root: it could read the engine's environment (API keys,
    database passwords) and files, and signal its processes. The sandbox refuses to run so unless
    the caller opts in explicitly (``unsafe=True``, ``HYPERAGENTS_UNSAFE_PROCESS_SANDBOX=1`` or
    ``--unsafe-process-sandbox``); a warning then names what is not isolated. When the engine is
    not root, agent code runs with the engine's own user and rights (the documented fallback).

    Args:
        python: Interpreter to run (default: the engine's own).
        isolate_user: Switch to a private uid (default: when the engine runs as root and the
            interpreter's own directories are readable by other users).
        warm: Fork servers to keep started ahead of time (each forks a fresh child per
            request).
        preload: Modules fork servers import ahead of time (e.g. ``("numpy",)``).
        hide: Host paths agent code must not see (the run's task), with a private uid; the task
            plug-ins and the hyperagents package are always hidden then.
        unsafe: Allow running agent code as root without a private uid (default: whether
            ``HYPERAGENTS_UNSAFE_PROCESS_SANDBOX`` is ``1``).

    Raises:
        SandboxError: As root without a private uid, and not allowed to run unsafely.
    """

    name = "process"

    def __init__(
        self,
        *,
        python: str | None = None,
        isolate_user: bool | None = None,
        warm: int = 0,
        preload: tuple[str, ...] = (),
        hide: Iterable[str] = (),
        unsafe: bool | None = None,
    ) -> None:
        super().__init__(python=python, isolate_user=isolate_user, preload=preload)
        self._reveal = sorted(
            {*interpreter_dirs(self.python), os.path.dirname(os.path.abspath(self.python))}
        )
        self._hidden: list[str] = []
        if self.isolates_user:
            planned = plan_hiding(hidden_locations(hide), keep=self._reveal)
            self._hidden = [path for path, _ in planned]
        if self.privileged and not self.isolates_user:
            self._refuse_or_warn(unsafe_process_sandbox_allowed() if unsafe is None else unsafe)
        if warm:
            self.set_warm(warm)

    def _refuse_or_warn(self, allowed: bool) -> None:
        """As root without a private uid: refuse, or warn of everything not isolated."""
        if not self._can_switch_user():
            why = (
                f"the Python installation ({os.path.realpath(sys.base_prefix)}) is not readable "
                "by other users, so the harness cannot switch to a private uid"
            )
        else:
            why = "isolate_user=False keeps agent code as root"
        if not allowed:
            raise SandboxError(
                f"the process sandbox refuses to run agent code as root: {why}. Agent code "
                "could read the engine's environment (API keys, database passwords) and files "
                "and signal its processes. Use the bwrap sandbox (apt-get install bubblewrap), "
                "or opt in to the unsafe mode with --unsafe-process-sandbox or "
                f"{UNSAFE_PROCESS_SANDBOX_ENV}=1"
            )
        logger.warning(
            "UNSAFE process sandbox (opted in): %s. Agent code runs as root (without "
            "capabilities): it can read and write every file root owns (the run database, "
            "credentials), read the engine's environment and command line in /proc (API keys, "
            "database URLs with passwords) and signal the engine's processes; its children that "
            "leave the process group may survive, and the process-count limit does not bind "
            "root. Isolated: the network (own namespace), new namespaces, mounts and ptrace "
            "(system-call filter). Use the bwrap sandbox.",
            why,
        )

    def _can_switch_user(self) -> bool:
        dirs = [Path(p) for p in interpreter_dirs(self.python)]
        if not all(_usable_by_others(p, ancestors=False) for p in dirs):
            return False
        if all(_usable_by_others(p) for p in dirs):
            return True
        # Above the interpreter lies a directory others cannot traverse (/root/.pyenv…): the
        # harness covers it in a private mount namespace, with only the interpreter bound again.
        return _mount_namespaces_work(self.python)

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        return [self.python, "-I", "-S", str(harness), fds], workspace

    def _request_extras(self) -> dict[str, Any]:
        extras: dict[str, Any] = {"unshare_network": self.privileged}
        if self.isolates_user:
            extras["private_mounts"] = {
                "tmpfs": ["/tmp", "/dev/shm"],
                "reveal": self._reveal,
                "hide": self._hidden,
                "proc": True,
            }
        return extras

    def _after(self, uid: int | None, directory: Path | None = None) -> None:
        if uid is not None:
            kill_user_processes(uid)
        elif directory is not None:
            # Without a private uid, find what escaped the process group by where it runs.
            kill_processes_in(directory)

    def _check_started(self, code: int, stderr: str) -> None:
        if code == 127 or ("No such file or directory" in stderr[-500:] and code == 2):
            raise SandboxError(f"the sandboxed interpreter did not start: {stderr.strip()[-300:]}")

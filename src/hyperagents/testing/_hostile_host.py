"""The host's side of a hostile case: processes it left behind, and what isolation the sandbox has.

:func:`stray_processes` finds a case's processes; :func:`network_probe` checks in the sandbox
itself that it has no network; :func:`sandbox_traits` lists the isolation properties a sandbox
documents. Private to :mod:`hyperagents.testing`: import these names from
:mod:`hyperagents.testing.hostile`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from hyperagents.sandbox import Limits, Sandbox
from hyperagents.testing._hostile_types import STRAY_GRACE, instance_outputs, recorded_reason

__all__ = [
    "PROBE_SOURCE",
    "kill_all",
    "network_probe",
    "sandbox_traits",
    "stray_processes",
    "wait_for_strays",
]


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def stray_processes(
    *, token: str | None = None, uid: int | None = None, cwd: Path | None = None
) -> list[int]:
    """Live processes (zombies excluded) with ``token`` in their command line, or owned by
    ``uid``, or whose working directory is ``cwd``; never this process."""
    found: list[int] = []
    where = os.path.realpath(cwd) if cwd is not None else None
    for attempt in range(5):  # listing /proc can fail transiently while processes churn
        try:
            entries = os.listdir("/proc")
            break
        except OSError:
            if attempt == 4:
                raise
            time.sleep(0.01 * (attempt + 1))
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        hit = False
        try:
            if token is not None:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    hit = token.encode() in handle.read()
            if not hit and uid is not None:
                hit = os.stat(f"/proc/{pid}").st_uid == uid
            if not hit and where is not None:
                hit = os.readlink(f"/proc/{pid}/cwd") == where
        except OSError:
            continue
        if hit and not _is_zombie(pid):
            found.append(pid)
    return found


def wait_for_strays(
    token: str, uid: int | None, cwd: Path | None, grace: float = STRAY_GRACE
) -> list[int]:
    deadline = time.monotonic() + grace
    while True:
        left = stray_processes(token=token, uid=uid, cwd=cwd)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def kill_all(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# -- the network probe -----------------------------------------------------------------------------
#: Reports the network interfaces and routes the sandboxed code can see (sends nothing).
PROBE_SOURCE = """import socket


def solve(inputs):
    names = [name for _, name in socket.if_nameindex()]
    with open("/proc/net/route") as handle:
        routes = [line for line in handle.read().splitlines()[1:] if line.strip()]
    try:
        with open("/proc/net/ipv6_route") as handle:
            routes6 = [line for line in handle.read().splitlines() if line.strip()
                       and not line.rstrip().endswith(" lo")]
    except OSError:
        routes6 = []
    return {"interfaces": names, "routes": len(routes), "routes6": len(routes6)}
"""


def network_probe(sandbox: Sandbox, directory: Path) -> tuple[bool, str]:
    """Run :data:`PROBE_SOURCE` in ``sandbox``: ``(isolated, what it saw)``.

    Isolated means the sandbox reported network isolation, and the code saw no interface but
    ``lo`` and no route.
    """
    workspace = directory / "probe-ws"
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "task_agent.py").write_text(PROBE_SOURCE)
    request = {"action": "solve", "instances": [{"id": "probe", "inputs": {}}]}
    result = sandbox.run(workspace, request, limits=Limits(wall_time=20))
    shutil.rmtree(workspace, ignore_errors=True)
    outputs = instance_outputs(result)
    seen = outputs[0] if outputs and isinstance(outputs[0], dict) else None
    reported = bool(result.extra.get("isolation", {}).get("network"))
    if not result.ok or seen is None:
        return False, f"the probe failed: {recorded_reason(result)}"
    isolated = (
        reported
        and set(seen.get("interfaces", [])) <= {"lo"}
        and seen.get("routes") == 0
        and seen.get("routes6") == 0
    )
    return isolated, (
        f"interfaces {seen.get('interfaces')}, {seen.get('routes')} IPv4 and "
        f"{seen.get('routes6')} IPv6 routes, isolation reported: {reported}"
    )


def sandbox_traits(sandbox: Sandbox) -> frozenset[str]:
    """The isolation properties a sandbox documents (see :data:`TRAITS`).

    * ``filesystem``: the host's files are hidden (bubblewrap);
    * ``pid``: its own PID namespace, so every process it starts dies with it (bubblewrap);
    * ``user``: agent code runs under a private unprivileged uid (``isolates_user``);
    * ``nproc``: the process-count limit binds the run: a private uid, or bubblewrap run by a
      user other than root (the kernel ignores RLIMIT_NPROC for root);
    * ``network``: no network (bubblewrap; the process sandbox when the engine runs as root,
      as documented);
    * ``tmpfs``: private ``/tmp`` and ``/dev/shm`` sized within the memory limit (bubblewrap;
      the process sandbox with a private uid, in its own mount namespace).
    """
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    traits: set[str] = set()
    if sandbox.name == "bwrap":
        traits.update(("filesystem", "pid", "network", "tmpfs"))
        if not root:
            traits.add("nproc")
    if getattr(sandbox, "isolates_user", False):
        traits.update(("user", "nproc", "tmpfs"))
    if sandbox.name == "process" and root:
        traits.add("network")
    return frozenset(traits)

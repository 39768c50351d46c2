"""Workspaces: private directories holding a program's files while sandboxed code runs in them.

Whatever agent code leaves in a workspace (a tree thousands of levels deep, unreadable
directories, names that are not UTF-8) must not stop the engine from removing it:
:func:`remove_tree` deletes any tree with bounded recursion, open descriptors and path lengths.
Workspace names carry the engine's pid, so :func:`sweep_stale_workspaces` can remove those a
killed engine left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

from hyperagents.program import Program

__all__ = [
    "WORKSPACE_PREFIXES",
    "remove_tree",
    "sweep_stale_workspaces",
    "workspace",
    "workspace_base",
    "workspace_prefix",
]

#: Prefixes of the directories the engine creates in :func:`workspace_base`.
WORKSPACE_PREFIXES = ("hyperagents-ws-", "hyperagents-standby-")


def workspace_base() -> str | None:
    """Where workspaces are created: ``$HYPERAGENTS_WORKSPACE_DIR``, else ``/dev/shm`` when it
    is a writable RAM-backed directory (creating and deleting files there is ~30× faster than on
    a disk), else the system's temporary directory."""
    configured = os.environ.get("HYPERAGENTS_WORKSPACE_DIR")
    if configured:
        return configured
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


def workspace_prefix(kind: str = "ws") -> str:
    """The name prefix of this process's workspaces (``hyperagents-<kind>-<pid>-``)."""
    return f"hyperagents-{kind}-{os.getpid()}-"


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a directory tree whatever its shape; never raises for a tree agent code built.

    Tries :func:`shutil.rmtree` first (fast); when that fails (recursion too deep, paths too
    long, unreadable directories) it flattens the tree instead: every subdirectory is renamed
    up to the top before its parent is removed, so no path grows and nothing recurses.
    """
    top = os.fspath(path)
    try:
        shutil.rmtree(top)
        return
    except FileNotFoundError:
        return
    except (OSError, RecursionError):
        pass
    with contextlib.suppress(OSError):
        _remove_flat(top)
    if os.path.lexists(top):  # pragma: no cover - e.g. a busy mount point inside
        shutil.rmtree(top, ignore_errors=True)


def _remove_flat(top: str) -> None:
    counter = 0
    _make_usable(top)
    while True:
        entries = os.listdir(top)
        if not entries:
            break
        for name in entries:
            full = os.path.join(top, name)
            try:
                mode = os.lstat(full).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(mode):
                _unlink(full)
                continue
            _make_usable(full)
            for inner in os.listdir(full):
                inner_path = os.path.join(full, inner)
                if stat.S_ISDIR(os.lstat(inner_path).st_mode):
                    counter += 1
                    moved = os.path.join(top, f".rm-{counter}-{secrets.token_hex(4)}")
                    os.rename(inner_path, moved)
                else:
                    _unlink(inner_path)
            os.rmdir(full)
    os.rmdir(top)


def _make_usable(directory: str) -> None:
    with contextlib.suppress(OSError):
        os.chmod(directory, 0o700)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_workspaces(base: str | None = None) -> int:
    """Remove workspaces left by engines that are no longer running (killed, crashed).

    Only directories of this user whose name carries a pid that is not alive are removed.

    Returns:
        How many were removed.
    """
    root = base if base is not None else (workspace_base() or tempfile.gettempdir())
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        prefix = next((p for p in WORKSPACE_PREFIXES if entry.name.startswith(p)), None)
        if prefix is None:
            continue
        pid_text = entry.name[len(prefix) :].split("-", 1)[0]
        try:
            owner = entry.stat(follow_symlinks=False).st_uid
        except OSError:
            continue
        if not pid_text.isdigit() or owner != os.getuid() or _pid_alive(int(pid_text)):
            continue
        remove_tree(entry.path)
        removed += 1
    return removed


class workspace:
    """A private temporary directory holding a program's files; removed on exit, whatever
    the sandboxed code left in it."""

    def __init__(self, program: Program, *, base: str | None = None) -> None:
        self._program = program
        self._root = Path(
            tempfile.mkdtemp(
                prefix=workspace_prefix(), dir=base if base is not None else workspace_base()
            )
        )

    def __enter__(self) -> Path:
        path = self._root / "ws"
        self._program.write_to(path)
        return path

    def __exit__(self, *exc: object) -> None:
        remove_tree(self._root)

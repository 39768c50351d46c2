"""Reading a checkpoint a sandboxed trainer wrote, while it runs.

A trainer that writes a checkpoint folder under :data:`CHECKPOINT_DIR` of its workspace and
then reports a progress point naming it (``{"step": 120, "loss": 0.3, "checkpoint":
"step-120"}``) has that folder read by the engine at once, so that a run killed later can
resume the training from there (see :mod:`hyperagents.weights`).

The folder is read *while the untrusted process runs* and can change it at any moment, so the
read trusts nothing it finds: every component is opened relative to the one before with
``O_NOFOLLOW`` (a symbolic link swapped in anywhere is refused, never followed), files are
opened non-blocking (a FIFO cannot hold the reader) and must be regular files once open, the
folder is flat (a subfolder is refused) and everything is bounded (names, file count, bytes).
Anything wrong gives None: a checkpoint is the candidate's, and a bad one is only skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperagents.sandbox._readers import MessageHook

__all__ = [
    "CHECKPOINT_DIR",
    "MAX_CHECKPOINT_FILES",
    "CheckpointHook",
    "checkpoint_name",
    "progress_hook",
    "read_checkpoint",
]

#: Takes a checkpoint (its step and its files by name) as soon as its progress point arrives.
CheckpointHook = Callable[[int, dict[str, bytes]], None]

#: The folder of the workspace a trainer writes its checkpoints into.
CHECKPOINT_DIR = "_checkpoints"
#: The most files one checkpoint may hold.
MAX_CHECKPOINT_FILES = 64

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def checkpoint_name(value: object) -> str | None:
    """``value`` when it may name a checkpoint folder (a plain name, no path), else None."""
    if isinstance(value, str) and _NAME.fullmatch(value) and value not in (".", ".."):
        return value
    return None


def progress_hook(
    on_message: MessageHook | None,
    on_checkpoint: CheckpointHook | None,
    workspace: Path,
    *,
    max_bytes: int,
) -> MessageHook | None:
    """The hook of a run's progress messages: each goes to ``on_message``; one whose point
    names a checkpoint (with a whole ``step``) has that checkpoint read from ``workspace`` and
    handed to ``on_checkpoint`` (skipped when it cannot be read)."""
    if on_checkpoint is None:
        return on_message

    def hook(message: dict[str, Any]) -> None:
        if on_message is not None:
            on_message(message)
        point = message.get("point")
        if not isinstance(point, dict):
            return
        name, step = checkpoint_name(point.get("checkpoint")), point.get("step")
        if name is None or isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return
        files = read_checkpoint(workspace, name, max_bytes=max_bytes)
        if files is not None:
            on_checkpoint(step, files)

    return hook


def read_checkpoint(workspace: Path, name: str, *, max_bytes: int) -> dict[str, bytes] | None:
    """The files of checkpoint ``name`` in ``workspace`` (None: it cannot be read safely).

    Args:
        workspace: The directory the sandboxed process sees as its workspace.
        name: The checkpoint's folder name (checked by :func:`checkpoint_name`).
        max_bytes: The most bytes all its files together may hold.
    """
    if checkpoint_name(name) is None:
        return None
    fds: list[int] = []
    try:
        fds.append(os.open(workspace, _DIR_FLAGS))
        fds.append(os.open(CHECKPOINT_DIR, _DIR_FLAGS, dir_fd=fds[-1]))
        fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
        return _read_flat(fds[-1], max_bytes)
    except OSError:
        return None
    finally:
        for fd in reversed(fds):
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_flat(folder: int, max_bytes: int) -> dict[str, bytes] | None:
    """The regular files of the open directory ``folder`` (None: a subfolder, a name that is
    not plain, too many files or bytes)."""
    names = os.listdir(folder)
    if len(names) > MAX_CHECKPOINT_FILES or not names:
        return None
    files: dict[str, bytes] = {}
    total = 0
    for entry in sorted(names):
        if checkpoint_name(entry) is None:
            return None
        fd = os.open(entry, _FILE_FLAGS, dir_fd=folder)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = _read_bounded(fd, max_bytes - total)
        finally:
            os.close(fd)
        if data is None:
            return None
        total += len(data)
        files[entry] = data
    return files


def _read_bounded(fd: int, most: int) -> bytes | None:
    """All of ``fd``'s bytes, or None when there are more than ``most``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(1 << 20, most - size + 1))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > most:
            return None
        chunks.append(chunk)

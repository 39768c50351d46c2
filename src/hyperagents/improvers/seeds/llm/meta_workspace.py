"""The program's files as the LLM meta agent edits them: edits stay in memory until flushed."""

from __future__ import annotations

import os
import re
from typing import Any

#: Directories never shown to the model.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "node_modules", ".mypy_cache"})


# Plain classes rather than dataclasses: every sandboxed process imports this module afresh,
# and creating a dataclass costs about half a millisecond of CPU.
class Workspace:
    """The workspace's files with the proposal's edits laid over them.

    Attributes:
        root: The workspace directory (made absolute and resolved).
        overlay: Edited text by relative path (not on disk until :meth:`flush`).
        originals: The text each edited path had before its first edit (None: no such file).
        written: The bytes :meth:`flush` replaced on disk, for :meth:`restore`.
        edits: Edits made.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.overlay: dict[str, str] = {}
        self.originals: dict[str, str | None] = {}
        self.written: dict[str, bytes | None] = {}
        self.edits = 0

    def safe(self, rel: Any) -> str | None:
        """``rel`` as a normalised relative path inside the workspace, or None if it escapes."""
        if not isinstance(rel, str):
            return None
        rel = rel.strip().strip("`").strip()
        if not rel or "\0" in rel or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
            return None
        parts = re.split(r"[\\/]+", rel)
        if any(p == ".." for p in parts):
            return None
        parts = [p for p in parts if p not in ("", ".")]
        if not parts:
            return None
        norm = "/".join(parts)
        full = os.path.realpath(os.path.join(self.root, *parts))
        if full != self.root and not full.startswith(self.root + os.sep):
            return None
        return norm

    def full(self, rel: str) -> str:
        """The absolute path of the relative path ``rel``."""
        return os.path.join(self.root, *rel.split("/"))

    def read(self, rel: str) -> str | None:
        """The current (edited) text of ``rel``; None if it is not a UTF-8 text file."""
        if rel in self.overlay:
            return self.overlay[rel]
        try:
            with open(self.full(rel), encoding="utf-8") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError):
            return None

    def write(self, rel: str, text: str) -> None:
        """Edit ``rel`` (in memory)."""
        if rel not in self.originals:
            self.originals[rel] = self.read(rel)
        self.overlay[rel] = text
        self.edits += 1

    def changed(self) -> list[str]:
        """The paths whose text the edits changed, sorted."""
        return sorted(p for p, text in self.overlay.items() if text != self.originals.get(p))

    def flush(self) -> None:
        """Write the in-memory edits to disk (remembering what was there, for ``restore``)."""
        for rel, text in self.overlay.items():
            full = self.full(rel)
            if rel not in self.written:
                try:
                    with open(full, "rb") as fh:
                        self.written[rel] = fh.read()
                except OSError:
                    self.written[rel] = None
            if os.path.isfile(full) and _read_disk(full) == text:
                continue
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)

    def restore(self) -> None:
        """Undo everything ``flush`` wrote, and forget the edits."""
        for rel, data in self.written.items():
            full = self.full(rel)
            try:
                if data is None:
                    if os.path.exists(full):
                        os.remove(full)
                else:
                    with open(full, "wb") as fh:
                        fh.write(data)
            except OSError:
                pass
        self.written.clear()
        self.overlay.clear()
        self.edits = 0


def _read_disk(full: str) -> str | None:
    try:
        with open(full, encoding="utf-8", newline="") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None


def workspace_files(workspace: str, max_files: int) -> list[tuple[str, str]]:
    """The workspace's text files as ``(relative posix path, text)``: ``task_agent.py`` and
    ``meta_agent.py`` first, then the others by path; at most ``max_files``."""
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(workspace):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, name)
            try:
                with open(full, "rb") as fh:
                    data = fh.read(2_000_000)
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if "\0" in text:
                continue
            rel = os.path.relpath(full, workspace).replace(os.sep, "/")
            found.append((rel, text))
    found.sort(key=lambda item: (item[0] not in ("task_agent.py", "meta_agent.py"), item[0]))
    return found[:max_files]

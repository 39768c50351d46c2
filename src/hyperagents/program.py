"""Programs: immutable, content-addressed trees of files.

A :class:`Program` maps relative POSIX paths to file contents (bytes). Its :attr:`~Program.id` is
the SHA-256 of a canonical manifest (sorted ``path NUL blob-hash`` lines), so two programs with the
same files have the same id whatever order they were built in, and storages keep each distinct
file content once (see :attr:`Program.blobs`).

**Artifacts.** A program may carry a model (``model/config.json`` and ``model/*.safetensors``)
and other large files. A file is an *artifact* (:func:`is_artifact`) when it is at least
:data:`ARTIFACT_MIN_SIZE` bytes (1 MiB), or when it lies under ``model/`` with a weights suffix
(:data:`WEIGHT_SUFFIXES`: ``.safetensors``, ``.bin``, ``.gguf``, ``.pt``…) whatever its size.
For the program it is a file like any other (same id, same API); storages keep artifacts out of
their rows (a file store beside a SQLite database, large objects in PostgreSQL), and diffs never
show their bytes.

Diffs are unified diffs in the ``git diff`` style (``--- a/path`` / ``+++ b/path``,
``/dev/null`` for added and removed files) and :meth:`Program.apply` applies one strictly:
every context and removed line must match, or :class:`~hyperagents.exceptions.PatchError` is
raised. A binary file (:func:`is_binary`: an artifact, or content that is not UTF-8 text or
holds a NUL byte, git's own test) appears as ``Binary files a/p and b/p differ``, as in git. Such
a diff is for people and agents to read: it does not carry the new bytes, so :meth:`Program.apply`
refuses it (:class:`~hyperagents.exceptions.PatchError`) rather than drop the change; programs
are always stored whole, never rebuilt from a diff.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from hyperagents.exceptions import PatchError, ProgramError

__all__ = [
    "ARTIFACT_MIN_SIZE",
    "MODEL_DIR",
    "WEIGHT_SUFFIXES",
    "Program",
    "blob_hash",
    "is_artifact",
    "is_binary",
]

_NO_NEWLINE = "\\ No newline at end of file"
#: Directory and file names never taken into a program when reading a directory.
DEFAULT_IGNORED = frozenset({"__pycache__", ".git", ".hg", ".mypy_cache", ".pytest_cache"})


def blob_hash(data: bytes) -> str:
    """Return the SHA-256 hex digest that identifies a file's content."""
    return hashlib.sha256(data).hexdigest()


#: Files of at least this many bytes are artifacts (kept out of a database's rows).
ARTIFACT_MIN_SIZE = 1 << 20
#: The folder of a program's model (``model/config.json``, ``model/*.safetensors``).
MODEL_DIR = "model/"
#: Suffixes of weight files: a file under :data:`MODEL_DIR` with one is an artifact, any size.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".onnx", ".npy", ".npz")
#: How much of a file's start is searched for a NUL byte (git's test for a binary file).
_BINARY_PROBE = 8000


def is_artifact(path: str, size: int) -> bool:
    """Whether a file is an artifact: at least :data:`ARTIFACT_MIN_SIZE` bytes, or a weight
    file (a :data:`WEIGHT_SUFFIXES` suffix) under :data:`MODEL_DIR`."""
    if size >= ARTIFACT_MIN_SIZE:
        return True
    return path.startswith(MODEL_DIR) and path.lower().endswith(WEIGHT_SUFFIXES)


def is_binary(path: str, data: bytes) -> bool:
    """Whether a file is shown as binary in a diff: an artifact (see :func:`is_artifact`), or
    content with a NUL byte in its first 8000 bytes (git's test) or that is not UTF-8."""
    if is_artifact(path, len(data)) or b"\x00" in data[:_BINARY_PROBE]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


#: Deepest directory nesting of a program's files, and longest path (characters).
MAX_PATH_DEPTH = 32
MAX_PATH_LENGTH = 1024


def _bad_character(path: str) -> str | None:
    """Why ``path`` holds a character no file name of a program may have (None if it has none):
    control characters (newlines…), invisible format characters (right-to-left overrides,
    zero-width characters) and bytes that were not UTF-8 (surrogate escapes)."""
    for char in path:
        category = unicodedata.category(char)
        if category == "Cs":
            return "is not valid UTF-8"
        if category in ("Cc", "Cf", "Zl", "Zp"):
            return f"holds the control or format character U+{ord(char):04X}"
    return None


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path:
        raise ProgramError(f"invalid file path {path!r}: must be a non-empty string")
    if "\\" in path or "\x00" in path:
        raise ProgramError(f"invalid file path {path!r}: backslashes and NUL are not allowed")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise ProgramError(f"invalid file path {path!r}: must be relative, normalised, no '..'")
    if len(path) > MAX_PATH_LENGTH or path.count("/") >= MAX_PATH_DEPTH:
        raise ProgramError(
            f"invalid file path {path[:80]!r}…: longer than {MAX_PATH_LENGTH} characters or "
            f"deeper than {MAX_PATH_DEPTH} directories"
        )
    problem = _bad_character(path)
    if problem is not None:
        raise ProgramError(f"invalid file path {path[:200]!r}: {problem}")
    return path


class Program(Mapping[str, bytes]):
    """An immutable tree of files, identified by the hash of its content.

    Args:
        files: Mapping of relative POSIX path to content; ``str`` content is encoded as UTF-8.

    Raises:
        ProgramError: A path is absolute, contains ``..``, or a content is not bytes/str.

    Example:
        >>> p = Program({"task_agent.py": "def solve(x):\\n    return x\\n"})
        >>> q = p.with_files({"task_agent.py": "def solve(x):\\n    return 1\\n"})
        >>> p.apply(p.diff(q)) == q
        True
    """

    __slots__ = ("_blobs", "_files", "_id")

    def __init__(self, files: Mapping[str, bytes | str]) -> None:
        normalised: dict[str, bytes] = {}
        for path, content in files.items():
            _check_path(path)
            if isinstance(content, str):
                content = content.encode("utf-8")
            elif not isinstance(content, bytes | bytearray | memoryview):
                raise ProgramError(f"content of {path!r} must be bytes or str, not {type(content)}")
            normalised[path] = bytes(content)
        for path in normalised:
            parent = path.rsplit("/", 1)[0] if "/" in path else None
            while parent:
                if parent in normalised:
                    raise ProgramError(f"{parent!r} is both a file and a directory")
                parent = parent.rsplit("/", 1)[0] if "/" in parent else None
        self._files = MappingProxyType(dict(sorted(normalised.items())))
        self._blobs = MappingProxyType({p: blob_hash(c) for p, c in self._files.items()})
        manifest = "".join(f"{p}\x00{h}\n" for p, h in self._blobs.items())
        self._id = hashlib.sha256(manifest.encode("utf-8")).hexdigest()

    # -- Mapping protocol -------------------------------------------------------------------
    def __getitem__(self, path: str) -> bytes:
        return self._files[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Program):
            return self._id == other._id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"Program(id={self._id[:12]}, files={list(self._files)})"

    # -- identity ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """SHA-256 hex digest of the canonical manifest: equal files, equal id."""
        return self._id

    @property
    def blobs(self) -> Mapping[str, str]:
        """Mapping of path to the content hash of that file."""
        return self._blobs

    @property
    def manifest(self) -> dict[str, str]:
        """A plain ``{path: blob_hash}`` dict, as storages persist it."""
        return dict(self._blobs)

    @property
    def size(self) -> int:
        """Total size of all files in bytes."""
        return sum(len(c) for c in self._files.values())

    def text(self, path: str) -> str:
        """Return the content of ``path`` decoded as UTF-8.

        Raises:
            KeyError: No such file.
            ProgramError: The file is not valid UTF-8.
        """
        try:
            return self._files[path].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProgramError(f"{path!r} is not UTF-8 text") from exc

    def python_sources(self) -> dict[str, str]:
        """The program's ``.py`` files that are UTF-8 text, by path (what a warm sandbox
        compiles ahead of requests: see ``set_known_sources`` of the sandboxes)."""
        sources: dict[str, str] = {}
        for path in sorted(p for p in self._files if p.endswith(".py")):
            with contextlib.suppress(UnicodeDecodeError):
                sources[path] = self._files[path].decode("utf-8")
        return sources

    # -- building ---------------------------------------------------------------------------
    def with_files(self, updates: Mapping[str, bytes | str | None]) -> Program:
        """Return a new program with files added, replaced or (value ``None``) removed."""
        files: dict[str, bytes | str] = dict(self._files)
        for path, content in updates.items():
            if content is None:
                files.pop(path, None)
            else:
                files[path] = content
        return Program(files)

    def without(self, *paths: str) -> Program:
        """Return a new program without the given files (missing paths are ignored)."""
        return self.with_files(dict.fromkeys(paths))

    @classmethod
    def from_directory(
        cls,
        root: str | os.PathLike[str],
        *,
        ignore: frozenset[str] = DEFAULT_IGNORED,
        max_files: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> Program:
        """Read every regular file below ``root`` into a program.

        Symbolic links are not followed (a link is an error), and the names in ``ignore`` are
        skipped at any depth. The walk is iterative and stops at the first name a program may
        not hold, so a directory agent code left behind (thousands of levels deep, names that
        are not UTF-8, millions of files) gives a clear error, never a crash.

        Raises:
            ProgramError: A symlink or special file, a name a program may not hold (see
                :data:`MAX_PATH_DEPTH`), or a size limit exceeded.
        """
        files: dict[str, bytes] = {}
        total = 0
        stack = [""]
        while stack:
            prefix = stack.pop()
            for rel, mode in _listing(Path(root), prefix, ignore):
                _check_path(rel)
                full = os.path.join(root, rel)
                if stat.S_ISDIR(mode):
                    stack.append(rel)
                    continue
                if not stat.S_ISREG(mode):  # symbolic links, sockets, devices…
                    raise ProgramError(f"{full}: only regular files may be part of a program")
                if rel.endswith((".pyc", ".pyo")):
                    continue
                with open(full, "rb") as handle:
                    data = handle.read(max_bytes - total + 1)
                total += len(data)
                if total > max_bytes:
                    raise ProgramError(f"program larger than {max_bytes} bytes")
                files[rel] = data
                if len(files) > max_files:
                    raise ProgramError(f"program has more than {max_files} files")
        return cls(files)

    def write_to(self, root: str | os.PathLike[str]) -> Path:
        """Write every file below ``root`` (created if missing); return the root path."""
        root_path = Path(root)
        root_path.mkdir(parents=True, exist_ok=True)
        made = {""}  # each folder is made once (a workspace is written for every sandbox run)
        for path, content in self._files.items():
            folder = path.rpartition("/")[0]
            if folder not in made:
                root_path.joinpath(*folder.split("/")).mkdir(parents=True, exist_ok=True)
                made.add(folder)
            with open(os.path.join(root_path, *path.split("/")), "wb") as file:
                file.write(content)
        return root_path

    # -- diff and apply ---------------------------------------------------------------------
    def changed_paths(self, other: Program) -> list[str]:
        """Paths added, removed or modified between ``self`` and ``other``, sorted."""
        paths = set(self._blobs) | set(other._blobs)
        return sorted(p for p in paths if self._blobs.get(p) != other._blobs.get(p))

    def diff(self, other: Program, *, context: int = 3) -> str:
        """Return the unified diff that turns ``self`` into ``other`` (empty if equal).

        Binary files (see :func:`is_binary`) are listed as ``Binary files a/x and b/x differ``,
        as git does, and cannot be re-applied with :meth:`apply`.
        """
        chunks: list[str] = []
        for path in self.changed_paths(other):
            old, new = self._files.get(path), other._files.get(path)
            if any(side is not None and is_binary(path, side) for side in (old, new)):
                chunks.append(_binary_diff(path, old is None, new is None))
                continue
            old_text = None if old is None else old.decode("utf-8")
            new_text = None if new is None else new.decode("utf-8")
            chunks.append(_file_diff(path, old_text, new_text, context))
        return "".join(chunks)

    def apply(self, patch: str) -> Program:
        """Apply a unified diff produced by :meth:`diff` (or ``git diff``) and return the result.

        A diff that changes a binary file (``Binary files … differ``) does not hold the new
        bytes: it is refused whole rather than applied without that change.

        Raises:
            PatchError: The patch is malformed, a hunk does not match, or it changes a binary
                file.
        """
        from unidiff.errors import UnidiffParseError
        from unidiff.patch import PatchSet

        if not patch.strip():
            return self
        binary = next(
            (line for line in patch.splitlines() if line.startswith("Binary files ")), None
        )
        if binary is not None:
            raise PatchError(
                f"the patch changes a binary file ({binary!r}) and does not hold its new bytes: "
                "a diff with binary changes is for display; store the changed program whole"
            )
        try:
            patch_set = PatchSet(patch)
        except UnidiffParseError as exc:
            raise PatchError(f"malformed patch: {exc}") from exc
        if len(patch_set) == 0:
            raise PatchError("malformed patch: no file headers (--- a/… +++ b/…) found")
        updates: dict[str, bytes | str | None] = {}
        for patched in patch_set:
            source = _strip_prefix(patched.source_file)
            target = _strip_prefix(patched.target_file)
            # unidiff also calls a file emptied by its only hunk "removed": trust /dev/null only.
            removed = patched.target_file == "/dev/null"
            added = patched.source_file == "/dev/null"
            if removed:
                if source not in self._files:
                    raise PatchError(f"patch removes {source!r}, which does not exist")
                updates[source] = None
                continue
            if added:
                if target in self._files:
                    raise PatchError(f"patch adds {target!r}, which already exists")
                old_lines: list[str] = []
            else:
                if source not in self._files:
                    raise PatchError(f"patch modifies {source!r}, which does not exist")
                old_lines = self.text(source).splitlines(keepends=True)
            new_text = _apply_hunks(source or target, old_lines, patched)
            if source != target and not added:
                updates[source] = None
            updates[_check_path(target)] = new_text
        try:
            return self.with_files(updates)
        except ProgramError as exc:
            raise PatchError(str(exc)) from exc


def _listing(root: Path, prefix: str, ignore: frozenset[str]) -> list[tuple[str, int]]:
    """``(relative path, lstat mode)`` of the entries of one directory below ``root``, sorted,
    without the ignored names.

    Raises:
        ProgramError: The directory cannot be read, or holds too many entries.
    """
    directory = root.joinpath(*prefix.split("/")) if prefix else root
    found: list[tuple[str, int]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name in ignore:
                    continue
                if len(found) > 100_000:
                    raise ProgramError(f"{directory}: more than 100000 entries")
                rel = f"{prefix}/{entry.name}" if prefix else entry.name
                found.append((rel, entry.stat(follow_symlinks=False).st_mode))
    except OSError as exc:
        raise ProgramError(f"cannot read {directory}: {exc.strerror or exc}") from exc
    return sorted(found)


def _strip_prefix(name: str) -> str:
    if name == "/dev/null":
        return ""
    for prefix in ("a/", "b/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _binary_diff(path: str, added: bool, removed: bool) -> str:
    """The git-style lines of a changed binary file."""
    a = "/dev/null" if added else f"a/{path}"
    b = "/dev/null" if removed else f"b/{path}"
    mode = "new file mode 100644\n" if added else "deleted file mode 100644\n" if removed else ""
    return f"diff --git a/{path} b/{path}\n{mode}Binary files {a} and {b} differ\n"


def _file_diff(path: str, old: str | None, new: str | None, context: int) -> str:
    old_lines = [] if old is None else old.splitlines(keepends=True)
    new_lines = [] if new is None else new.splitlines(keepends=True)
    fromfile = "/dev/null" if old is None else f"a/{path}"
    tofile = "/dev/null" if new is None else f"b/{path}"
    out = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        out.append("new file mode 100644\n")
    elif new is None:
        out.append("deleted file mode 100644\n")
    for line in difflib.unified_diff(old_lines, new_lines, fromfile, tofile, n=context):
        if line.endswith("\n"):
            out.append(line)
        else:
            # difflib leaves the last line without its newline: mark it the way git does.
            out.append(line + "\n" + _NO_NEWLINE + "\n")
    return "".join(out)


def _apply_hunks(path: str, old_lines: list[str], patched: object) -> str:
    """Apply the hunks of one unidiff ``PatchedFile`` to ``old_lines`` strictly."""
    result: list[str] = []
    position = 0  # index into old_lines of the next line not yet consumed
    for hunk in patched:  # type: ignore[attr-defined]
        start = max(hunk.source_start - 1, 0) if hunk.source_length else hunk.source_start
        if start < position or start > len(old_lines):
            raise PatchError(f"{path}: hunk at line {hunk.source_start} is out of order or range")
        result.extend(old_lines[position:start])
        position = start
        previous = ""
        for line in hunk:
            value: str = line.value
            if line.line_type == "\\":
                # "\ No newline at end of file" applies to the previous line: when that line is
                # in the new text (context or added), the new text ends without a newline.
                if previous in (" ", "+") and result and result[-1].endswith("\n"):
                    result[-1] = result[-1][:-1]
                continue
            previous = line.line_type
            if line.line_type in (" ", "-"):
                if position >= len(old_lines) or _norm(old_lines[position]) != _norm(value):
                    found = old_lines[position] if position < len(old_lines) else "<end of file>"
                    raise PatchError(
                        f"{path}: hunk at line {hunk.source_start} does not match: expected "
                        f"{value.rstrip()!r}, found {found.rstrip()!r}"
                    )
                if line.line_type == " ":
                    result.append(old_lines[position])
                position += 1
            elif line.line_type == "+":
                result.append(value if value.endswith("\n") else value + "\n")
    result.extend(old_lines[position:])
    return "".join(result)


def _norm(line: str) -> str:
    return line[:-1] if line.endswith("\n") else line

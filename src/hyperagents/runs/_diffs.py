"""Diffs between two programs with a bounded cost: what ``hyperagents diff`` prints and the
dashboard's variant page shows.

A child's files are written by an agent, so their size is too. Comparing them line by line
costs time that grows faster than their size (and highlighting and sending them more still), so
a diff is computed only within :class:`DiffLimits`: sizes are checked first, from the stored
bytes alone; a file over its limits, or a diff over the totals, is reported as too large (with
the reason) instead of compared, and the faces offer the whole programs or the full patch as an
explicit download or output file.

A binary file (:func:`~hyperagents.program.is_binary`: a model's weights, any artifact, content
that is not UTF-8 text) is never compared nor decoded: it is listed as binary, whatever its size
(git's ``Binary files a/p and b/p differ``).

Lines are compared after trimming what the two sides share at their start and end (as git
does), with :class:`difflib.SequenceMatcher`'s heuristic for frequent lines on, and only when the
changed region of each side is small enough (:attr:`DiffLimits.changed_lines`): its worst case
grows with the square of the lines it is given.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from hyperagents.program import Program, is_artifact, is_binary

__all__ = [
    "DiffLimits",
    "FileDiff",
    "Opcode",
    "ProgramDiff",
    "compare",
    "hunk_header",
    "unified_text",
]

KiB = 1024
MiB = 1024 * KiB

#: ``(tag, i1, i2, j1, j2)`` as :meth:`difflib.SequenceMatcher.get_opcodes` gives it.
Opcode = tuple[str, int, int, int, int]
Status = Literal["added", "deleted", "modified"]


@dataclass(frozen=True)
class DiffLimits:
    """How much one diff may cost. Sizes count both sides of every changed file.

    Attributes:
        file_bytes: Largest side of one file that is compared.
        file_lines: Most lines of one side of a file that are compared.
        total_bytes: Most bytes of the changed files within the per-file limits, together
            (beyond: no file is compared).
        total_lines: Most lines of those files together (beyond: no file is compared).
        changed_lines: Most lines on each side of a file's changed region (what is left once
            the lines both sides share at the start and the end are set aside), when both
            sides have some; a longer region is too costly to match line by line.
        output_bytes: Most bytes of what is shown (a face stops adding files beyond it).
    """

    file_bytes: int = 512 * KiB
    file_lines: int = 10_000
    total_bytes: int = 4 * MiB
    total_lines: int = 40_000
    changed_lines: int = 2_000
    output_bytes: int = 4 * MiB


@dataclass(frozen=True)
class FileDiff:
    """One changed file.

    Attributes:
        path: The file's path.
        status: ``"added"``, ``"deleted"`` or ``"modified"``.
        old_size: Bytes before (0 when added).
        new_size: Bytes after (0 when deleted).
        binary: A side is binary (see :func:`~hyperagents.program.is_binary`; not compared).
        too_large: Why it was not compared (None: it was, or it is binary).
        old_lines: The lines before, each with its ``"\\n"`` (the last may lack one).
        new_lines: The lines after.
        groups: Hunks, each a list of opcodes over ``old_lines`` / ``new_lines``.
    """

    path: str
    status: Status
    old_size: int
    new_size: int
    binary: bool = False
    too_large: str | None = None
    old_lines: tuple[str, ...] = ()
    new_lines: tuple[str, ...] = ()
    groups: tuple[tuple[Opcode, ...], ...] = field(default=())

    @property
    def added(self) -> int:
        """Lines added."""
        return sum(j2 - j1 for g in self.groups for t, _, _, j1, j2 in g if t != "equal")

    @property
    def removed(self) -> int:
        """Lines removed."""
        return sum(i2 - i1 for g in self.groups for t, i1, i2, _, _ in g if t != "equal")


@dataclass(frozen=True)
class ProgramDiff:
    """The changes between two programs.

    Attributes:
        files: The changed files, by path.
        too_large: Why no file was compared (the totals are over the limits), else None.
    """

    files: tuple[FileDiff, ...]
    too_large: str | None = None

    @property
    def complete(self) -> bool:
        """Whether every changed file was compared (or is binary)."""
        return self.too_large is None and not any(f.too_large for f in self.files)


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / KiB:.0f} KiB" if n >= KiB else f"{n} B"


def _split(text: str) -> list[str]:
    """Lines split at ``"\\n"`` only, each keeping it (the last one may have none)."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _decode(data: bytes | None, normalize: bool) -> str | None:
    if data is None:
        return ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n") if normalize else text


def compare(
    old: Program | None,
    new: Program,
    *,
    limits: DiffLimits | None = None,
    context: int = 3,
    normalize: bool = False,
) -> ProgramDiff:
    """The changes from ``old`` (None: an empty program) to ``new``, within ``limits``.

    Args:
        old: The program before.
        new: The program after.
        limits: The bounds (default :class:`DiffLimits`).
        context: Unchanged lines shown around each change.
        normalize: Read ``\\r\\n`` and ``\\r`` as ``\\n`` (for display; a patch keeps them).

    Returns:
        The changed files, compared where the limits allow.
    """
    limits = limits or DiffLimits()
    base = old if old is not None else Program({})
    files: list[FileDiff] = []
    todo: list[tuple[str, Status, bytes | None, bytes | None]] = []
    total_bytes = total_lines = 0
    for path in base.changed_paths(new):
        before, after = base.get(path), new.get(path)
        status: Status = "added" if before is None else "deleted" if after is None else "modified"
        sizes = (len(before or b""), len(after or b""))
        if any(is_artifact(path, size) for size in sizes):  # never read: listed as binary
            files.append(FileDiff(path, status, *sizes, binary=True))
            continue
        lines = (_line_count(before or b""), _line_count(after or b""))
        if max(sizes) > limits.file_bytes:
            why = f"{_size(max(sizes))} (limit {_size(limits.file_bytes)} per file)"
        elif max(lines) > limits.file_lines:
            why = f"{max(lines)} lines (limit {limits.file_lines} per file)"
        else:  # compared unless the totals are over: counted in them
            total_bytes, total_lines = total_bytes + sum(sizes), total_lines + sum(lines)
            todo.append((path, status, before, after))
            files.append(FileDiff(path, status, *sizes))
            continue
        files.append(FileDiff(path, status, *sizes, too_large=why))
    over: str | None = None
    if total_bytes > limits.total_bytes:
        over = f"the changed files hold {_size(total_bytes)} (limit {_size(limits.total_bytes)})"
    elif total_lines > limits.total_lines:
        over = f"the changed files hold {total_lines} lines (limit {limits.total_lines})"
    if over is not None:
        files = [f if f.too_large else replace(f, too_large=over) for f in files]
        return ProgramDiff(tuple(files), over)
    compared = {
        path: _compare_file(path, status, before, after, limits, context, normalize)
        for path, status, before, after in todo
    }
    return ProgramDiff(tuple(compared.get(f.path, f) for f in files))


def _compare_file(
    path: str,
    status: Status,
    before: bytes | None,
    after: bytes | None,
    limits: DiffLimits,
    context: int,
    normalize: bool,
) -> FileDiff:
    sizes = (len(before or b""), len(after or b""))
    if any(side is not None and is_binary(path, side) for side in (before, after)):
        return FileDiff(path, status, *sizes, binary=True)
    a_text, b_text = _decode(before, normalize), _decode(after, normalize)
    if a_text is None or b_text is None:
        return FileDiff(path, status, *sizes, binary=True)
    a, b = _split(a_text), _split(b_text)
    codes = _opcodes(a, b, limits.changed_lines)
    if codes is None:
        why = f"more than {limits.changed_lines} changed lines in one place to match"
        return FileDiff(path, status, *sizes, too_large=why)
    groups = tuple(tuple(g) for g in _grouped(codes, context))
    return FileDiff(path, status, *sizes, old_lines=tuple(a), new_lines=tuple(b), groups=groups)


def _opcodes(a: Sequence[str], b: Sequence[str], most: int) -> list[Opcode] | None:
    """Opcodes turning ``a`` into ``b``; None when the changed region is too long to match."""
    prefix = 0
    shortest = min(len(a), len(b))
    while prefix < shortest and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < shortest - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    a_mid, b_mid = a[prefix : len(a) - suffix], b[prefix : len(b) - suffix]
    if a_mid and b_mid and max(len(a_mid), len(b_mid)) > most:
        return None
    codes: list[Opcode] = [("equal", 0, prefix, 0, prefix)] if prefix else []
    if a_mid or b_mid:
        matcher = difflib.SequenceMatcher(None, a_mid, b_mid, autojunk=True)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            codes.append((tag, i1 + prefix, i2 + prefix, j1 + prefix, j2 + prefix))
    if suffix:
        codes.append(("equal", len(a) - suffix, len(a), len(b) - suffix, len(b)))
    merged: list[Opcode] = []
    for code in codes:
        if merged and code[0] == "equal" and merged[-1][0] == "equal":
            last = merged.pop()
            code = ("equal", last[1], code[2], last[3], code[4])
        merged.append(code)
    return merged


def _grouped(codes: list[Opcode], n: int) -> Iterator[list[Opcode]]:
    """Hunks with ``n`` lines of context (:meth:`difflib.SequenceMatcher.get_grouped_opcodes`,
    over opcodes computed here)."""
    if not codes or all(code[0] == "equal" for code in codes):
        return
    codes = list(codes)
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, stop: int) -> str:
    """A unified diff's ``start,length`` (as difflib writes it: an empty side starts before)."""
    length = stop - start
    begin = start + 1 if length else start
    return str(begin) if length == 1 else f"{begin},{length}"


def hunk_header(group: Sequence[Opcode]) -> str:
    """A hunk's ``@@ -a,b +c,d @@`` line (without a newline)."""
    first, last = group[0], group[-1]
    return f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@"


_NO_NEWLINE = "\\ No newline at end of file\n"


def _unified_lines(diff: FileDiff) -> Iterator[str]:
    yield f"diff --git a/{diff.path} b/{diff.path}\n"
    if diff.status == "added":
        yield "new file mode 100644\n"
    elif diff.status == "deleted":
        yield "deleted file mode 100644\n"
    a = "/dev/null" if diff.status == "added" else f"a/{diff.path}"
    b = "/dev/null" if diff.status == "deleted" else f"b/{diff.path}"
    if diff.binary:
        yield f"Binary files {a} and {b} differ\n"
        return
    if not diff.groups:
        return
    yield f"--- {a}\n+++ {b}\n"
    for group in diff.groups:
        yield hunk_header(group) + "\n"
        for tag, i1, i2, j1, j2 in group:
            shown = [(" ", line) for line in diff.old_lines[i1:i2]] if tag == "equal" else []
            if tag in ("replace", "delete"):
                shown += [("-", line) for line in diff.old_lines[i1:i2]]
            if tag in ("replace", "insert"):
                shown += [("+", line) for line in diff.new_lines[j1:j2]]
            for sign, line in shown:
                yield sign + line if line.endswith("\n") else f"{sign}{line}\n{_NO_NEWLINE}"


def unified_text(diff: ProgramDiff, *, limit: int | None = None) -> str | None:
    """The compared files as a git-style unified diff (files not compared are left out).

    Args:
        diff: The diff.
        limit: Most characters to produce; None: no limit.

    Returns:
        The text, or None when it would be longer than ``limit``.
    """
    pieces: list[str] = []
    size = 0
    for file in diff.files:
        if file.too_large is not None:
            continue
        for piece in _unified_lines(file):
            size += len(piece)
            if limit is not None and size > limit:
                return None
            pieces.append(piece)
    return "".join(pieces)

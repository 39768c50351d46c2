"""Edits in the model's replies: SEARCH/REPLACE blocks and whole files, parsed and matched.

``search_replace``
    Blocks ``<<<<<<< SEARCH path`` / ``=======`` / ``>>>>>>> REPLACE``. Matching is exact first,
    then tolerant of trailing whitespace, then of leading indentation (the replacement is
    re-indented). An empty SEARCH creates a new file.
``whole_file``
    ``=== FILE: path ===`` ... ``=== END FILE ===`` full rewrites (new files allowed).
"""

from __future__ import annotations

import difflib
import re

from meta_text import join_lines

_SR_START = re.compile(r"^\s*<{5,9} ?SEARCH\b[ \t:]*(.*?)\s*$")
_SR_MID = re.compile(r"^\s*={5,9}\s*$")
_SR_END = re.compile(r"^\s*>{5,9} ?REPLACE\b.*$")
_WF_START = re.compile(r"^\s*={3}\s*FILE\s*:\s*(.+?)\s*={3}\s*$")
_WF_END = re.compile(r"^\s*={3}\s*END FILE\s*={3}\s*$")


def parse_search_replace(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``[(path, search, replace)]`` and a list of syntax problems found in ``text``."""
    blocks: list[tuple[str, str, str]] = []
    problems: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _SR_START.match(lines[i])
        if not m:
            i += 1
            continue
        path = m.group(1).strip()
        if not path:
            problems.append(f"line {i + 1}: `<<<<<<< SEARCH` must be followed by a file path")
        search: list[str] = []
        replace: list[str] = []
        j = i + 1
        while j < len(lines) and not _SR_MID.match(lines[j]) and not _SR_START.match(lines[j]):
            search.append(lines[j])
            j += 1
        if j >= len(lines) or not _SR_MID.match(lines[j]):
            problems.append(f"line {i + 1}: SEARCH block without a `=======` line")
            i = j
            continue
        j += 1
        while j < len(lines) and not _SR_END.match(lines[j]) and not _SR_START.match(lines[j]):
            replace.append(lines[j])
            j += 1
        if j >= len(lines) or not _SR_END.match(lines[j]):
            problems.append(f"line {i + 1}: block without a `>>>>>>> REPLACE` line")
            i = j
            continue
        if path:
            blocks.append((path, join_lines(search), join_lines(replace)))
        i = j + 1
    return blocks, problems


def apply_search_replace(content: str, search: str, replace: str) -> str | None:
    """``content`` with ``search`` replaced by ``replace`` (first match), or None if no match.

    Tried in order: exact text; lines equal up to trailing whitespace; lines equal up to leading
    and trailing whitespace (the replacement is then re-indented by the indentation difference).
    Blank lines at the edges of the SEARCH part are ignored by the tolerant passes.
    """
    if search and search in content:
        return content.replace(search, replace, 1)
    lines = content.splitlines(keepends=True)
    want = _trimmed(search.splitlines())
    if not want:
        return None
    repl = replace.splitlines()
    n = len(want)
    for strict in (True, False):
        for start in range(len(lines) - n + 1):
            window = [ln.rstrip("\r\n") for ln in lines[start : start + n]]
            if strict:
                ok = all(a.rstrip() == b.rstrip() for a, b in zip(window, want, strict=True))
            else:
                ok = all(a.strip() == b.strip() for a, b in zip(window, want, strict=True))
            if not ok:
                continue
            new = repl if strict else _reindent(window, want, repl)
            eol = "\r\n" if lines[start].endswith("\r\n") else "\n"
            tail = lines[start + n - 1]
            out = [line + eol for line in new]
            if out and not tail.endswith("\n"):
                out[-1] = out[-1].rstrip("\r\n")
            return "".join(lines[:start] + out + lines[start + n :])
    return None


def _trimmed(lines: list[str]) -> list[str]:
    """``lines`` without blank lines at either end."""
    lines = list(lines)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _reindent(found: list[str], want: list[str], repl: list[str]) -> list[str]:
    """Shift ``repl`` by the indentation difference between the file's and the model's lines."""
    first = next((k for k, line in enumerate(want) if line.strip()), None)
    if first is None:
        return repl
    have, given = _indent(found[first]), _indent(want[first])
    out: list[str] = []
    for line in repl:
        if not line.strip():
            out.append("")
            continue
        lead = _indent(line)
        body = line[len(lead) :]
        if lead.startswith(given):
            out.append(have + lead[len(given) :] + body)
        elif len(have) >= len(given):
            out.append(have[: len(have) - len(given)] + line)
        else:
            out.append(lead[min(len(given) - len(have), len(lead)) :] + body)
    return out


def closest_lines(content: str, search: str) -> str:
    """A diagnostic naming the lines of ``content`` most similar to ``search``."""
    lines = content.splitlines()
    want = _trimmed(search.splitlines())
    if not lines or not want:
        return "The file is empty." if not lines else "The SEARCH part is empty."
    n = min(len(want), len(lines))
    wanted = "\n".join(w.strip() for w in want)
    best = (-1.0, 0)
    for start in range(len(lines) - n + 1):
        window = "\n".join(w.strip() for w in lines[start : start + n])
        matcher = difflib.SequenceMatcher(None, wanted, window, autojunk=False)
        if matcher.real_quick_ratio() <= best[0] or matcher.quick_ratio() <= best[0]:
            continue
        ratio = matcher.ratio()
        if ratio > best[0]:
            best = (ratio, start)
    ratio, start = best
    shown = "\n".join(
        f"{k + 1:>5}| {line}" for k, line in enumerate(lines[start : start + n], start)
    )
    return (
        f"The closest lines in the file are lines {start + 1}-{start + n} "
        f"(similarity {ratio:.0%}):\n{shown}"
    )


def parse_whole_file(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``[(path, content)]`` and syntax problems from ``=== FILE: path ===`` sections."""
    out: list[tuple[str, str]] = []
    problems: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _WF_START.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not _WF_END.match(lines[j]) and not _WF_START.match(lines[j]):
            j += 1
        if j >= len(lines) or not _WF_END.match(lines[j]):
            problems.append(f"`=== FILE: {m.group(1)} ===` has no `=== END FILE ===` line")
            i = j
            continue
        body = lines[i + 1 : j]
        if len(body) >= 2 and body[0].lstrip().startswith("```") and body[-1].strip() == "```":
            body = body[1:-1]
        out.append((m.group(1).strip(), join_lines(body)))
        i = j + 1
    return out, problems

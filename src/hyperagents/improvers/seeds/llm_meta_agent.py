"""LLM meta agent: a seed hyperagent improver that asks the run's language model for edits.

This file is copied into a hyperagent program as ``meta_agent.py``. The engine copies the parent
program into a fresh workspace and calls :func:`improve` there, in a sandboxed process; the files
left in the workspace become the child program and the returned dict becomes its ``meta_info``.
The model is reached through the sandbox's ``llm`` module (``llm.complete(...)``, answered by the
engine's gateway; ``llm.LLMError`` on failure).

The prompt carries the program's code (every text file of the workspace), the parent's evaluation
(scores, the lowest-scoring train instances with their feedback and outputs), a summary of the
archive (what was tried and whether it improved on its parent), the reviewer's feedback on the
parent's change (if any) and the generations left. The model may edit **any** file, this one
included: ``CONFIG`` below is the agent's own strategy and is meant to be edited.

Edit formats (``CONFIG["format"]``)
    ``search_replace``
        Blocks ``<<<<<<< SEARCH path`` / ``=======`` / ``>>>>>>> REPLACE``. Matching is exact
        first, then tolerant of trailing whitespace, then of leading indentation (the replacement
        is re-indented). A block that does not match is sent back with the closest lines of the
        file, for at most ``CONFIG["repair_rounds"]`` rounds. An empty SEARCH creates a new file.
    ``whole_file``
        ``=== FILE: path ===`` ... ``=== END FILE ===`` full rewrites (new files allowed).
    ``tool_loop``
        One JSON tool call per reply: ``view``, ``create``, ``str_replace``, ``run_sample`` (runs
        the workspace's ``task_agent.solve`` on a few train inputs in a subprocess: outputs or
        errors, never scores) and ``done``; at most ``CONFIG["max_steps"]`` steps.

Paths must stay inside the workspace (no absolute paths, no ``..``). Edits are kept in memory and
written only when a proposal succeeds, so a failure (malformed replies beyond the retry budget,
``llm.LLMError``, anything unexpected) returns ``{"operator": "llm", "applied": 0, "error": ...}``
and leaves the workspace unchanged. An optional reviewer step (``CONFIG["review"]``) asks the model
for structured feedback on the applied diff, stored as ``meta_info["review"]``; the next proposal
in the lineage receives it.

Standard library only (plus ``llm`` at call time); deterministic given the model's replies.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import subprocess
import sys
from typing import Any

CONFIG: dict[str, Any] = {
    "format": "search_replace",
    "review": True,
    "temperature": 0.2,
    "max_tokens": 4096,
    "retries": 2,
    "repair_rounds": 2,
    "max_steps": 12,
    "max_file_chars": 8000,
    "max_files": 40,
    "max_prompt_chars": 120000,
    "max_instances": 6,
    "max_field_chars": 600,
    "max_archive": 20,
    "max_observation_chars": 6000,
    "sample_size": 3,
    "sample_timeout": 20,
}

FORMATS: tuple[str, ...] = ("search_replace", "whole_file", "tool_loop")

_SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "node_modules", ".mypy_cache"})
_MAX_SUMMARY = 500
_MAX_INFO_BYTES = 60_000
_SHOWN_STAGES = ("train", "val", "train_subset")
_SEVERITIES = ("none", "low", "medium", "high", "critical")


class ProposalError(Exception):
    """The model's replies could not be turned into a valid proposal."""


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def improve(workspace: str, report: dict[str, Any]) -> dict[str, Any]:
    """Ask the language model to improve the program in ``workspace``; apply its edits.

    Args:
        workspace: Directory holding the copy of the parent program; edited in place.
        report: The parent's evaluation report (missing or malformed parts are tolerated).

    Returns:
        The child's ``meta_info``: ``operator`` (``"llm:<format>"``), ``applied`` (edits made),
        ``files`` (changed paths), ``summary``, ``review`` (dict or None) and ``rounds`` (model
        calls); or ``{"operator": "llm", "applied": 0, "error": ...}`` with nothing changed.
    """
    report = report if isinstance(report, dict) else {}
    config = _config()
    fmt = config["format"]
    files = _Files(workspace)
    model = _Model(config)
    try:
        llm = importlib.import_module("llm")
    except ImportError as exc:
        return _failure(f"no llm module: {exc}", model.calls)
    model.llm = llm
    llm_error: type[BaseException] = getattr(llm, "LLMError", Exception)
    try:
        prompt = build_prompt(workspace, report, config)
        if fmt == "tool_loop":
            summary, extra = _run_tool_loop(model, prompt, files, report, config)
        elif fmt == "whole_file":
            summary, extra = _run_whole_file(model, prompt, files, config)
        else:
            summary, extra = _run_search_replace(model, prompt, files, config)
        files.flush()
    except llm_error as exc:
        files.restore()
        return _failure(f"LLMError: {exc}", model.calls)
    except ProposalError as exc:
        files.restore()
        return _failure(str(exc), model.calls)
    except Exception as exc:  # the engine must always get a meta_info back
        files.restore()
        return _failure(f"{type(exc).__name__}: {exc}", model.calls)

    info: dict[str, Any] = {
        "operator": f"llm:{fmt}",
        "applied": files.edits,
        "files": files.changed(),
        "summary": _cap(summary, _MAX_SUMMARY),
        "review": None,
        "rounds": model.calls,
    }
    info.update(extra)
    if config["review"] and files.changed():
        try:
            review = _review(model, files, report)
            info["review"] = review
            if review is None:
                info["review_error"] = "unparsable review reply"
        except Exception as exc:  # a failed review never undoes the proposal
            info["review_error"] = _cap(f"{type(exc).__name__}: {exc}", 300)
        info["rounds"] = model.calls
    return _fit(info)


def _failure(error: str, calls: int) -> dict[str, Any]:
    return {"operator": "llm", "applied": 0, "error": _cap(error, 2000), "rounds": calls}


def _config() -> dict[str, Any]:
    """``CONFIG`` with missing or invalid values replaced by safe defaults."""
    defaults: dict[str, Any] = {
        "format": "search_replace",
        "review": True,
        "temperature": 0.2,
        "max_tokens": 4096,
        "retries": 2,
        "repair_rounds": 2,
        "max_steps": 12,
        "max_file_chars": 8000,
        "max_files": 40,
        "max_prompt_chars": 120000,
        "max_instances": 6,
        "max_field_chars": 600,
        "max_archive": 20,
        "max_observation_chars": 6000,
        "sample_size": 3,
        "sample_timeout": 20,
    }
    raw = CONFIG if isinstance(CONFIG, dict) else {}
    out = dict(defaults)
    for key, default in defaults.items():
        value = raw.get(key, default)
        if isinstance(default, bool):
            out[key] = bool(value)
        elif isinstance(default, int):
            out[key] = max(0, int(value)) if isinstance(value, (int, float)) else default
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            out[key] = float(value) if ok else default
        else:
            out[key] = value if isinstance(value, str) else default
    if out["format"] not in FORMATS:
        out["format"] = defaults["format"]
    out["max_steps"] = max(1, out["max_steps"])
    return out


# ---------------------------------------------------------------------------------------------
# Model access
# ---------------------------------------------------------------------------------------------
class _Model:
    """Counts calls and passes the configured sampling parameters."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls = 0
        self.llm: Any = None

    def ask(self, messages: list[dict[str, str]], purpose: str) -> str:
        self.calls += 1
        reply = self.llm.complete(
            messages,
            temperature=self.config["temperature"],
            max_tokens=self.config["max_tokens"] or None,
            purpose=purpose,
        )
        return reply if isinstance(reply, str) else str(reply)


# ---------------------------------------------------------------------------------------------
# Workspace files (edits kept in memory until flushed)
# ---------------------------------------------------------------------------------------------
class _Files:
    def __init__(self, workspace: str) -> None:
        self.root = os.path.realpath(workspace)
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

    def _full(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def read(self, rel: str) -> str | None:
        if rel in self.overlay:
            return self.overlay[rel]
        try:
            with open(self._full(rel), encoding="utf-8") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError):
            return None

    def write(self, rel: str, text: str) -> None:
        if rel not in self.originals:
            self.originals[rel] = self.read(rel)
        self.overlay[rel] = text
        self.edits += 1

    def changed(self) -> list[str]:
        return sorted(p for p, text in self.overlay.items() if text != self.originals.get(p))

    def flush(self) -> None:
        """Write the in-memory edits to disk (remembering what was there, for ``restore``)."""
        for rel, text in self.overlay.items():
            full = self._full(rel)
            if rel not in self.written:
                try:
                    with open(full, "rb") as fh:
                        self.written[rel] = fh.read()
                except OSError:
                    self.written[rel] = None
            if os.path.isfile(full) and self.read_disk(full) == text:
                continue
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)

    @staticmethod
    def read_disk(full: str) -> str | None:
        try:
            with open(full, encoding="utf-8", newline="") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError):
            return None

    def restore(self) -> None:
        """Undo everything ``flush`` wrote."""
        for rel, data in self.written.items():
            full = self._full(rel)
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


def workspace_files(workspace: str, max_files: int) -> list[tuple[str, str]]:
    """The workspace's text files as ``(relative posix path, text)``, sorted by path."""
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(workspace):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
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


# ---------------------------------------------------------------------------------------------
# Prompt
# ---------------------------------------------------------------------------------------------
_SYSTEM = (
    "You are the meta agent of a self-improving program. You read the program's code and its "
    "evaluation, and you propose edits that raise its score on unseen instances of the task. "
    "You may edit any file of the program, including meta_agent.py (the procedure that produces "
    "future edits, yourself): its CONFIG literal sets your edit format and limits. Prefer general "
    "improvements over special cases for the instances shown; never hard-code answers."
)


def build_prompt(workspace: str, report: dict[str, Any], config: dict[str, Any]) -> str:
    """The user message of a proposal: code, evaluation, archive, review, budget, instructions."""
    task = report.get("task") if isinstance(report.get("task"), dict) else {}
    assert isinstance(task, dict)
    parts: list[str] = []
    parts.append(
        "## Task\n"
        f"Name: {task.get('name', '?')}\n"
        f"Description: {_cap(str(task.get('description', '')), 2000)}\n"
        f"Score range: {task.get('score_range', '?')} (higher is better)"
    )
    left = report.get("generations_left")
    parts.append(
        f"## Budget\nThis is generation {report.get('generation', '?')}; generations left: "
        f"{left if left is not None else 'unknown'}. With few generations left, prefer safe, "
        "incremental changes; with many, bolder ideas are affordable."
    )
    parts.append(_code_section(workspace, config))
    parts.append(_evaluation_section(report, config))
    parts.append(_archive_section(report, config))
    parent = report.get("parent") if isinstance(report.get("parent"), dict) else {}
    assert isinstance(parent, dict)
    meta_info = parent.get("meta_info") if isinstance(parent.get("meta_info"), dict) else {}
    assert isinstance(meta_info, dict)
    review = meta_info.get("review")
    if isinstance(review, dict) and review:
        parts.append(
            "## Reviewer feedback on the change that produced this program\n"
            + json.dumps(review, sort_keys=True, default=str)[:2000]
            + "\nTake it into account: fix the issue if it is real."
        )
    parts.append(_instructions(config["format"]))
    text = "\n\n".join(parts)
    return _cap(text, config["max_prompt_chars"])


def _code_section(workspace: str, config: dict[str, Any]) -> str:
    lines = ["## Program files"]
    for rel, text in workspace_files(workspace, config["max_files"]):
        shown = _truncate_middle(text, config["max_file_chars"])
        lines.append(f"--- {rel} ---\n{shown}\n--- end of {rel} ---")
    return "\n".join(lines)


def _evaluation_section(report: dict[str, Any], config: dict[str, Any]) -> str:
    evaluation = report.get("evaluation") if isinstance(report.get("evaluation"), dict) else {}
    assert isinstance(evaluation, dict)
    parent = report.get("parent") if isinstance(report.get("parent"), dict) else {}
    assert isinstance(parent, dict)
    lines = ["## Evaluation of the current program"]
    lines.append(f"Scores: {_shown_scores(parent.get('scores'))}")
    if evaluation.get("score") is not None:
        lines.append(f"Stage {evaluation.get('stage')}: mean score {evaluation.get('score')}")
    results = [r for r in evaluation.get("results") or [] if isinstance(r, dict)]
    inputs: dict[str, Any] = {}
    for item in report.get("train_inputs") or []:
        if isinstance(item, dict) and "id" in item:
            inputs[str(item["id"])] = item.get("inputs")

    def key(r: dict[str, Any]) -> tuple[float, str]:
        score = r.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            return (float(score), str(r.get("id")))
        return (float("-inf"), str(r.get("id")))

    worst = sorted(results, key=key)[: config["max_instances"]]
    if worst:
        lines.append(f"Lowest-scoring instances ({len(worst)} of {len(results)}):")
    cap = config["max_field_chars"]
    for r in worst:
        lines.append(f"- instance {r.get('id')}: score {r.get('score')}")
        rid = str(r.get("id"))
        if rid in inputs:
            lines.append(f"  inputs: {_cap(_dump(inputs[rid]), cap)}")
        lines.append(f"  output: {_cap(_dump(r.get('output')), cap)}")
        lines.append(f"  feedback: {_cap(str(r.get('feedback') or ''), cap)}")
    if not results:
        lines.append("No per-instance results are available.")
    return "\n".join(lines)


def _shown_scores(scores: Any) -> str:
    if not isinstance(scores, dict):
        return "none"
    shown = {k: v for k, v in scores.items() if k in _SHOWN_STAGES}
    return json.dumps(shown, sort_keys=True, default=str) if shown else "none"


def _main_score(scores: Any) -> float | None:
    if not isinstance(scores, dict):
        return None
    for stage in _SHOWN_STAGES:
        value = scores.get(stage)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _archive_section(report: dict[str, Any], config: dict[str, Any]) -> str:
    archive = [v for v in report.get("archive") or [] if isinstance(v, dict)]
    lines = ["## Archive (what was tried so far)"]
    if not archive:
        lines.append("Nothing yet: this is the first change.")
        return "\n".join(lines)
    by_id = {v.get("variant_id"): v for v in archive}
    for v in archive[-config["max_archive"] :]:
        info = v.get("meta_info") if isinstance(v.get("meta_info"), dict) else {}
        assert isinstance(info, dict)
        own = _main_score(v.get("scores"))
        parent = by_id.get(v.get("parent_id"))
        base = _main_score(parent.get("scores")) if parent else None
        if own is None or base is None:
            verdict = "unknown"
        else:
            verdict = "yes" if own > base else ("tie" if own == base else "no")
        what = info.get("summary") or info.get("reason") or info.get("error") or ""
        line = (
            f"- variant {v.get('variant_id')} (generation {v.get('generation')}, parent "
            f"{v.get('parent_id')}, {v.get('state')}): scores {_shown_scores(v.get('scores'))}; "
            f"operator {info.get('operator', '?')}; improved on parent: {verdict}"
        )
        if what:
            line += f"; {_cap(str(what), 200)}"
        lines.append(line)
    return "\n".join(lines)


def _instructions(fmt: str) -> str:
    head = (
        "## Instructions\n"
        "Study the failing instances and their feedback, find the cause in the code, and improve "
        "the program. Any file may be edited, created or rewritten, meta_agent.py included. Keep "
        "the program runnable: task_agent.py must keep its solve(inputs) function.\n"
    )
    if fmt == "whole_file":
        return head + (
            "Start your reply with one line `SUMMARY: <what you change and why>`. Then give the "
            "complete new content of every file you change or create, each as:\n"
            "=== FILE: relative/path.py ===\n<full file content>\n=== END FILE ===\n"
            "Paths are relative to the program root; no absolute paths and no `..`."
        )
    if fmt == "tool_loop":
        return head + (
            "Work with tools. Reply with exactly ONE JSON object per message, one of:\n"
            '{"tool": "view", "path": "task_agent.py"}\n'
            '{"tool": "create", "path": "helpers.py", "content": "..."}  (create or overwrite)\n'
            '{"tool": "str_replace", "path": "task_agent.py", "old": "...", "new": "..."}  '
            "(old must occur exactly once)\n"
            '{"tool": "run_sample", "n": 2}  (runs solve on n train inputs; shows outputs or '
            "errors, not scores; llm.complete fails there)\n"
            '{"tool": "done", "summary": "what you changed and why"}\n'
            "Paths are relative to the program root. Finish with done."
        )
    return head + (
        "Start your reply with one line `SUMMARY: <what you change and why>`. Then give edits "
        "as SEARCH/REPLACE blocks:\n"
        "<<<<<<< SEARCH relative/path.py\n<exact lines of the current file>\n=======\n"
        "<replacement lines>\n>>>>>>> REPLACE\n"
        "The SEARCH part must copy existing lines exactly (enough of them to be unique); an "
        "empty SEARCH part creates a new file. Paths are relative to the program root."
    )


# ---------------------------------------------------------------------------------------------
# search_replace
# ---------------------------------------------------------------------------------------------
_SR_START = re.compile(r"^\s*<{5,9} ?SEARCH\b[ \t:]*(.*?)\s*$")
_SR_MID = re.compile(r"^\s*={5,9}\s*$")
_SR_END = re.compile(r"^\s*>{5,9} ?REPLACE\b.*$")


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
            blocks.append((path, _join(search), _join(replace)))
        i = j + 1
    return blocks, problems


def _join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def apply_search_replace(content: str, search: str, replace: str) -> str | None:
    """``content`` with ``search`` replaced by ``replace`` (first match), or None if no match.

    Tried in order: exact text; lines equal up to trailing whitespace; lines equal up to leading
    and trailing whitespace (the replacement is then re-indented by the indentation difference).
    Blank lines at the edges of the SEARCH part are ignored by the tolerant passes.
    """
    if search and search in content:
        return content.replace(search, replace, 1)
    lines = content.splitlines(keepends=True)
    want = search.splitlines()
    while want and not want[0].strip():
        want.pop(0)
    while want and not want[-1].strip():
        want.pop()
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
    want = [ln for ln in search.splitlines()]
    while want and not want[0].strip():
        want.pop(0)
    while want and not want[-1].strip():
        want.pop()
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


def _run_search_replace(
    model: _Model, prompt: str, files: _Files, config: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}]
    retries = config["retries"]
    repairs = config["repair_rounds"]
    summary = ""
    unapplied: list[str] = []
    repair_used = 0
    while True:
        reply = model.ask(messages, "meta:propose")
        messages.append({"role": "assistant", "content": reply})
        blocks, problems = parse_search_replace(reply)
        if not summary:
            summary = _summary_line(reply)
        if not blocks:
            if retries <= 0:
                detail = "; ".join(problems[:3]) or "no SEARCH/REPLACE block found"
                raise ProposalError(f"malformed reply: {detail}")
            retries -= 1
            messages.append({"role": "user", "content": _malformed_sr(problems)})
            continue
        failures: list[str] = []
        for path, search, replace in blocks:
            problem = _apply_block(files, path, search, replace)
            if problem:
                failures.append(problem)
        unapplied = failures
        if not failures or repair_used >= repairs:
            break
        repair_used += 1
        messages.append(
            {
                "role": "user",
                "content": "Some SEARCH/REPLACE blocks could not be applied:\n\n"
                + "\n\n".join(failures)
                + "\n\nThe other blocks were applied; do not send them again. Reply with "
                "corrected SEARCH/REPLACE blocks for the failed ones only, copying the SEARCH "
                "lines exactly from the current file.",
            }
        )
    if not files.changed():
        raise ProposalError(
            "no edit could be applied: " + _cap(" | ".join(unapplied) or "empty edits", 1500)
        )
    extra: dict[str, Any] = {"repair_rounds": repair_used}
    if unapplied:
        extra["unapplied"] = len(unapplied)
    return summary, extra


def _malformed_sr(problems: list[str]) -> str:
    detail = "\n".join(f"- {p}" for p in problems[:5]) or "- no SEARCH/REPLACE block was found"
    return (
        "Your reply could not be used:\n" + detail + "\nReply again with a SUMMARY line and "
        "SEARCH/REPLACE blocks in exactly this form:\n<<<<<<< SEARCH path\n...\n=======\n...\n"
        ">>>>>>> REPLACE"
    )


def _apply_block(files: _Files, path: str, search: str, replace: str) -> str | None:
    """Apply one block to the in-memory files; a diagnostic string if it cannot be applied."""
    rel = files.safe(path)
    if rel is None:
        return f"Block for `{path}`: rejected path (must be relative, inside the program)."
    content = files.read(rel)
    if not search.strip():
        if content is None or not content.strip():
            files.write(rel, replace)
            return None
        return (
            f"Block for `{rel}`: the SEARCH part is empty but the file exists; give the lines "
            "to replace."
        )
    if content is None:
        return f"Block for `{rel}`: no such file (use an empty SEARCH part to create it)."
    new = apply_search_replace(content, search, replace)
    if new is None:
        return (
            f"Block for `{rel}` did not match. Its SEARCH part was:\n{_cap(search, 1500)}\n"
            + closest_lines(content, search)
        )
    files.write(rel, new)
    return None


def _summary_line(reply: str) -> str:
    for line in reply.splitlines():
        m = re.match(r"^\s*\**SUMMARY\**\s*:\s*(.+)$", line, re.IGNORECASE)
        if m:
            return m.group(1).strip()
    for line in reply.splitlines():
        text = line.strip()
        if text and not text.startswith(("<<<<<<<", "=======", ">>>>>>>", "```", "=== ")):
            return text
    return ""


# ---------------------------------------------------------------------------------------------
# whole_file
# ---------------------------------------------------------------------------------------------
_WF_START = re.compile(r"^\s*={3}\s*FILE\s*:\s*(.+?)\s*={3}\s*$")
_WF_END = re.compile(r"^\s*={3}\s*END FILE\s*={3}\s*$")


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
        out.append((m.group(1).strip(), _join(body)))
        i = j + 1
    return out, problems


def _run_whole_file(
    model: _Model, prompt: str, files: _Files, config: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}]
    retries = config["retries"]
    while True:
        reply = model.ask(messages, "meta:propose")
        messages.append({"role": "assistant", "content": reply})
        sections, problems = parse_whole_file(reply)
        rejected = [p for p, _ in sections if files.safe(p) is None]
        valid = [(files.safe(p), c) for p, c in sections if files.safe(p) is not None]
        if valid:
            for rel, content in valid:
                assert rel is not None
                if files.read(rel) != content:
                    files.write(rel, content)
            extra: dict[str, Any] = {"rejected_paths": rejected} if rejected else {}
            if not files.changed():
                raise ProposalError("the rewritten files are identical to the current ones")
            return _summary_line(reply), extra
        detail = problems + [
            f"rejected path `{p}` (must be relative, inside the program)" for p in rejected
        ]
        if retries <= 0:
            raise ProposalError(
                "malformed reply: " + ("; ".join(detail[:3]) or "no `=== FILE: path ===` section")
            )
        retries -= 1
        lines = "\n".join(f"- {d}" for d in detail[:5]) or "- no `=== FILE: path ===` section"
        messages.append(
            {
                "role": "user",
                "content": "Your reply could not be used:\n" + lines + "\nReply again with a "
                "SUMMARY line and full files as `=== FILE: path ===` ... `=== END FILE ===`.",
            }
        )


# ---------------------------------------------------------------------------------------------
# tool_loop
# ---------------------------------------------------------------------------------------------
def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object found in ``text`` (code fences and prose around it are ignored)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _run_tool_loop(
    model: _Model,
    prompt: str,
    files: _Files,
    report: dict[str, Any],
    config: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}]
    retries = config["retries"]
    steps = 0
    tools_used: list[str] = []
    while steps < config["max_steps"]:
        steps += 1
        reply = model.ask(messages, "meta:tool")
        messages.append({"role": "assistant", "content": reply})
        call = extract_json(reply)
        tool = call.get("tool") if call else None
        if not isinstance(tool, str):
            if retries <= 0:
                raise ProposalError("malformed reply: no JSON tool call")
            retries -= 1
            observation = (
                'Error: reply with exactly one JSON object such as {"tool": "view", "path": '
                '"task_agent.py"} or {"tool": "done", "summary": "..."}.'
            )
            messages.append({"role": "user", "content": observation})
            continue
        assert call is not None
        tools_used.append(tool)
        if tool == "done":
            summary = call.get("summary")
            return str(summary or ""), {"steps": steps, "tools": tools_used}
        observation = _tool(call, tool, files, report, config)
        observation = _truncate_middle(observation, config["max_observation_chars"])
        left = config["max_steps"] - steps
        messages.append({"role": "user", "content": f"{observation}\n[{left} steps left]"})
    extra = {"steps": steps, "tools": tools_used, "stopped": "step cap"}
    return "step cap reached", extra


def _tool(
    call: dict[str, Any], tool: str, files: _Files, report: dict[str, Any], config: dict[str, Any]
) -> str:
    if tool == "run_sample":
        n = call.get("n", config["sample_size"])
        n = n if isinstance(n, int) and not isinstance(n, bool) else config["sample_size"]
        files.flush()
        return run_sample(files.root, report, max(1, min(n, 10)), config)
    if tool not in ("view", "create", "str_replace"):
        return f"Error: unknown tool `{tool}`; use view, create, str_replace, run_sample or done."
    rel = files.safe(call.get("path"))
    if rel is None:
        return f"Error: rejected path `{call.get('path')}` (must be relative, inside the program)."
    if tool == "view":
        content = files.read(rel)
        if content is None:
            return f"Error: no such text file `{rel}`."
        numbered = "\n".join(f"{k:>5}| {line}" for k, line in enumerate(content.splitlines(), 1))
        return f"{rel}:\n{numbered}"
    if tool == "create":
        content = call.get("content")
        if not isinstance(content, str):
            return "Error: create needs a string `content`."
        files.write(rel, content)
        return f"Wrote {rel} ({len(content)} characters)."
    old, new = call.get("old"), call.get("new")
    if not isinstance(old, str) or not isinstance(new, str) or not old:
        return "Error: str_replace needs non-empty string `old` and string `new`."
    content = files.read(rel)
    if content is None:
        return f"Error: no such text file `{rel}`."
    count = content.count(old)
    if count != 1:
        hint = closest_lines(content, old) if count == 0 else "Add context to make it unique."
        return f"Error: `old` occurs {count} times in {rel}; it must occur exactly once. {hint}"
    files.write(rel, content.replace(old, new, 1))
    return f"Replaced 1 occurrence in {rel}."


_SAMPLE_SCRIPT = r"""
import importlib.util, json, sys, traceback, types
items = json.loads(sys.stdin.read())
out = []
# The run's model is not reachable from a sample run: a task agent's llm.complete fails there
# (as it does without a model), so agents with a fallback show it.
class LLMError(Exception):
    pass
def _no_model(*args, **kwargs):
    raise LLMError("no language model in a sample run")
_llm = types.ModuleType("llm")
_llm.complete, _llm.LLMError = _no_model, LLMError
sys.modules["llm"] = _llm
try:
    spec = importlib.util.spec_from_file_location("task_agent", "task_agent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
except BaseException:
    print(json.dumps({"import_error": traceback.format_exc()[-1500:]}))
    sys.exit(0)
for item in items:
    try:
        value = mod.solve(item["inputs"])
        out.append({"id": item["id"], "output": json.dumps(value, default=repr)[:1500]})
    except BaseException:
        out.append({"id": item["id"], "error": traceback.format_exc()[-1500:]})
print(json.dumps({"results": out}))
"""


def run_sample(workspace: str, report: dict[str, Any], n: int, config: dict[str, Any]) -> str:
    """Run the workspace's ``task_agent.solve`` on ``n`` train inputs in a subprocess."""
    items = [
        {"id": item.get("id"), "inputs": item.get("inputs")}
        for item in report.get("train_inputs") or []
        if isinstance(item, dict)
    ][:n]
    if not items:
        return "No train inputs are available to run."
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SAMPLE_SCRIPT],
            input=json.dumps(items, default=str),
            capture_output=True,
            text=True,
            cwd=workspace,
            timeout=max(1, config["sample_timeout"]),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"Error: the sample run exceeded {config['sample_timeout']} s."
    except OSError as exc:
        return f"Error: cannot run the sample: {exc}"
    last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    try:
        data = json.loads(last[0]) if last else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return f"Error: the sample run failed (exit {proc.returncode}):\n{proc.stderr[-1500:]}"
    if "import_error" in data:
        return f"Error: task_agent.py failed to import:\n{data['import_error']}"
    lines = [f"Ran solve on {len(items)} train input(s) (no scores are available here):"]
    for r in data.get("results", []):
        if "error" in r:
            lines.append(f"- {r.get('id')}: ERROR\n{r['error']}")
        else:
            lines.append(f"- {r.get('id')}: output {r.get('output')}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reviewer
# ---------------------------------------------------------------------------------------------
def _diff(files: _Files) -> str:
    chunks: list[str] = []
    for rel in files.changed():
        old = files.originals.get(rel) or ""
        new = files.overlay.get(rel, "")
        chunks.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{rel}",
                tofile=f"b/{rel}",
            )
        )
    return _truncate_middle("".join(chunks), 20000)


def _review(model: _Model, files: _Files, report: dict[str, Any]) -> dict[str, Any] | None:
    task = report.get("task") if isinstance(report.get("task"), dict) else {}
    assert isinstance(task, dict)
    prompt = (
        f"You review a change to a program that solves the task `{task.get('name', '?')}`: "
        f"{_cap(str(task.get('description', '')), 1000)}\n\nThe change (unified diff):\n"
        f"{_diff(files)}\n\nLook for bugs, regressions, overfitting to specific instances and "
        "broken files. Answer with ONE JSON object only:\n"
        '{"issue_type": "bug|regression|overfitting|style|none", "severity": '
        '"none|low|medium|high|critical", "suggested_fix": "...", "confidence": 0.0-1.0}'
    )
    reply = model.ask([{"role": "user", "content": prompt}], "meta:review")
    return parse_review(reply)


def parse_review(text: str) -> dict[str, Any] | None:
    """The reviewer's structured feedback from ``text`` (JSON, or ``key: value`` lines)."""
    data = extract_json(text)
    if data is None:
        data = {}
        for key in ("issue_type", "severity", "suggested_fix", "confidence"):
            pattern = rf"[\"']?{key}[\"']?\s*[:=]\s*[\"']?([^\n\"']+)"
            m = re.search(pattern, text, re.IGNORECASE)
            if m:
                data[key] = m.group(1).strip().rstrip(",")
    if not any(k in data for k in ("issue_type", "severity", "suggested_fix", "confidence")):
        return None
    severity = str(data.get("severity", "")).strip().lower()
    review: dict[str, Any] = {
        "issue_type": _cap(str(data.get("issue_type") or "unknown").strip(), 100),
        "severity": severity if severity in _SEVERITIES else (severity[:40] or "unknown"),
        "suggested_fix": _cap(str(data.get("suggested_fix") or "").strip(), 1000),
        "confidence": _confidence(data.get("confidence")),
    }
    return review


def _confidence(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        pct = text.endswith("%")
        m = re.match(r"^-?\d+(\.\d+)?", text.rstrip("%").strip())
        if not m:
            return {"low": 0.25, "medium": 0.5, "high": 0.85}.get(text.lower())
        number = float(m.group(0))
        value = number / 100 if pct else number
    if not isinstance(value, (int, float)):
        return None
    number = float(value)
    if number > 1.0:
        number = number / 100.0
    return round(min(1.0, max(0.0, number)), 4)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _truncate_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit * 2 // 3]
    tail = text[-(limit // 3) :]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n[... {omitted} characters omitted ...]\n{tail}"


def _dump(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _fit(info: dict[str, Any]) -> dict[str, Any]:
    """Keep ``info`` JSON-able and under the engine's size limit."""
    info = json.loads(json.dumps(info, default=str))
    if len(json.dumps(info)) > _MAX_INFO_BYTES:
        info["files"] = info.get("files", [])[:50]
        info.pop("tools", None)
    return info

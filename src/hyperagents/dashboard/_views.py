"""What the dashboard's pages show, as JSON built from storage alone (no engine, no task code)."""

from __future__ import annotations

import html
import io
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound

from hyperagents.archive import ancestry, tree_rows
from hyperagents.exceptions import VariantNotFoundError
from hyperagents.program import Program, is_binary
from hyperagents.runs import (
    EXPORT_COLUMNS,
    DiffLimits,
    FileDiff,
    canonical_kind,
    champion_of,
    compare,
    engine_alive,
    engine_label,
    hunk_header,
    model_view,
    run_engines,
    run_identity,
    status_label,
    training_summary,
    variant_row,
)
from hyperagents.storages import (
    BaseStorage,
    EventRecord,
    LLMCallRecord,
    RunRecord,
    VariantRecord,
    VariantState,
)

__all__ = [
    "ARCHIVE_COLUMNS",
    "archive",
    "diff",
    "diff_archive",
    "diff_sides",
    "engine_alive",
    "event_json",
    "file_view",
    "is_arena",
    "lineage",
    "llm_calls",
    "overview",
    "run_row",
    "variant_detail",
]

#: Columns of the archive table (the export's, less the program id).
ARCHIVE_COLUMNS = tuple(c for c in EXPORT_COLUMNS if c != "program_id")
#: Files larger than this are shown without highlighting.
_HIGHLIGHT_LIMIT = 512 * 1024
#: Most characters one diff highlights (both sides of every file); the rest is plain text.
_HIGHLIGHT_BUDGET = 512 * 1024
_SHOWN_LIMIT = 2 * 1024 * 1024


def _llm_totals(store: BaseStorage, record: RunRecord) -> dict[str, Any]:
    usage = store.llm_usage(record.id)
    config = record.config
    return {
        **usage,
        "tokens": int(usage["prompt_tokens"]) + int(usage["completion_tokens"]),
        "model": config.get("llm"),
        "max_cost": config.get("max_cost"),
        "max_tokens": config.get("max_tokens"),
    }


def is_arena(record: RunRecord) -> bool:
    """Whether ``record`` is an arena (its mode, or the attribute the arena gives its run)."""
    return record.mode == "arena" or record.attrs.get("arena") is True


def run_row(
    store: BaseStorage,
    record: RunRecord,
    variants: Sequence[VariantRecord] | None = None,
    llm: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One line of the runs page (``variants`` and ``llm`` totals when already at hand)."""
    variants = store.list_variants(record.id) if variants is None else variants
    best = champion_of(variants)
    llm = _llm_totals(store, record) if llm is None else llm
    return {
        **run_identity(record),
        "live": engine_alive(record),
        "arena": is_arena(record),
        "label": status_label(record),  # e.g. "running (engine dead)"
        "variants": len(variants),
        "generations": max((v.generation for v in variants), default=0),
        "target_generations": record.target_generations,
        "best_val": None if best is None else best.scores.get("val"),
        "champion_test": None if best is None else best.scores.get("test"),
        "champion": None if best is None else best.id,
        "cost": llm["cost"],
        "tokens": llm["tokens"],
        "experiment": record.experiment,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


#: Columns of the runs export.
RUN_COLUMNS = (
    "id",
    "name",
    "task",
    "mode",
    "seed",
    "status",
    "variants",
    "generations",
    "target_generations",
    "best_val",
    "champion_test",
    "champion",
    "cost",
    "tokens",
    "experiment",
    "created_at",
    "updated_at",
)


def event_json(event: EventRecord) -> dict[str, Any]:
    """An event as JSON."""
    return {
        "id": event.id,
        "variant_id": event.variant_id,
        "kind": canonical_kind(event.kind),  # an old name shown as the current one
        "message": event.message,
        "data": dict(event.data),
        "created_at": event.created_at.isoformat(),
    }


def _short(variant: VariantRecord | None) -> dict[str, Any] | None:
    if variant is None:
        return None
    return {
        "id": variant.id,
        "generation": variant.generation,
        "state": variant.state.name.lower(),
        "scores": dict(variant.scores),
    }


def _flying(v: VariantRecord) -> dict[str, Any]:
    """A variant in flight, as the overview lists it."""
    return {
        "id": v.id,
        "generation": v.generation,
        "state": v.state.name.lower(),
        "parent_id": v.parent_id,
        "since": v.updated_at.isoformat() if v.updated_at else None,
    }


def overview(store: BaseStorage, record: RunRecord) -> dict[str, Any]:
    """The run overview: learning curve, budget, champion, progress and the latest events."""
    variants = store.list_variants(record.id)
    best = champion_of(variants)
    seed = next((v for v in variants if v.generation == 0), None)
    counts: dict[str, int] = {}
    for v in variants:
        counts[v.state.name.lower()] = counts.get(v.state.name.lower(), 0) + 1
    curve: dict[str, list[Any]] = {
        "generation": [],
        "id": [],
        "state": [],
        "val": [],
        "best_val": [],
        "test": [],
    }
    running_best: float | None = None
    for v in sorted(variants, key=lambda v: v.generation):
        val = v.scores.get("val") if v.state is VariantState.COMPLETE else None
        if val is not None:
            running_best = val if running_best is None else max(running_best, val)
        curve["generation"].append(v.generation)
        curve["id"].append(v.id)
        curve["state"].append(v.state.name.lower())
        curve["val"].append(val)
        curve["best_val"].append(running_best)
        curve["test"].append(v.scores.get("test"))
    in_flight = [_flying(v) for v in variants if not v.state.is_terminal]
    recent = store.list_events(record.id, newest_first=True, limit=15)
    target = record.target_generations
    done = sum(1 for v in variants if v.generation > 0 and v.state.is_terminal)
    llm = _llm_totals(store, record)
    return {
        "run": run_row(store, record, variants, llm) | {"config": dict(record.config)},
        "states": counts,
        "curve": curve,
        "seed": _short(seed),
        "champion": _short(best),
        "budget": {
            "generations_done": done,
            "target_generations": target,
            "elapsed_seconds": record.elapsed_seconds,
            "evaluations": sum(len(v.scores) for v in variants),
            "max_seconds": record.config.get("max_seconds"),
            "max_evaluations": record.config.get("max_evaluations"),
            "llm": llm,
        },
        "in_flight": in_flight,
        "engines": run_engines(store, record, variants=variants),
        "events": [event_json(e) for e in recent],
    }


def archive(store: BaseStorage, record: RunRecord) -> dict[str, Any]:
    """Every variant of the run as table rows (column-ordered lists keep 10,000 rows small)."""
    variants = store.list_variants(record.id)
    best = champion_of(variants)
    rows = []
    for v in variants:
        row = variant_row(v)
        if isinstance(row["reason"], str) and len(row["reason"]) > 300:
            row["reason"] = row["reason"][:300] + "…"
        rows.append([row[c] for c in ARCHIVE_COLUMNS])
    return {
        "columns": list(ARCHIVE_COLUMNS),
        "rows": rows,
        "champion": None if best is None else best.id,
    }


def lineage(store: BaseStorage, record: RunRecord) -> dict[str, Any]:
    """The archive as a laid-out tree: x = generation, y = row; column-ordered lists."""
    variants = store.list_variants(record.id)
    rows = tree_rows(variants)
    best = champion_of(variants)
    return {
        "id": [v.id for v in variants],
        "generation": [v.generation for v in variants],
        "parent": [v.parent_id for v in variants],
        "row": [rows.get(v.id, 0.0) for v in variants],
        "state": [v.state.name.lower() for v in variants],
        "val": [
            v.scores.get("val") if v.state is VariantState.COMPLETE else None for v in variants
        ],
        "champion": None if best is None else best.id,
        "path": ancestry(variants, None if best is None else best.id),
    }


def variant_detail(store: BaseStorage, variant: VariantRecord) -> dict[str, Any]:
    """Everything about one variant except file contents and the LLM transcript (its model:
    the files under ``model/`` with sizes and hashes, and its config pretty-printed)."""
    record = store.get_run(variant.run_id)
    program = store.get_program(variant.program_id) if variant.program_id else None
    model = model_view(program) if program is not None else None
    siblings = store.list_variants(variant.run_id)
    children = [v.id for v in siblings if v.parent_id == variant.id and v.id != variant.id]
    metrics = {k: v for k, v in variant.metrics.items()}
    improve = metrics.get("improve")
    log_tail = None
    if isinstance(improve, Mapping):
        log_tail = improve.get("log_tail")
        metrics["improve"] = {k: v for k, v in improve.items() if k != "log_tail"}
    evaluations = [
        {
            "stage": e.stage,
            "split": e.split,
            "score": e.score,
            "n": e.n,
            "metrics": dict(e.metrics),
            "results": [dict(r) for r in e.results],
            "created_at": e.created_at.isoformat(),
            "engine": engine_label(e.engine) or None,
            "worker": e.worker,
        }
        for e in store.list_evaluations(variant.id)
    ]
    usage = store.llm_usage(variant.run_id, variant_id=variant.id)
    best = champion_of(siblings)
    return {
        "id": variant.id,
        "run": {"id": record.id, "name": record.name, "task": record.task, "mode": record.mode},
        "generation": variant.generation,
        "parent_id": variant.parent_id,
        "children": children,
        "state": variant.state.name.lower(),
        "reason": variant.reason,
        "scores": dict(variant.scores),
        "metrics": metrics,
        "meta_info": dict(variant.meta_info),
        "meta_log": log_tail if isinstance(log_tail, str) else None,
        "program_id": variant.program_id,
        "engine": engine_label(variant.engine) or None,
        "worker": variant.worker,
        "files": []
        if program is None
        else [{"path": p, "size": len(program[p])} for p in sorted(program)],
        "model": None if model is None else model.as_json(),
        "evaluations": evaluations,
        "training": training_summary(variant, program, store),
        "llm": usage,
        "is_champion": best is not None and best.id == variant.id,
        "created_at": variant.created_at.isoformat() if variant.created_at else None,
        "updated_at": variant.updated_at.isoformat() if variant.updated_at else None,
    }


# -- files and diffs --------------------------------------------------------------------------
def _lexer(path: str) -> Lexer:
    try:
        lexer: Lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
        return lexer
    except ClassNotFound:
        plain: Lexer = TextLexer(stripnl=False, ensurenl=False)
        return plain


def _css_class(kind: _TokenType) -> str:
    while kind not in STANDARD_TYPES and kind.parent is not None:
        kind = kind.parent
    return str(STANDARD_TYPES.get(kind, ""))


def _lines(text: str) -> list[str]:
    """``text`` split at newlines only (``str.splitlines`` also splits at form feeds and other
    separators that code may hold), without the empty piece after a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _normal(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def highlight_lines(path: str, text: str) -> list[str]:
    """``text`` as one HTML string per line: escaped, tokens in Pygments' CSS classes."""
    text = _normal(text)
    if len(text) > _HIGHLIGHT_LIMIT:
        return [html.escape(line) for line in _lines(text)]
    lines: list[str] = [""]
    for kind, value in _lexer(path).get_tokens(text):
        css = _css_class(kind)
        for index, piece in enumerate(value.split("\n")):
            if index:
                lines.append("")
            if piece:
                escaped = html.escape(piece)
                lines[-1] += f'<span class="{css}">{escaped}</span>' if css else escaped
    if text.endswith("\n") and lines and lines[-1] == "":
        lines.pop()
    return lines


def _text(program: Program, path: str) -> str | None:
    """A file's text, or None when it is binary (weights, any artifact: never decoded)."""
    data = program[path]
    return None if is_binary(path, data) else data.decode("utf-8")


def file_view(program: Program, path: str) -> dict[str, Any]:
    """One file of a program, highlighted. ``path`` is looked up in the program's manifest
    only: nothing is read from disk.

    Raises:
        VariantNotFoundError: The program has no such file.
    """
    if path not in program:
        raise VariantNotFoundError(f"no file {path!r} in this program")
    text = _text(program, path)
    size = len(program[path])
    if text is None:
        digest = program.blobs[path]
        return {"path": path, "size": size, "binary": True, "sha256": digest, "lines": []}
    truncated = len(text) > _SHOWN_LIMIT
    if truncated:
        text = text[:_SHOWN_LIMIT]
    return {
        "path": path,
        "size": size,
        "binary": False,
        "truncated": truncated,
        "lines": highlight_lines(path, text),
    }


def diff_sides(
    store: BaseStorage, record: VariantRecord, against: int | None
) -> tuple[VariantRecord | None, Program | None, Program]:
    """What a variant's diff compares: ``(base, its program, the variant's program)``. The base
    is ``against`` when given, else the variant's parent in its run (None: a seed).

    Raises:
        VariantNotFoundError: The variant has no program, or ``against`` does not exist.
    """
    if record.program_id is None:
        raise VariantNotFoundError(f"variant {record.id} has no program")
    base_id = against if against is not None else record.parent_id
    base = store.get_variant(base_id) if base_id is not None else None
    if base is not None and base.run_id != record.run_id and against is None:
        base = None
    old = store.get_program(base.program_id) if base and base.program_id else None
    return base, old, store.get_program(record.program_id)


def diff(
    old: Program | None, new: Program, *, context: int = 3, limits: DiffLimits | None = None
) -> dict[str, Any]:
    """The changes from ``old`` to ``new`` per file, as hunks of highlighted lines, within
    ``limits`` (see :class:`hyperagents.runs.DiffLimits`).

    Each line is ``[kind, old_number, new_number, html]`` with kind ``" "``, ``"-"`` or
    ``"+"``; numbers are 1-based (None on the side a line is absent from). A file that was not
    compared carries ``too_large`` (why) and no hunks; ``too_large`` at the top says why no file
    was (the totals are over the limits). A binary file carries ``binary`` and git's line
    (``Binary files a/p and b/p differ``) as ``note``.
    """
    limits = limits or DiffLimits()
    compared = compare(old, new, limits=limits, context=context, normalize=True)
    budget = {"highlight": _HIGHLIGHT_BUDGET, "output": limits.output_bytes}
    files: list[dict[str, Any]] = []
    for f in compared.files:
        row: dict[str, Any] = {"path": f.path, "status": f.status, "size": f.new_size}
        if f.binary:
            a = "/dev/null" if f.status == "added" else f"a/{f.path}"
            b = "/dev/null" if f.status == "deleted" else f"b/{f.path}"
            note = f"Binary files {a} and {b} differ"
            files.append(row | {"binary": True, "note": note, "old_size": f.old_size, "hunks": []})
        elif f.too_large is not None:
            files.append(row | {"too_large": f.too_large, "hunks": []})
        elif (hunks := _html_hunks(f, budget)) is None:
            why = f"the page's limit of {limits.output_bytes // (1024 * 1024)} MiB was reached"
            budget["output"] = 0
            files.append(row | {"too_large": why, "hunks": []})
        else:
            files.append(row | {"added": f.added, "removed": f.removed, "hunks": hunks})
    return {"too_large": compared.too_large, "files": files}


def _side_html(path: str, lines: Sequence[str], budget: dict[str, int]) -> list[str]:
    """One side of a file as HTML lines: highlighted while the highlighting budget lasts."""
    text = "".join(lines)
    if len(text) > budget["highlight"]:
        return [html.escape(line.rstrip("\n")) for line in lines]
    budget["highlight"] -= len(text)
    return highlight_lines(path, text)


def _html_hunks(f: FileDiff, budget: dict[str, int]) -> list[dict[str, Any]] | None:
    """The file's hunks as HTML lines; None when they would exceed the output budget."""
    a_html = _side_html(f.path, f.old_lines, budget)
    b_html = _side_html(f.path, f.new_lines, budget)
    left = budget["output"]
    hunks = []
    for group in f.groups:
        lines: list[list[Any]] = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines.extend(
                    [" ", i + 1, j1 + k + 1, a_html[i]] for k, i in enumerate(range(i1, i2))
                )
                continue
            if tag in ("replace", "delete"):
                lines.extend(["-", i + 1, None, a_html[i]] for i in range(i1, i2))
            if tag in ("replace", "insert"):
                lines.extend(["+", None, j + 1, b_html[j]] for j in range(j1, j2))
        left -= sum(len(line[3]) + 24 for line in lines)
        if left < 0:
            return None
        hunks.append({"header": hunk_header(group), "lines": lines})
    budget["output"] = left
    return hunks


def diff_archive(old: Program | None, new: Program) -> bytes:
    """Both programs of a diff as a ZIP file, ``a/`` (before; empty for a seed) and ``b/``
    (after): what the page offers when a diff is too large to show (``diff -ru a b``). Its cost
    grows with the programs' size only; their paths are relative without ``..`` (a
    :class:`~hyperagents.program.Program` holds no other)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for side, program in (("a", old), ("b", new)):
            if program is None:
                zf.writestr(f"{side}/", b"")
                continue
            for path in program:
                zf.writestr(f"{side}/{path}", program[path])
    return buffer.getvalue()


def llm_calls(calls: Sequence[LLMCallRecord]) -> list[dict[str, Any]]:
    """A variant's LLM transcript: every attempt with its messages, reply or error and cost."""
    return [
        {
            "id": c.id,
            "purpose": c.purpose,
            "provider": c.provider,
            "model": c.model,
            "attempt": c.attempt,
            "cached": c.cached,
            "messages": list(c.request.get("messages") or []),
            "params": dict(c.request.get("params") or {}),
            "reply": c.reply,
            "error": c.error,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "cost": c.cost,
            "latency": c.latency,
            "created_at": c.created_at.isoformat(),
        }
        for c in calls
    ]

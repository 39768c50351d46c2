"""Commands that inspect what a run recorded: ``show``, ``diff``, ``lineage``, ``export``."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

from hyperagents._untrusted import printable
from hyperagents.cli._shared import (
    StorageOpt,
    agent_text,
    console,
    emit,
    err_console,
    errors,
    existing_storage,
    fmt_value,
)
from hyperagents.exceptions import RunStateError, VariantNotFoundError
from hyperagents.program import Program, is_binary
from hyperagents.runs import (
    EXPORT_COLUMNS,
    DiffLimits,
    ModelView,
    ProgramDiff,
    champion_of,
    compare,
    csv_text,
    find_run,
    model_view,
    resolve_variant,
    run_export,
    stored_reviews,
    training_summary,
    unified_text,
    variant_row,
)
from hyperagents.storages import BaseStorage, VariantRecord, VariantState

__all__ = ["ExportFormat", "diff", "export", "lineage", "show"]


class ExportFormat(StrEnum):
    """Formats of ``export``."""

    csv = "csv"
    json = "json"


#: Characters of meta info and of one instance's feedback ``show`` prints without ``--full``.
META_INFO_LIMIT = 4000
FEEDBACK_LIMIT = 300


def cut(text: str, limit: int | None) -> str:
    """``text`` whole when ``limit`` is None or it fits; otherwise cut at the last line break
    before ``limit`` (a space when no line is that long), saying how much is left out and how to
    see it."""
    if limit is None or len(text) <= limit:
        return text
    end = text.rfind("\n", 0, limit)
    if end <= limit // 2:  # no line break late enough: a space, else the limit itself
        end = text.rfind(" ", 0, limit)
    if end <= limit // 2:
        end = limit
    return f"{text[:end]}\n… ({len(text) - end} more characters; --full shows them)"


def show(
    variant: Annotated[
        str, typer.Argument(metavar="VARIANT", help="ID, RUN/GENERATION or RUN/champion.")
    ],
    storage: StorageOpt = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="Print this file.")] = None,
    failures: Annotated[int, typer.Option(help="Failing instances to list per stage.")] = 5,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help=f"Print meta info and feedback whole (else cut at {META_INFO_LIMIT} and "
            f"{FEEDBACK_LIMIT} characters, saying so).",
        ),
    ] = False,
) -> None:
    """Files, model, scores, metrics, meta info and per-instance feedback of a variant."""
    with errors():
        store = existing_storage(storage)
        record = resolve_variant(store, variant)
        program = store.get_program(record.program_id) if record.program_id else None
        if file is not None:
            if program is None or file not in program:
                raise VariantNotFoundError(f"variant {record.id} has no file {file!r}")
            _print_file(program, file)
            return
        console.print(_variant_table(record, store.get_run(record.run_id).name, program, full))
        review = stored_reviews(store, record.run_id).get(record.id)
        if review is not None:
            console.print(_review_table(review))
        model = model_view(program) if program is not None else None
        if model is not None:
            _print_model(model)
        for evaluation in store.list_evaluations(record.id):
            worst = sorted(evaluation.results, key=lambda r: r.get("score", 0))[:failures]
            worst = [r for r in worst if r.get("score", 0) < run_record_max(evaluation)]
            if not worst:
                continue
            sub = Table(title=agent_text(f"{evaluation.stage}: lowest-scoring instances"))
            for column in ("instance", "score", "feedback"):
                sub.add_column(column, overflow="fold")
            for r in worst:
                feedback = cut(str(r.get("feedback")), None if full else FEEDBACK_LIMIT)
                sub.add_row(
                    agent_text(r.get("id")),
                    agent_text(fmt_value(r.get("score"))),
                    agent_text(feedback),
                )
            console.print(sub)


def _variant_table(
    record: VariantRecord, run_name: str, program: Program | None, full: bool
) -> Table:
    """The variant's state, scores, metrics, meta info (pretty JSON) and files."""
    table = Table(
        title=agent_text(f"variant {record.id}: run {run_name}, generation {record.generation}"),
        show_header=False,
    )
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("state", record.state.name.lower())
    table.add_row("parent", "-" if record.parent_id is None else str(record.parent_id))
    if record.reason:
        table.add_row("reason", agent_text(record.reason))
    for stage, value in record.scores.items():
        table.add_row(agent_text(f"score {stage}"), fmt_value(value))
    for stage, metrics in record.metrics.items():
        if isinstance(metrics, dict) and stage != "training":
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in metrics.items()
                if k != "log_tail"
            )
            table.add_row(agent_text(f"metrics {stage}"), agent_text(shown))
    training = training_summary(record, program)
    if training is not None:
        _training_rows(table, training)
    if record.meta_info:
        info = {k: v for k, v in record.meta_info.items() if k not in ("params",)}
        text = json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        table.add_row("meta info", agent_text(cut(text, None if full else META_INFO_LIMIT)))
    if program is not None:
        table.add_row("files", agent_text(", ".join(f"{p} ({len(program[p])} B)" for p in program)))
        table.add_row("program", program.id)
    return table


def _review_table(review: dict[str, Any]) -> Table:
    """The reviewer's review of the variant (or why it gave none)."""
    table = Table(title="review (after its evaluation)", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    if "error" in review:
        table.add_row("no review", agent_text(str(review["error"])))
        return table
    for key in ("issue_type", "severity", "fix_suggestion", "confidence", "pattern_detected"):
        table.add_row(key, agent_text(fmt_value(review.get(key))))
    if review.get("source"):
        table.add_row("source", agent_text(str(review["source"])))
    return table


def _print_file(program: Program, path: str) -> None:
    """A file with line numbers; a binary one (weights) as its size and hash, never its
    bytes."""
    data = program[path]
    if is_binary(path, data):
        console.print(
            agent_text(f"{path}: binary file, {len(data)} bytes, sha256 {program.blobs[path]}"),
            highlight=False,
        )
        return
    console.print(Syntax(printable(data.decode("utf-8")), "python", line_numbers=True))


def _print_model(model: ModelView) -> None:
    """A variant's model: its files with sizes and hashes, and its config pretty-printed."""
    table = Table(title=f"model: {len(model.files)} files, {model.size} bytes")
    for column in ("file", "size", "sha256"):
        table.add_column(column, overflow="fold")
    for f in model.files:
        table.add_row(agent_text(f.path), f"{f.size} B", f.sha256)
    console.print(table)
    if model.config is not None:
        console.print("model/config.json:", highlight=False)
        console.print(Syntax(printable(model.config), "json"))
    elif model.config_error is not None:
        console.print(agent_text(f"model/config.json not shown: {model.config_error}"))


def run_record_max(evaluation: Any) -> float:
    """Highest per-instance score of an evaluation (instances below it are shown)."""
    return max((float(r.get("score", 0)) for r in evaluation.results), default=0.0)


def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="Variant (ID, RUN/GEN, RUN/champion).")],
    b: Annotated[
        str | None,
        typer.Argument(
            metavar="B", help="Other variant (default: A's parent, diffed as parent → A)."
        ),
    ] = None,
    storage: StorageOpt = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Print the diff however large it is (no size limits)."),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the whole diff to this file, as it is (no size limits)."
        ),
    ] = None,
) -> None:
    """Unified diff between two variants' programs (or a variant and its parent).

    A diff larger than the limits (512 KiB or 10,000 lines per file, 4 MiB or 40,000 lines in
    all, 4 MiB printed) is not computed: a notice says why; --out FILE or --full asks for it.
    """
    with errors():
        store = existing_storage(storage)
        old, new = _diffed_variants(store, a, b)
        assert old.program_id is not None and new.program_id is not None
        before, after = store.get_program(old.program_id), store.get_program(new.program_id)
        if out is not None:
            text = before.diff(after)
            out.write_text(text, encoding="utf-8")
            err_console.print(f"wrote the diff ({len(text)} characters) to {escape(str(out))}")
            return
        text = before.diff(after) if full else _bounded_diff(before, after, old.id, new.id)
        if not text:
            console.print(f"variants {old.id} and {new.id} have identical programs")
        elif sys.stdout.isatty():
            console.print(Syntax(printable(text), "diff"))
        else:
            sys.stdout.write(printable(text))


def _diffed_variants(
    store: BaseStorage, a: str, b: str | None
) -> tuple[VariantRecord, VariantRecord]:
    """``(old, new)``: variants ``a`` and ``b``, or ``a``'s parent and ``a``.

    Raises:
        RunStateError: ``a`` has no parent (and ``b`` is not given), or one has no program.
    """
    first = resolve_variant(store, a)
    if b is None:
        if first.parent_id is None:
            raise RunStateError(f"variant {first.id} has no parent; give two variants")
        old, new = store.get_variant(first.parent_id), first
    else:
        old, new = first, resolve_variant(store, b)
    for v in (old, new):
        if v.program_id is None:
            raise RunStateError(f"variant {v.id} has no program ({v.state.name.lower()})")
    return old, new


def _bounded_diff(before: Program, after: Program, old: int, new: int) -> str:
    """The unified diff within :class:`DiffLimits` (exits with a notice when it is over them).

    Raises:
        typer.Exit: The diff is too large to print.
    """
    limits = DiffLimits()
    compared = compare(before, after, limits=limits)
    if not compared.complete:
        _too_large(compared, old, new, None)
    bounded = unified_text(compared, limit=limits.output_bytes)
    if bounded is None:
        _too_large(compared, old, new, f"over {limits.output_bytes // 2**20} MiB")
    return bounded


def _too_large(compared: ProgramDiff, old: int, new: int, why: str | None) -> NoReturn:
    """Say that a diff is too large to print (and which files it changes); exit 1.

    Raises:
        typer.Exit: Always.
    """
    why = why or compared.too_large or next(f.too_large for f in compared.files if f.too_large)
    err_console.print(
        f"the diff of variants {old} and {new} is too large to print: {escape(printable(why))}",
        highlight=False,
    )
    for file in compared.files[:20]:
        note = f": {file.too_large}" if file.too_large and not compared.too_large else ""
        err_console.print(
            f"  {file.status} {escape(printable(file.path))} "
            f"({file.old_size} → {file.new_size} bytes){escape(printable(note))}",
            highlight=False,
        )
    if len(compared.files) > 20:
        err_console.print(f"  … and {len(compared.files) - 20} more files")
    err_console.print("write it to a file with --out FILE, or print it anyway with --full")
    raise typer.Exit(1)


def lineage(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    storage: StorageOpt = None,
    all_variants: Annotated[
        bool, typer.Option("--all", help="Include failed, invalid and pruned children.")
    ] = False,
    max_depth: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """The archive as a tree in the terminal (champion path in bold)."""
    with errors():
        store = existing_storage(storage)
        record = find_run(store, run_name)
        variants = store.list_variants(record.id)
        by_parent: dict[int | None, list[VariantRecord]] = {}
        for v in variants:
            if all_variants or v.state is VariantState.COMPLETE or v.generation == 0:
                by_parent.setdefault(v.parent_id, []).append(v)
        champ = champion_of(variants)
        path: set[int] = set()
        by_id = {v.id: v for v in variants}
        node = champ
        while node is not None:
            path.add(node.id)
            node = by_id.get(node.parent_id) if node.parent_id is not None else None

        def label(v: VariantRecord) -> str:
            score = v.scores.get("val")
            text = f"#{v.id} gen {v.generation} val {fmt_value(score)}"
            if v.state is not VariantState.COMPLETE:
                text += f" [dim]{v.state.name.lower()}[/]"
            if champ is not None and v.id == champ.id:
                text += " [bold green]★ champion[/]"
            return f"[bold]{text}[/]" if v.id in path else text

        roots = by_parent.get(None, [])
        tree = Tree(f"run {record.name}")

        def add(parent_tree: Tree, v: VariantRecord, depth: int) -> None:
            branch = parent_tree.add(label(v))
            if max_depth is not None and depth >= max_depth:
                return
            for child in by_parent.get(v.id, []):
                add(branch, child, depth + 1)

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
        for root in roots:
            add(tree, root, 1)
        console.print(tree)


def export(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.csv,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Export a run's variants (scores, metrics, lineage) as CSV or JSON."""
    with errors():
        store = existing_storage(storage)
        record = find_run(store, run_name)
        variants = store.list_variants(record.id)
        if fmt is ExportFormat.csv:
            text = csv_text((variant_row(v) for v in variants), EXPORT_COLUMNS)
        else:
            payload = run_export(record, variants)
            text = json.dumps(payload, indent=2, default=str) + "\n"
        emit(text, out)
        if out is not None:
            err_console.print(f"wrote {len(variants)} variants to {escape(str(out))}")


def _training_rows(table: Table, training: dict[str, Any]) -> None:
    """The variant's lever, its training's state, data sources and curve (its model is shown
    with its files)."""
    lever = training.get("lever", "-")
    if training.get("chosen") not in (None, lever):
        lever += f" (chose {training['chosen']}: {training.get('reduced', '')})"
    table.add_row("lever", agent_text(lever))
    state = str(training.get("state", "-"))
    if training.get("reason"):
        state += f": {training['reason']}"
    table.add_row("training", agent_text(state))
    if training["sources"]:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(training["sources"].items()))
        table.add_row("training data", agent_text(f"{training.get('examples', 0)} ({counts})"))
    curve = training["curve"]
    if curve:
        table.add_row(
            "training curve",
            agent_text(
                f"{sparkline([p['loss'] for p in curve])}  loss {curve[0]['loss']:.4g} → "
                f"{curve[-1]['loss']:.4g} over {curve[-1]['step'] + 1} steps"
            ),
        )


def sparkline(values: list[float], width: int = 24) -> str:
    """``values`` as a line of block characters (thinned to ``width``)."""
    if not values:
        return ""
    step = max(1, len(values) // width)
    shown = values[::step][:width]
    low, high = min(shown), max(shown)
    bars = "▁▂▃▄▅▆▇█"
    span = high - low or 1.0
    return "".join(bars[int((v - low) / span * (len(bars) - 1))] for v in shown)

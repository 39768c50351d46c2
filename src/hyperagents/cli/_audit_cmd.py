"""``hyperagents audit``: a run's state changes, with who or what decided and why."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hyperagents.cli._shared import (
    StorageOpt,
    agent_text,
    console,
    emit,
    err_console,
    errors,
    existing_storage,
)
from hyperagents.runs import (
    AUDIT_COLUMNS,
    EVENT_KINDS,
    KIND_ALIASES,
    audit_rows,
    check_kinds,
    csv_text,
    find_run,
    resolve_variant,
)

__all__ = ["AuditFormat", "audit"]


class AuditFormat(StrEnum):
    """Formats of ``audit``."""

    table = "table"
    csv = "csv"
    json = "json"


_OLD_NAMES = ", ".join(f"{old} (now {new})" for old, new in KIND_ALIASES.items())
_KIND_HELP = (
    f"Only these kinds (repeatable): {', '.join(EVENT_KINDS)}. Old names are accepted: "
    f"{_OLD_NAMES}."
)


def audit(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run name or id.")],
    storage: StorageOpt = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", "-k", help=_KIND_HELP)] = None,
    variant: Annotated[
        str | None, typer.Option(help="Only this variant (ID, RUN/GEN, RUN/champion).")
    ] = None,
    fmt: Annotated[
        AuditFormat,
        typer.Option("--format", "-f", help="table on a terminal; with --out, table writes CSV."),
    ] = AuditFormat.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
) -> None:
    """Every state change of a run (created, validated, rejected, evaluated, promoted, stopped…)
    with who or what decided and why; as a table, CSV or JSON."""
    with errors():
        store = existing_storage(storage)
        record = find_run(store, run_name)
        kinds = check_kinds(kind, store=store, record=record) if kind else None
        variant_id = resolve_variant(store, variant).id if variant is not None else None
        rows = audit_rows(store, record, kinds=kinds, variant_id=variant_id)
        if fmt is AuditFormat.table and out is None:
            table = Table(title=f"audit log of {escape(record.name)} ({len(rows)} entries)")
            for column in ("time", "kind", "variant", "by", "why"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(
                    row["time"][:19].replace("T", " "),
                    agent_text(row["kind"]),
                    ""
                    if row["variant_id"] is None
                    else f"#{row['variant_id']} (g{row['generation']})",
                    agent_text(row["by"]),
                    agent_text(row["why"]),
                )
            console.print(table)
            return
        if fmt is AuditFormat.json:
            text = json.dumps({"run": record.name, "entries": rows}, indent=2) + "\n"
        else:  # csv, and a table written to a file
            text = csv_text(rows, AUDIT_COLUMNS)
        emit(text, out)
        if out is not None:
            err_console.print(f"wrote {len(rows)} entries to {escape(str(out))}")

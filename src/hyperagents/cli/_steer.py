"""Commands that steer runs from any process: ``stop``, ``delete``, and people's decisions
(``approve``, ``reject``, ``pin``, ``ban``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from hyperagents._untrusted import printable
from hyperagents.cli._shared import (
    ConfigFileError,
    StorageOpt,
    err_console,
    errors,
    existing_storage,
    whoami,
)
from hyperagents.runs import check_no_engine, delete_run, request_stop
from hyperagents.runs._resolve import find_run, resolve_variant

__all__ = ["approve", "ban", "delete", "pin", "reject", "stop"]

RunArg = Annotated[str, typer.Argument(metavar="RUN", help="Run name or id.")]
NoteOpt = Annotated[str | None, typer.Option("--note", "-m", help="Why (recorded).")]
VariantArg = Annotated[
    str, typer.Argument(metavar="VARIANT", help="ID, RUN/GENERATION or RUN/champion.")
]


def stop(
    run_name: RunArg,
    storage: StorageOpt = None,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Kill the engine and its sandboxed agents at once (the work in flight is "
            "redone on resume) instead of letting it finish.",
        ),
    ] = False,
) -> None:
    """Stop a run from any process (its engine finishes the work in flight; resumable)."""
    with errors():
        store = existing_storage(storage)
        record = find_run(store, run_name)
        said = request_stop(store, record, who=f"the command line ({whoami()})", now=now)
        err_console.print(
            f"{escape(printable(record.name))}: {escape(printable(said))}", highlight=False
        )


def delete(
    run_name: RunArg,
    storage: StorageOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a run with everything recorded about it (variants, evaluations, events, model
    calls). A run whose engine is alive (running, or finishing its work after a stop) cannot be
    deleted."""
    with errors():
        store = existing_storage(storage)
        record = find_run(store, run_name)
        check_no_engine(record, action="delete")
        variants = store.count_variants(record.id)
        name = escape(printable(record.name))
        if not yes:
            if not _interactive():
                raise ConfigFileError(
                    f"deleting {record.name!r} needs a confirmation: give --yes (no terminal "
                    "to ask on)"
                )
            question = (
                f"delete run {record.name!r} ({record.status.name.lower()}, {variants} "
                "variants) and everything recorded about it?"
            )
            if not typer.confirm(printable(question)):
                err_console.print(f"{name}: not deleted", highlight=False)
                raise typer.Exit(1)
        delete_run(store, store.get_run(record.id))
        err_console.print(f"deleted run {name} ({variants} variants)", highlight=False)


def _interactive() -> bool:
    """Whether a person can answer a question (stdin is a terminal)."""
    return sys.stdin.isatty()


def _decide(spec: str, storage: str | None, action: str, note: str | None) -> None:
    from hyperagents.runs import approve, ban, pin, reject

    store = existing_storage(storage)
    variant = resolve_variant(store, spec)
    who = f"{whoami()} (command line)"
    if action == "approve":
        approve(store, variant, who=who, note=note)
        said = "approved: it may now be a parent and the champion"
    elif action == "reject":
        reject(store, variant, who=who, note=note)
        said = "rejected: it will never be a parent or the champion"
    elif action == "pin":
        pin(store, variant, who=who)
        said = "pinned: the run's next child is made from it"
    else:
        ban(store, variant, who=who, note=note)
        said = "banned: neither it nor its descendants will be parents"
    err_console.print(f"variant {variant.id}: {said}")


def approve(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Approve a child waiting for approval (run with --approval manual or threshold)."""
    with errors():
        _decide(variant, storage, "approve", note)


def reject(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Reject a child waiting for approval: it is never used as a parent."""
    with errors():
        _decide(variant, storage, "reject", note)


def pin(variant: VariantArg, storage: StorageOpt = None) -> None:
    """Make a variant the parent of its run's next child."""
    with errors():
        _decide(variant, storage, "pin", None)


def ban(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Ban a variant's lineage (it and its descendants) as parents."""
    with errors():
        _decide(variant, storage, "ban", note)

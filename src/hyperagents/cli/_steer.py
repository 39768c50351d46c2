"""Commands that steer runs from any process: ``stop``, ``delete``, people's decisions
(``approve``, ``reject``, ``pin``, ``ban``) and their training data (``label``)."""

from __future__ import annotations

import json
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
from hyperagents.runs import Decision, RunService, check_no_engine

__all__ = ["approve", "ban", "delete", "label", "pin", "reject", "stop"]

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
        service = RunService(existing_storage(storage))
        stopped = service.stop(run_name, who=f"the command line ({whoami()})", now=now)
        err_console.print(
            f"{escape(printable(stopped.run.name))}: {escape(printable(stopped.message))}",
            highlight=False,
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
        service = RunService(existing_storage(storage))
        record = service.find_run(run_name)
        check_no_engine(record, action="delete")  # before asking: it would be refused
        variants = service.storage.count_variants(record.id)
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
        service.delete(record.id)
        err_console.print(f"deleted run {name} ({variants} variants)", highlight=False)


def _interactive() -> bool:
    """Whether a person can answer a question (stdin is a terminal)."""
    return sys.stdin.isatty()


#: What each decision means for the variant, as the person is told.
_SAID = {
    Decision.APPROVE: "approved: it may now be a parent and the champion",
    Decision.REJECT: "rejected: it will never be a parent or the champion",
    Decision.PIN: "pinned: the run's next child is made from it",
    Decision.BAN: "banned: neither it nor its descendants will be parents",
}


def _decide(spec: str, storage: str | None, decision: Decision, note: str | None) -> None:
    service = RunService(existing_storage(storage))
    variant = service.decide(spec, decision, who=f"{whoami()} (command line)", note=note)
    err_console.print(f"variant {variant.id}: {_SAID[decision]}")


def approve(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Approve a child waiting for approval (run with --approval manual or threshold)."""
    with errors():
        _decide(variant, storage, Decision.APPROVE, note)


def reject(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Reject a child waiting for approval: it is never used as a parent."""
    with errors():
        _decide(variant, storage, Decision.REJECT, note)


def pin(variant: VariantArg, storage: StorageOpt = None) -> None:
    """Make a variant the parent of its run's next child."""
    with errors():
        _decide(variant, storage, Decision.PIN, None)


def ban(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Ban a variant's lineage (it and its descendants) as parents."""
    with errors():
        _decide(variant, storage, Decision.BAN, note)


def label(
    run_name: RunArg,
    instance: Annotated[str, typer.Argument(metavar="INSTANCE", help="A train instance id.")],
    output: Annotated[
        str,
        typer.Argument(
            metavar="OUTPUT", help="The output the agent should give: JSON, else the text."
        ),
    ],
    storage: StorageOpt = None,
) -> None:
    """Post a label for a train instance: training data for children whose plan takes the
    ``people`` source (val and test instances never take labels)."""
    with errors():
        try:
            value = json.loads(output)
        except ValueError:
            value = output
        service = RunService(existing_storage(storage))
        stored = service.post_label(run_name, instance, value, who=f"the command line ({whoami()})")
        err_console.print(
            f"label for {escape(printable(stored['instance_id']))}: "
            f"{escape(printable(json.dumps(stored['output'])[:200]))}",
            highlight=False,
        )

"""People's decisions on a run, from any process: approve or reject a waiting child, pin the
next parent, ban a lineage. Each is recorded with who decided and why."""

from __future__ import annotations

from enum import StrEnum

from hyperagents.exceptions import RunStateError
from hyperagents.storages import BaseStorage, EventSpec, VariantRecord, VariantState

__all__ = ["Decision", "approve", "ban", "decide", "pin", "reject"]


class Decision(StrEnum):
    """A person's decision on a variant."""

    APPROVE = "approve"  #: accept a child waiting for approval
    REJECT = "reject"  #: refuse a child waiting for approval
    PIN = "pin"  #: make it the parent of the run's next child
    BAN = "ban"  #: ban its lineage as parents


def _note(note: str | None) -> str:
    return f": {note.strip()}" if note and note.strip() else ""


def _settle(
    store: BaseStorage,
    variant: VariantRecord,
    state: VariantState,
    event: EventSpec,
    reason: str | None,
) -> None:
    """Move a child waiting for approval to ``state``, recording ``event``.

    Raises:
        RunStateError: The variant is not waiting for approval (or was decided meanwhile).
    """
    if variant.state is not VariantState.PENDING:
        raise RunStateError(
            f"variant {variant.id} is not waiting for approval ({variant.state.name.lower()})"
        )
    if not store.set_variant_state(
        variant.id, state, expected=VariantState.PENDING, reason=reason, event=event
    ):
        raise RunStateError(f"variant {variant.id} was decided meanwhile")


def approve(
    store: BaseStorage, variant: VariantRecord, *, who: str, note: str | None = None
) -> None:
    """Accept a child waiting for approval: it becomes complete, a possible parent and champion.

    Raises:
        RunStateError: The variant is not waiting for approval.
    """
    said = f"approved by {who}{_note(note)}"
    event = EventSpec("variant.approved", said, {"by": who, "note": note})
    _settle(store, variant, VariantState.COMPLETE, event, said)  # replaces "awaiting approval"


def reject(
    store: BaseStorage, variant: VariantRecord, *, who: str, note: str | None = None
) -> None:
    """Refuse a child waiting for approval: it stays recorded, never a parent or champion.

    Raises:
        RunStateError: The variant is not waiting for approval.
    """
    reason = f"rejected by {who}{_note(note)}"
    event = EventSpec("variant.rejected", reason, {"by": who, "note": note})
    _settle(store, variant, VariantState.REJECTED, event, reason)


def pin(store: BaseStorage, variant: VariantRecord, *, who: str) -> None:
    """Make ``variant`` the parent of the run's next child (once).

    Raises:
        RunStateError: The variant cannot be a parent (not complete).
    """
    if variant.state is not VariantState.COMPLETE:
        raise RunStateError(
            f"variant {variant.id} cannot be a parent ({variant.state.name.lower()})"
        )
    message = f"variant {variant.id} pinned as the next parent by {who}"
    store.pin_parent(variant.id, by=who, event=EventSpec("variant.pinned", message, {"by": who}))


def ban(store: BaseStorage, variant: VariantRecord, *, who: str, note: str | None = None) -> None:
    """Ban ``variant`` and all its descendants as parents from now on.

    Raises:
        RunStateError: The variant is the run's seed (nothing would be left).
    """
    if variant.parent_id is None:
        raise RunStateError("the seed cannot be banned: every variant descends from it")
    message = f"lineage of variant {variant.id} banned by {who}{_note(note)}"
    event = EventSpec("variant.banned", message, {"by": who, "note": note})
    store.ban_variant(variant.id, event=event)


def decide(
    store: BaseStorage,
    variant: VariantRecord,
    decision: Decision,
    *,
    who: str,
    note: str | None = None,
) -> None:
    """Record ``decision`` on ``variant`` (a pin records no note).

    Raises:
        RunStateError: The decision does not fit the variant's state (see :func:`approve`,
            :func:`reject`, :func:`pin`, :func:`ban`).
    """
    if decision is Decision.APPROVE:
        approve(store, variant, who=who, note=note)
    elif decision is Decision.REJECT:
        reject(store, variant, who=who, note=note)
    elif decision is Decision.PIN:
        pin(store, variant, who=who)
    else:
        ban(store, variant, who=who, note=note)

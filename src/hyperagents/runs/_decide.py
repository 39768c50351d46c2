"""People's decisions on a run, from any process: approve or reject a waiting child, pin the
next parent, ban a lineage. Each is recorded with who decided and why."""

from __future__ import annotations

from hyperagents.exceptions import RunStateError
from hyperagents.runs import _attrs
from hyperagents.storages import BaseStorage, EventSpec, VariantRecord, VariantState

__all__ = ["approve", "ban", "pin", "reject"]


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
    _attrs.store_pin(store, variant.run_id, variant.id, who)
    store.add_event(
        variant.run_id,
        "variant.pinned",
        f"variant {variant.id} pinned as the next parent by {who}",
        variant_id=variant.id,
        data={"by": who},
    )


def ban(store: BaseStorage, variant: VariantRecord, *, who: str, note: str | None = None) -> None:
    """Ban ``variant`` and all its descendants as parents from now on.

    Raises:
        RunStateError: The variant is the run's seed (nothing would be left).
    """
    if variant.parent_id is None:
        raise RunStateError("the seed cannot be banned: every variant descends from it")
    banned = _attrs.banned(store.get_run(variant.run_id))
    if variant.id not in banned:
        banned.append(variant.id)
    _attrs.store_banned(store, variant.run_id, banned)
    store.add_event(
        variant.run_id,
        "variant.banned",
        f"lineage of variant {variant.id} banned by {who}{_note(note)}",
        variant_id=variant.id,
        data={"by": who, "note": note},
    )

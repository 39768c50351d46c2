"""The audit log: every recorded state change of a run, with who or what decided and why."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hyperagents.storages import BaseStorage, EventRecord, RunRecord

__all__ = ["AUDIT_COLUMNS", "actor", "audit_rows"]

AUDIT_COLUMNS = ("event_id", "time", "kind", "variant_id", "generation", "by", "why")

#: Who decides, by kind of event, when the event does not say.
_ACTORS = {
    "variant.improved": "meta agent",
    "variant.failed": "meta agent",
    "variant.validated": "validation (sandbox)",
    "variant.invalid": "validation (sandbox)",
    "variant.evaluated": "evaluation (sandbox)",
    "variant.pruned": "staged evaluation",
    "variant.completed": "staged evaluation",
    "variant.rejected": "constitution",
    "variant.penalised": "constitution",
    "variant.pending": "approval policy",
    "variant.quarantined": "quarantine",
    "champion.test": "evaluation (sandbox)",
}


def actor(event: EventRecord) -> str:
    """Who or what made the change an event records."""
    said = event.data.get("by") if isinstance(event.data, dict) else None
    if isinstance(said, str) and said:
        return said
    return _ACTORS.get(event.kind, "engine")


def audit_rows(
    store: BaseStorage,
    record: RunRecord,
    *,
    kinds: Iterable[str] | None = None,
    variant_id: int | None = None,
) -> list[dict[str, Any]]:
    """The run's audit log, oldest first (rows of :data:`AUDIT_COLUMNS`)."""
    generation = {v.id: v.generation for v in store.list_variants(record.id)}
    return [
        {
            "event_id": e.id,
            "time": e.created_at.isoformat(),
            "kind": e.kind,
            "variant_id": e.variant_id,
            "generation": generation.get(e.variant_id) if e.variant_id is not None else None,
            "by": actor(e),
            "why": e.message,
        }
        for e in store.list_events(record.id, kinds=kinds, variant_id=variant_id)
    ]

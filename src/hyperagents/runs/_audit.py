"""The audit log: every recorded state change of a run, with who or what decided and why.

Also the vocabulary of event kinds (:data:`EVENT_KINDS`) and the one table of kinds renamed
since they were first written (:data:`KIND_ALIASES`): events stored under an old name are found
with either name and shown under the current one, by the command line and the dashboard alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hyperagents.exceptions import ConfigError
from hyperagents.storages import BaseStorage, EventRecord, RunRecord

__all__ = [
    "AUDIT_COLUMNS",
    "EVENT_KINDS",
    "KIND_ALIASES",
    "actor",
    "audit_rows",
    "canonical_kind",
    "check_kinds",
    "stored_kinds",
]

AUDIT_COLUMNS = ("event_id", "time", "kind", "variant_id", "generation", "by", "why")

#: Every kind of event the engine and people's decisions record, with what it means.
EVENT_KINDS: dict[str, str] = {
    "run.created": "the run was created",
    "run.started": "an engine started driving the run",
    "run.warning": "a setting does not do what it says",
    "run.stop_requested": "someone asked the run to stop",
    "run.stopped": "the engine stopped (request, budget, timeout, interrupt)",
    "run.completed": "the run reached its target",
    "run.failed": "the engine failed (resumable)",
    "run.killed": "the engine was killed (stop --now)",
    "engine.joined": "another engine joined the run (several engines share it)",
    "engine.lost": "an engine of the run stopped beating; its work was taken over",
    "variant.created": "a child was created from its parent",
    "variant.claimed": "an engine picked up a child's work",
    "variant.reclaimed": "an engine took over a dead engine's work",
    "variant.improved": "the meta agent made the child's program",
    "variant.failed": "making or evaluating the child failed",
    "variant.trained": "the training stage put a new model in the child (its data recorded)",
    "training.progress": "a point of a child's training curve, as its trainer reported it",
    "label.posted": "a person posted a label for a train instance (training data)",
    "variant.validated": "the child compiles and imports",
    "variant.invalid": "the child failed validation",
    "variant.evaluated": "an evaluation stage scored the child",
    "variant.pruned": "staged evaluation stopped a weak child early",
    "variant.completed": "the child was fully evaluated",
    "variant.pending": "the child waits for approval",
    "variant.quarantined": "a suspicious gain waits for review",
    "variant.approved": "a person approved a waiting child",
    "variant.rejected": "a person or the constitution rejected the child",
    "variant.penalised": "a soft constitution rule lowered the child's objective",
    "variant.pinned": "a person made the variant the next parent",
    "variant.banned": "a person banned the variant's lineage as parents",
    "variant.meta_state": "the meta agent's recorded state",
    "variant.reviewed": "the run's reviewer reviewed the child after its evaluation",
    "variant.review_failed": "the run's reviewer gave no review of the child (why recorded)",
    "champion.test": "the champion was evaluated on test",
    "champion.test_failed": "the champion's test evaluation failed",
    "selector.fallback": "the program's select_parent.py failed; another selector chose",
    "sandbox.retry": "a sandbox error was retried",
    "worker.failed": "a worker died on a job; it was retried",
    "arena.round": "an arena round finished: suite growth, scores, the state stored",
    "arena.agent_failed": "an arena agent failed (propose, improve); the round went on",
    "arena.step": "a piece of an arena round's agent work stored as it completed (resume "
    "takes it instead of doing it again; deleted once its round is recorded)",
    "arena.replaced": "a tournament replaced its worst agent by a mutated winner",
    "arena.heldout": "the arena champion was scored on the held-out adversarial suite",
}

#: Kinds renamed since they were first written: old name → current name.
KIND_ALIASES: dict[str, str] = {
    "run.complete": "run.completed",
    "run.pinned": "variant.pinned",
    "run.banned": "variant.banned",
}

#: Who decides, by kind of event, when the event does not say.
_ACTORS = {
    "variant.improved": "meta agent",
    "variant.failed": "meta agent",
    "variant.trained": "training (sandbox)",
    "training.progress": "training (sandbox)",
    "variant.validated": "validation (sandbox)",
    "variant.invalid": "validation (sandbox)",
    "variant.evaluated": "evaluation (sandbox)",
    "variant.pruned": "staged evaluation",
    "variant.completed": "staged evaluation",
    "variant.rejected": "constitution",
    "variant.penalised": "constitution",
    "variant.pending": "approval policy",
    "variant.quarantined": "quarantine",
    "variant.reviewed": "reviewer (sandbox)",
    "variant.review_failed": "reviewer (sandbox)",
    "champion.test": "evaluation (sandbox)",
}


def canonical_kind(kind: str) -> str:
    """The current name of an event kind (an old name is translated, others kept)."""
    return KIND_ALIASES.get(kind, kind)


def stored_kinds(kinds: Iterable[str]) -> list[str]:
    """The names events of ``kinds`` may be stored under: each kind's current name and its
    old names, for a storage filter (``list_events(kinds=...)``)."""
    wanted = {canonical_kind(kind) for kind in kinds}
    names = set(wanted) | {old for old, new in KIND_ALIASES.items() if new in wanted}
    return sorted(names)


def check_kinds(
    kinds: Iterable[str], *, store: BaseStorage | None = None, record: RunRecord | None = None
) -> list[str]:
    """Validate event kinds asked for by a person; return their current names.

    A kind is accepted when it is in :data:`EVENT_KINDS` or :data:`KIND_ALIASES`, or, given
    ``store`` and ``record``, when the run has recorded an event of that kind (one written by
    another version of the engine).

    Raises:
        ConfigError: A kind that is none of these (the message lists the valid ones).
    """
    checked = []
    for kind in kinds:
        name = canonical_kind(kind)
        known = name in EVENT_KINDS or (
            store is not None
            and record is not None
            and bool(store.list_events(record.id, kinds=[kind], limit=1))
        )
        if not known:
            raise ConfigError(f"unknown event kind {kind!r}; valid kinds: {', '.join(EVENT_KINDS)}")
        checked.append(name)
    return checked


def actor(event: EventRecord) -> str:
    """Who or what made the change an event records."""
    said = event.data.get("by") if isinstance(event.data, dict) else None
    if isinstance(said, str) and said:
        return said
    return _ACTORS.get(canonical_kind(event.kind), "engine")


def audit_rows(
    store: BaseStorage,
    record: RunRecord,
    *,
    kinds: Iterable[str] | None = None,
    variant_id: int | None = None,
) -> list[dict[str, Any]]:
    """The run's audit log, oldest first (rows of :data:`AUDIT_COLUMNS`).

    Args:
        store: The storage.
        record: The run.
        kinds: Only events of these kinds (current or old names: both find the events stored
            under either).
        variant_id: Only events about this variant.
    """
    generation = {v.id: v.generation for v in store.list_variants(record.id)}
    wanted = None if kinds is None else stored_kinds(kinds)
    return [
        {
            "event_id": e.id,
            "time": e.created_at.isoformat(),
            "kind": canonical_kind(e.kind),
            "variant_id": e.variant_id,
            "generation": generation.get(e.variant_id) if e.variant_id is not None else None,
            "by": actor(e),
            "why": e.message,
        }
        for e in store.list_events(record.id, kinds=wanted, variant_id=variant_id)
    ]

"""The dicts of :class:`InMemoryStorage` and the helpers its parts share."""

from __future__ import annotations

import dataclasses
import json
import threading

from hyperagents.exceptions import (
    RunNotFoundError,
    VariantNotFoundError,
)
from hyperagents.storages._base import BaseStorage
from hyperagents.storages._common import (
    dumps_json,
    json_copy,
    utcnow,
)
from hyperagents.storages._records import (
    EvaluationRecord,
    EventRecord,
    EventSpec,
    LLMCallRecord,
    RunRecord,
    VariantRecord,
)

__all__ = ["MemoryState"]


class MemoryState(BaseStorage):
    """The records of an in-memory storage, guarded by one re-entrant lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[int, RunRecord] = {}
        self._run_names: dict[str, int] = {}
        self._blobs: dict[str, bytes] = {}
        self._programs: dict[str, dict[str, str]] = {}
        self._variants: dict[int, VariantRecord] = {}
        self._variant_json: dict[int, str] = {}
        self._generations: dict[tuple[int, int], int] = {}
        self._evaluations: dict[int, EvaluationRecord] = {}
        self._evaluation_keys: dict[tuple[int, str], int] = {}
        self._events: dict[int, EventRecord] = {}
        self._llm_calls: dict[int, LLMCallRecord] = {}
        self._next_id = {"run": 1, "variant": 1, "evaluation": 1, "event": 1, "llm_call": 1}

    # -- helpers ----------------------------------------------------------------------------
    def _new_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] = value + 1
        return value

    def _run(self, run_id: int) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"run {run_id} not found") from None

    def _variant(self, variant_id: int) -> VariantRecord:
        try:
            return self._variants[variant_id]
        except KeyError:
            raise VariantNotFoundError(f"variant {variant_id} not found") from None

    def _record_event(self, run_id: int, variant_id: int | None, event: EventSpec | None) -> int:
        """Append ``event`` (already validated with :meth:`_prepare_event`); return its id."""
        if event is None:
            return 0
        event_id = self._new_id("event")
        self._events[event_id] = EventRecord(
            id=event_id,
            run_id=run_id,
            variant_id=variant_id,
            kind=event.kind,
            message=event.message,
            data=event.data if event.data is not None else {},
            created_at=utcnow(),
        )
        return event_id

    @staticmethod
    def _prepare_event(event: EventSpec | None) -> EventSpec | None:
        if event is None:
            return None
        data = json_copy(dict(event.data), "event data") if event.data is not None else {}
        return EventSpec(kind=str(event.kind), message=str(event.message), data=data)

    @staticmethod
    def _copy_run(run: RunRecord) -> RunRecord:
        return dataclasses.replace(
            run, config=json_copy(run.config, "config"), attrs=json_copy(run.attrs, "attrs")
        )

    def _copy_variant(self, variant: VariantRecord) -> VariantRecord:
        return self._copy_variants([variant])[0]

    def _copy_variants(self, variants: list[VariantRecord]) -> list[VariantRecord]:
        """Fresh snapshots; the JSON fields of all variants are copied with one json.loads."""
        texts = [self._variant_json[v.id] for v in variants]
        decoded = json.loads("[" + ",".join(texts) + "]")
        return [
            VariantRecord(
                v.id,
                v.run_id,
                v.generation,
                v.parent_id,
                v.program_id,
                v.state,
                scores,
                metrics,
                meta_info,
                v.reason,
                v.owner,
                v.heartbeat_at,
                v.created_at,
                v.updated_at,
            )
            for v, (scores, metrics, meta_info) in zip(variants, decoded, strict=True)
        ]

    def _store_variant(self, variant: VariantRecord) -> None:
        """Keep ``variant`` (JSON fields already copied) and the JSON text of its fields."""
        self._variants[variant.id] = variant
        self._variant_json[variant.id] = dumps_json(
            [variant.scores, variant.metrics, variant.meta_info]
        )

    @staticmethod
    def _copy_event(event: EventRecord) -> EventRecord:
        return dataclasses.replace(event, data=json_copy(event.data, "event data"))

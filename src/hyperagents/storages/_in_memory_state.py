"""The dicts of :class:`InMemoryStorage` and the helpers its parts share."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

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
from hyperagents.storages._in_memory_journal import Journal, JournaledDict
from hyperagents.storages._records import (
    CheckpointRecord,
    EngineRecord,
    EvaluationRecord,
    EventRecord,
    EventSpec,
    LLMCallRecord,
    RunRecord,
    VariantRecord,
)
from hyperagents.storages._service_records import (
    RequestRecord,
    ServiceEventRecord,
    ServiceRecord,
)

__all__ = ["MemoryState"]

_R = TypeVar("_R")

#: The contract's methods a transaction watches (a call that raises spoils it).
#: (every part of the contract: BaseStorage and the mixins it is made of).
_CALLS = frozenset(
    name
    for base in BaseStorage.__mro__
    if base.__module__.startswith("hyperagents.storages._base")
    for name, member in vars(base).items()
    if inspect.isfunction(member) and not name.startswith("_")
) - {"atomically", "close"} | {"_select_requests", "_count_requests"}


def _in_transaction(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a contract method: inside this thread's transaction, an error spoils it."""

    @functools.wraps(method)
    def call(self: MemoryState, /, *args: Any, **kwargs: Any) -> Any:
        journal = self._journal
        if journal.owner is not None and journal.mine():
            return journal.call(functools.partial(method, self, *args, **kwargs))
        return method(self, *args, **kwargs)

    return call


class MemoryState(BaseStorage):
    """The records of an in-memory storage, guarded by one re-entrant lock; every dict is
    journaled, so that a transaction (:meth:`atomically`) that fails is undone."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if name in _CALLS and inspect.isfunction(member):
                setattr(cls, name, _in_transaction(member))

    def __init__(self) -> None:
        self._lock = threading.RLock()
        journal = self._journal = Journal()
        self._runs: dict[int, RunRecord] = JournaledDict(journal)
        self._run_names: dict[str, int] = JournaledDict(journal)
        self._blobs: dict[str, bytes] = JournaledDict(journal)
        self._programs: dict[str, dict[str, str]] = JournaledDict(journal)
        self._variants: dict[int, VariantRecord] = JournaledDict(journal)
        self._variant_json: dict[int, str] = JournaledDict(journal)
        self._generations: dict[tuple[int, int], int] = JournaledDict(journal)
        self._evaluations: dict[int, EvaluationRecord] = JournaledDict(journal)
        self._evaluation_keys: dict[tuple[int, str], int] = JournaledDict(journal)
        self._events: dict[int, EventRecord] = JournaledDict(journal)
        self._llm_calls: dict[int, LLMCallRecord] = JournaledDict(journal)
        self._engines: dict[int, EngineRecord] = JournaledDict(journal)
        self._checkpoints: dict[tuple[int, int], CheckpointRecord] = JournaledDict(journal)
        self._services: dict[int, ServiceRecord] = JournaledDict(journal)
        self._service_names: dict[str, int] = JournaledDict(journal)
        self._requests: dict[int, RequestRecord] = JournaledDict(journal)
        self._service_events: dict[int, ServiceEventRecord] = JournaledDict(journal)
        self._next_id: dict[str, int] = JournaledDict(journal)
        kinds = ("run", "variant", "evaluation", "event", "llm_call", "engine")
        for kind in (*kinds, "service", "request", "service_event"):
            self._next_id[kind] = 1

    def atomically(self, fn: Callable[[], _R]) -> _R:
        with self._lock:
            return self._journal.run(fn)

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
                v.engine,
                v.worker,
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

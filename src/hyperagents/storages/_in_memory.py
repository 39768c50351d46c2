"""A dict-based storage for tests and throw-away runs (nothing survives the process)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hyperagents.exceptions import (
    DuplicateError,
    RunNotFoundError,
    StorageError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.storages._base import BaseStorage
from hyperagents.storages._common import (
    check_score,
    check_seconds,
    check_target,
    dumps_json,
    json_copy,
    normalise_expected,
    utcnow,
)
from hyperagents.storages._records import (
    EvaluationRecord,
    EventRecord,
    EventSpec,
    LLMCallRecord,
    LLMCallSpec,
    RunRecord,
    RunSpec,
    RunStatus,
    VariantRecord,
    VariantState,
)

__all__ = ["InMemoryStorage"]


class InMemoryStorage(BaseStorage):
    """Storage kept in Python dicts, guarded by one re-entrant lock.

    It satisfies the whole storage contract (see :class:`BaseStorage`) except persistence:
    records are frozen snapshots, JSON fields are deep-copied on the way in and out (later
    mutation never leaks), transitions are compare-and-set, and every method is atomic with
    respect to other threads.

    Example:
        >>> storage = InMemoryStorage()
        >>> storage.list_runs()
        []
    """

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

    def __repr__(self) -> str:
        return "InMemoryStorage()"

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

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run: RunSpec) -> int:
        config_copy = json_copy(dict(run.config), "config")
        attrs_copy = json_copy(dict(run.attrs), "attrs")
        target = check_target(run.target_generations)
        with self._lock:
            if run.name in self._run_names:
                raise DuplicateError(f"a run named {run.name!r} already exists")
            run_id = self._new_id("run")
            now = utcnow()
            self._runs[run_id] = RunRecord(
                id=run_id,
                name=run.name,
                task=run.task,
                mode=run.mode,
                seed=int(run.seed),
                config=config_copy,
                seed_program_id=run.seed_program_id,
                status=RunStatus.CREATED,
                attrs=attrs_copy,
                created_at=now,
                updated_at=now,
                task_name=run.task_name,
                experiment=run.experiment,
                arm=run.arm,
                target_generations=target,
            )
            self._run_names[run.name] = run_id
            return run_id

    def get_run(self, run_id: int) -> RunRecord:
        with self._lock:
            return self._copy_run(self._run(run_id))

    def get_run_by_name(self, name: str) -> RunRecord:
        with self._lock:
            run_id = self._run_names.get(name)
            if run_id is None:
                raise RunNotFoundError(f"run {name!r} not found")
            return self._copy_run(self._runs[run_id])

    def list_runs(self) -> list[RunRecord]:
        with self._lock:
            return [self._copy_run(run) for run in self._runs.values()]

    def set_run_status(
        self,
        run_id: int,
        status: RunStatus,
        *,
        expected: RunStatus | Iterable[RunStatus] | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        allowed = None if expected is None else normalise_expected(expected, RunStatus)
        prepared = self._prepare_event(event)
        with self._lock:
            run = self._run(run_id)
            if allowed is not None and run.status not in allowed:
                return False
            self._runs[run_id] = dataclasses.replace(
                run, status=RunStatus(status), updated_at=utcnow()
            )
            self._record_event(run_id, None, prepared)
            return True

    def update_run_attrs(self, run_id: int, attrs: Mapping[str, Any]) -> None:
        update = json_copy(dict(attrs), "attrs")
        with self._lock:
            run = self._run(run_id)
            merged = dict(run.attrs)
            for key, value in update.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            self._runs[run_id] = dataclasses.replace(run, attrs=merged, updated_at=utcnow())

    def claim_run_engine(self, run_id: int, owner: str, *, expected: str | None) -> bool:
        if not owner:
            raise StorageError("an engine owner token must not be empty")
        with self._lock:
            run = self._run(run_id)
            if run.engine not in (expected, owner):
                return False
            now = utcnow()
            self._runs[run_id] = dataclasses.replace(
                run, engine=owner, engine_heartbeat_at=now, updated_at=now
            )
            return True

    def release_run_engine(
        self,
        run_id: int,
        owner: str,
        *,
        status: RunStatus | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        prepared = self._prepare_event(event)
        with self._lock:
            run = self._run(run_id)
            if not owner or run.engine != owner:
                return False
            self._runs[run_id] = dataclasses.replace(
                run,
                engine=None,
                engine_heartbeat_at=None,
                status=run.status if status is None else RunStatus(status),
                updated_at=utcnow(),
            )
            self._record_event(run_id, None, prepared)
            return True

    def _set_run_fields(self, run_id: int, **changes: Any) -> None:
        with self._lock:
            run = self._run(run_id)
            self._runs[run_id] = dataclasses.replace(run, **changes, updated_at=utcnow())

    def set_target_generations(self, run_id: int, target: int | None) -> None:
        self._set_run_fields(run_id, target_generations=check_target(target))

    def set_elapsed_seconds(self, run_id: int, seconds: float) -> None:
        self._set_run_fields(run_id, elapsed_seconds=check_seconds(seconds))

    def pin_parent(self, variant_id: int, *, by: str, event: EventSpec | None = None) -> None:
        prepared = self._prepare_event(event)
        with self._lock:
            run_id = self._variant(variant_id).run_id
            self._set_run_fields(run_id, pinned_parent=variant_id, pinned_by=str(by))
            self._record_event(run_id, variant_id, prepared)

    def unpin_parent(self, run_id: int, *, expected: int | None = None) -> bool:
        with self._lock:
            pinned = self._run(run_id).pinned_parent
            if pinned is None or (expected is not None and pinned != expected):
                return False
            self._set_run_fields(run_id, pinned_parent=None, pinned_by=None)
            return True

    def ban_variant(self, variant_id: int, *, event: EventSpec | None = None) -> None:
        prepared = self._prepare_event(event)
        with self._lock:
            run_id = self._variant(variant_id).run_id
            banned = self._run(run_id).banned | {variant_id}
            self._set_run_fields(run_id, banned=banned)
            self._record_event(run_id, variant_id, prepared)

    def update_run_config(self, run_id: int, config: Mapping[str, Any]) -> None:
        new = json_copy(dict(config), "config")
        with self._lock:
            run = self._run(run_id)
            self._runs[run_id] = dataclasses.replace(run, config=new, updated_at=utcnow())

    def delete_run(self, run_id: int) -> None:
        with self._lock:
            run = self._run(run_id)
            variant_ids = {v.id for v in self._variants.values() if v.run_id == run_id}
            for key, evaluation_id in list(self._evaluation_keys.items()):
                if key[0] in variant_ids:
                    del self._evaluation_keys[key]
                    del self._evaluations[evaluation_id]
            for variant_id in variant_ids:
                variant = self._variants.pop(variant_id)
                del self._variant_json[variant_id]
                self._generations.pop((run_id, variant.generation), None)
            for event_id in [e.id for e in self._events.values() if e.run_id == run_id]:
                del self._events[event_id]
            for call_id in [c.id for c in self._llm_calls.values() if c.run_id == run_id]:
                del self._llm_calls[call_id]
            del self._runs[run_id]
            del self._run_names[run.name]

    # -- programs ---------------------------------------------------------------------------
    def put_program(self, program: Program) -> str:
        with self._lock:
            if program.id not in self._programs:
                for path, digest in program.blobs.items():
                    self._blobs.setdefault(digest, program[path])
                self._programs[program.id] = program.manifest
            return program.id

    def get_program(self, program_id: str) -> Program:
        with self._lock:
            manifest = self._programs.get(program_id)
            if manifest is None:
                raise StorageError(f"program {program_id} not found")
            files = {path: self._blobs[digest] for path, digest in manifest.items()}
        return Program(files)

    def has_program(self, program_id: str) -> bool:
        with self._lock:
            return program_id in self._programs

    def count_blobs(self) -> int:
        with self._lock:
            return len(self._blobs)

    # -- variants ---------------------------------------------------------------------------
    def create_variant(
        self,
        *,
        run_id: int,
        generation: int,
        parent_id: int | None,
        state: VariantState = VariantState.RUNNING,
        owner: str | None = None,
        program_id: str | None = None,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
    ) -> int:
        info = json_copy(dict(meta_info or {}), "meta_info")
        prepared = self._prepare_event(event)
        with self._lock:
            self._run(run_id)
            if program_id is not None and program_id not in self._programs:
                raise StorageError(f"program {program_id} is not stored")
            if (run_id, generation) in self._generations:
                raise DuplicateError(
                    f"run {run_id} already has a variant for generation {generation}"
                )
            variant_id = self._new_id("variant")
            now = utcnow()
            self._store_variant(
                VariantRecord(
                    id=variant_id,
                    run_id=run_id,
                    generation=int(generation),
                    parent_id=parent_id,
                    program_id=program_id,
                    state=VariantState(state),
                    scores={},
                    metrics={},
                    meta_info=info,
                    reason=None,
                    owner=owner,
                    heartbeat_at=now if owner is not None else None,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._generations[(run_id, generation)] = variant_id
            self._record_event(run_id, variant_id, prepared)
            return variant_id

    def get_variant(self, variant_id: int) -> VariantRecord:
        with self._lock:
            return self._copy_variant(self._variant(variant_id))

    def get_variant_by_generation(self, run_id: int, generation: int) -> VariantRecord | None:
        with self._lock:
            variant_id = self._generations.get((run_id, generation))
            if variant_id is None:
                self._run(run_id)
                return None
            return self._copy_variant(self._variants[variant_id])

    def list_variants(
        self,
        run_id: int,
        *,
        states: Iterable[VariantState] | None = None,
    ) -> list[VariantRecord]:
        wanted = None if states is None else {VariantState(s) for s in states}
        with self._lock:
            self._run(run_id)
            found = [
                v
                for v in self._variants.values()
                if v.run_id == run_id and (wanted is None or v.state in wanted)
            ]
            found.sort(key=lambda v: v.generation)
            return self._copy_variants(found)

    def count_variants(self, run_id: int) -> int:
        with self._lock:
            self._run(run_id)
            return sum(1 for v in self._variants.values() if v.run_id == run_id)

    def set_variant_program(
        self,
        variant_id: int,
        program_id: str,
        *,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
    ) -> None:
        info = None if meta_info is None else json_copy(dict(meta_info), "meta_info")
        prepared = self._prepare_event(event)
        with self._lock:
            variant = self._variant(variant_id)
            if program_id not in self._programs:
                raise StorageError(f"program {program_id} is not stored")
            self._store_variant(
                dataclasses.replace(
                    variant,
                    program_id=program_id,
                    meta_info=variant.meta_info if info is None else info,
                    updated_at=utcnow(),
                )
            )
            self._record_event(variant.run_id, variant_id, prepared)

    def set_variant_state(
        self,
        variant_id: int,
        state: VariantState,
        *,
        expected: VariantState | Iterable[VariantState],
        reason: str | None = None,
        release: bool = False,
        event: EventSpec | None = None,
    ) -> bool:
        allowed = normalise_expected(expected, VariantState)
        prepared = self._prepare_event(event)
        with self._lock:
            variant = self._variant(variant_id)
            if variant.state not in allowed:
                return False
            self._store_variant(
                dataclasses.replace(
                    variant,
                    state=VariantState(state),
                    reason=variant.reason if reason is None else reason,
                    owner=None if release else variant.owner,
                    updated_at=utcnow(),
                )
            )
            self._record_event(variant.run_id, variant_id, prepared)
            return True

    def claim_variant(
        self,
        variant_id: int,
        owner: str,
        *,
        expected_owner: str | None,
        event: EventSpec | None = None,
    ) -> bool:
        prepared = self._prepare_event(event)
        with self._lock:
            variant = self._variant(variant_id)
            if variant.owner != expected_owner:
                return False
            now = utcnow()
            self._store_variant(
                dataclasses.replace(variant, owner=owner, heartbeat_at=now, updated_at=now)
            )
            self._record_event(variant.run_id, variant_id, prepared)
            return True

    def heartbeat(self, owner: str, variant_ids: Sequence[int]) -> None:
        with self._lock:
            now = utcnow()
            for variant_id in variant_ids:
                variant = self._variants.get(variant_id)
                if variant is not None and variant.owner == owner:
                    self._store_variant(dataclasses.replace(variant, heartbeat_at=now))

    def update_variant_metrics(self, variant_id: int, metrics: Mapping[str, Any]) -> None:
        update = json_copy(dict(metrics), "metrics")
        with self._lock:
            variant = self._variant(variant_id)
            merged = {**variant.metrics, **update}
            self._store_variant(dataclasses.replace(variant, metrics=merged, updated_at=utcnow()))

    # -- evaluations ------------------------------------------------------------------------
    def add_evaluation(
        self,
        *,
        variant_id: int,
        stage: str,
        split: str,
        score: float,
        n: int,
        results: Sequence[Mapping[str, Any]],
        metrics: Mapping[str, Any],
        event: EventSpec | None = None,
    ) -> int:
        value = check_score(score)
        results_copy = json_copy([dict(r) for r in results], "results")
        metrics_copy = json_copy(dict(metrics), "metrics")
        prepared = self._prepare_event(event)
        with self._lock:
            variant = self._variant(variant_id)
            if (variant_id, stage) in self._evaluation_keys:
                raise DuplicateError(f"variant {variant_id} already has a {stage!r} evaluation")
            evaluation_id = self._new_id("evaluation")
            now = utcnow()
            self._evaluations[evaluation_id] = EvaluationRecord(
                id=evaluation_id,
                variant_id=variant_id,
                stage=stage,
                split=split,
                score=value,
                n=int(n),
                results=results_copy,
                metrics=metrics_copy,
                created_at=now,
            )
            self._evaluation_keys[(variant_id, stage)] = evaluation_id
            scores = {**variant.scores, stage: value}
            stage_metrics = variant.metrics.get(stage)
            merged_stage = dict(stage_metrics) if isinstance(stage_metrics, Mapping) else {}
            merged_stage.update(json_copy(metrics_copy, "metrics"))
            self._store_variant(
                dataclasses.replace(
                    variant,
                    scores=scores,
                    metrics={**variant.metrics, stage: merged_stage},
                    updated_at=now,
                )
            )
            self._record_event(variant.run_id, variant_id, prepared)
            return evaluation_id

    def list_evaluations(self, variant_id: int) -> list[EvaluationRecord]:
        with self._lock:
            self._variant(variant_id)
            found = [e for e in self._evaluations.values() if e.variant_id == variant_id]
            return [
                dataclasses.replace(
                    e,
                    results=json_copy(e.results, "results"),
                    metrics=json_copy(e.metrics, "metrics"),
                )
                for e in found
            ]

    # -- events -----------------------------------------------------------------------------
    def add_event(
        self,
        run_id: int,
        kind: str,
        message: str = "",
        *,
        variant_id: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        prepared = self._prepare_event(EventSpec(kind=kind, message=message, data=data))
        with self._lock:
            self._run(run_id)
            if variant_id is not None:
                self._variant(variant_id)
            return self._record_event(run_id, variant_id, prepared)

    def list_events(
        self,
        run_id: int,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        kinds: Iterable[str] | None = None,
        variant_id: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[EventRecord]:
        wanted = None if kinds is None else set(kinds)
        with self._lock:
            self._run(run_id)
            found: list[EventRecord] = []
            # Dicts keep insertion order and ids only grow, so values() is in ascending id.
            events = self._events.values()
            for event in reversed(events) if newest_first else events:
                if limit is not None and len(found) >= limit:
                    break
                if (
                    event.run_id == run_id
                    and event.id > after_id
                    and (before_id is None or event.id < before_id)
                    and (wanted is None or event.kind in wanted)
                    and (variant_id is None or event.variant_id == variant_id)
                ):
                    found.append(self._copy_event(event))
            return found

    # -- LLM calls --------------------------------------------------------------------------
    def add_llm_call(self, run_id: int, call: LLMCallSpec) -> int:
        copied = json_copy(dict(call.request), "request")
        with self._lock:
            self._run(run_id)
            if call.variant_id is not None:
                self._variant(call.variant_id)
            call_id = self._new_id("llm_call")
            self._llm_calls[call_id] = LLMCallRecord(
                id=call_id,
                run_id=run_id,
                variant_id=call.variant_id,
                key=call.key,
                provider=call.provider,
                model=call.model,
                purpose=call.purpose,
                attempt=int(call.attempt),
                cached=bool(call.cached),
                request=copied,
                reply=call.reply,
                error=call.error,
                prompt_tokens=int(call.prompt_tokens),
                completion_tokens=int(call.completion_tokens),
                cost=float(call.cost),
                latency=float(call.latency),
                created_at=utcnow(),
            )
            return call_id

    def list_llm_calls(
        self,
        run_id: int,
        *,
        variant_id: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[LLMCallRecord]:
        with self._lock:
            self._run(run_id)
            found: list[LLMCallRecord] = []
            for call in self._llm_calls.values():  # insertion order is ascending id
                if limit is not None and len(found) >= limit:
                    break
                if (
                    call.run_id == run_id
                    and call.id > after_id
                    and (variant_id is None or call.variant_id == variant_id)
                ):
                    found.append(
                        dataclasses.replace(call, request=json_copy(call.request, "request"))
                    )
            return found

"""The variants and evaluations of :class:`InMemoryStorage`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hyperagents.exceptions import (
    DuplicateError,
    StorageError,
)
from hyperagents.storages._common import (
    check_score,
    json_copy,
    normalise_expected,
    utcnow,
)
from hyperagents.storages._in_memory_state import MemoryState
from hyperagents.storages._records import (
    EvaluationRecord,
    EventSpec,
    VariantRecord,
    VariantState,
)

__all__ = ["MemoryVariants"]


class MemoryVariants(MemoryState):
    """The variant and evaluation methods of :class:`InMemoryStorage`."""

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
        engine: str | None = None,
        worker: int | None = None,
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
                    engine=variant.engine if engine is None else engine,
                    worker=variant.worker if worker is None else int(worker),
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
        engine: str | None = None,
        worker: int | None = None,
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
                engine=engine,
                worker=None if worker is None else int(worker),
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

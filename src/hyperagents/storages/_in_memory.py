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
from hyperagents.storages._base import (
    BaseStorage,
    EvaluationRecord,
    EventRecord,
    EventSpec,
    LLMCallRecord,
    RunRecord,
    RunStatus,
    VariantRecord,
    VariantState,
)
from hyperagents.storages._common import (
    check_score,
    dumps_json,
    json_copy,
    normalise_expected,
    utcnow,
)

__all__ = ["InMemoryStorage"]


class InMemoryStorage(BaseStorage):
    """Storage kept in Python dicts, guarded by one re-entrant lock.

    It satisfies the whole storage contract except persistence: records are frozen snapshots,
    JSON fields are deep-copied on the way in and out (later mutation never leaks), transitions
    are compare-and-set, and every method is atomic with respect to other threads.

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
    def create_run(
        self,
        *,
        name: str,
        task: str,
        mode: str,
        seed: int,
        config: Mapping[str, Any],
        seed_program_id: str,
        attrs: Mapping[str, Any] | None = None,
    ) -> int:
        """Create a run in status ``CREATED`` and return its id.

        Raises:
            DuplicateError: A run with this name exists.
            StorageError: ``config`` or ``attrs`` is not JSON-compatible.
        """
        config_copy = json_copy(dict(config), "config")
        attrs_copy = json_copy(dict(attrs or {}), "attrs")
        with self._lock:
            if name in self._run_names:
                raise DuplicateError(f"a run named {name!r} already exists")
            run_id = self._new_id("run")
            now = utcnow()
            self._runs[run_id] = RunRecord(
                id=run_id,
                name=name,
                task=task,
                mode=mode,
                seed=int(seed),
                config=config_copy,
                seed_program_id=seed_program_id,
                status=RunStatus.CREATED,
                attrs=attrs_copy,
                created_at=now,
                updated_at=now,
            )
            self._run_names[name] = run_id
            return run_id

    def get_run(self, run_id: int) -> RunRecord:
        """Return the run.

        Raises:
            RunNotFoundError: No such run.
        """
        with self._lock:
            return self._copy_run(self._run(run_id))

    def get_run_by_name(self, name: str) -> RunRecord:
        """Return the run called ``name``.

        Raises:
            RunNotFoundError: No such run.
        """
        with self._lock:
            run_id = self._run_names.get(name)
            if run_id is None:
                raise RunNotFoundError(f"run {name!r} not found")
            return self._copy_run(self._runs[run_id])

    def list_runs(self) -> list[RunRecord]:
        """All runs, ascending id."""
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
        """Compare-and-set the run's status.

        Returns:
            Whether the status was changed.

        Raises:
            RunNotFoundError: No such run.
        """
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
        """Shallow-merge ``attrs`` into the run's attrs (a value of None deletes the key).

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``attrs`` is not JSON-compatible.
        """
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
        """Compare-and-set the run's engine (claiming again as the holder refreshes it).

        Returns:
            Whether ``owner`` holds the run now.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``owner`` is empty.
        """
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
        """Empty the engine slot (setting ``status``, recording ``event``) if ``owner`` holds it.

        Returns:
            Whether ``owner`` held the run.

        Raises:
            RunNotFoundError: No such run.
        """
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

    def update_run_config(self, run_id: int, config: Mapping[str, Any]) -> None:
        """Replace the run's config.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``config`` is not JSON-compatible.
        """
        new = json_copy(dict(config), "config")
        with self._lock:
            run = self._run(run_id)
            self._runs[run_id] = dataclasses.replace(run, config=new, updated_at=utcnow())

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its variants, evaluations and events.

        Raises:
            RunNotFoundError: No such run.
        """
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
        """Store a program (deduplicating blobs and manifests); return its id."""
        with self._lock:
            if program.id not in self._programs:
                for path, digest in program.blobs.items():
                    self._blobs.setdefault(digest, program[path])
                self._programs[program.id] = program.manifest
            return program.id

    def get_program(self, program_id: str) -> Program:
        """Return a stored program.

        Raises:
            StorageError: No program with this id is stored.
        """
        with self._lock:
            manifest = self._programs.get(program_id)
            if manifest is None:
                raise StorageError(f"program {program_id} not found")
            files = {path: self._blobs[digest] for path, digest in manifest.items()}
        return Program(files)

    def has_program(self, program_id: str) -> bool:
        """Whether a program with this id is stored."""
        with self._lock:
            return program_id in self._programs

    def count_blobs(self) -> int:
        """Number of distinct file contents stored."""
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
        """Insert a variant and return its id.

        Raises:
            DuplicateError: The run already has a variant for ``generation``.
            RunNotFoundError: No such run.
            StorageError: ``program_id`` is not stored, or ``meta_info`` is not JSON.
        """
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
        """Return the variant.

        Raises:
            VariantNotFoundError: No such variant.
        """
        with self._lock:
            return self._copy_variant(self._variant(variant_id))

    def get_variant_by_generation(self, run_id: int, generation: int) -> VariantRecord | None:
        """The run's variant for ``generation``, or None.

        Raises:
            RunNotFoundError: No such run.
        """
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
        """The run's variants (optionally only in ``states``), ascending generation.

        Raises:
            RunNotFoundError: No such run.
        """
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
        """Number of variants of the run.

        Raises:
            RunNotFoundError: No such run.
        """
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
        """Record the child program and the improver's info.

        Raises:
            VariantNotFoundError: No such variant.
            StorageError: The program is not stored, or ``meta_info`` is not JSON.
        """
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
        """Compare-and-set the variant's state.

        Returns:
            Whether the state was changed.

        Raises:
            VariantNotFoundError: No such variant.
        """
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
        """Compare-and-set the owner (and stamp ``heartbeat_at``).

        Returns:
            Whether the owner was changed.

        Raises:
            VariantNotFoundError: No such variant.
        """
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
        """Stamp ``heartbeat_at`` = now on those of ``variant_ids`` still owned by ``owner``."""
        with self._lock:
            now = utcnow()
            for variant_id in variant_ids:
                variant = self._variants.get(variant_id)
                if variant is not None and variant.owner == owner:
                    self._store_variant(dataclasses.replace(variant, heartbeat_at=now))

    def update_variant_metrics(self, variant_id: int, metrics: Mapping[str, Any]) -> None:
        """Shallow-merge ``metrics`` into the variant's metrics.

        Raises:
            VariantNotFoundError: No such variant.
            StorageError: ``metrics`` is not JSON-compatible.
        """
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
        """Insert an evaluation and denormalise its score/metrics on the variant atomically.

        Raises:
            DuplicateError: The variant already has an evaluation for ``stage``.
            VariantNotFoundError: No such variant.
            StorageError: ``score`` is not finite, or ``results``/``metrics`` are not JSON.
        """
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
        """The variant's evaluations, ascending id.

        Raises:
            VariantNotFoundError: No such variant.
        """
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
        """Append an event and return its id.

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: ``variant_id`` is given and no such variant exists.
            StorageError: ``data`` is not JSON-compatible.
        """
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
        """Events with ``after_id`` < id < ``before_id`` (optionally filtered), at most ``limit``,
        in ascending id order (descending with ``newest_first``: the latest ``limit`` events).

        Raises:
            RunNotFoundError: No such run.
        """
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
    def add_llm_call(
        self,
        run_id: int,
        *,
        key: str,
        provider: str,
        model: str,
        request: Mapping[str, Any],
        reply: str | None = None,
        error: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        latency: float = 0.0,
        cached: bool = False,
        attempt: int = 1,
        purpose: str = "",
        variant_id: int | None = None,
    ) -> int:
        """Record one LLM call and return its id.

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: ``variant_id`` is given and no such variant exists.
            StorageError: ``request`` is not JSON-compatible.
        """
        copied = json_copy(dict(request), "request")
        with self._lock:
            self._run(run_id)
            if variant_id is not None:
                self._variant(variant_id)
            call_id = self._new_id("llm_call")
            self._llm_calls[call_id] = LLMCallRecord(
                id=call_id,
                run_id=run_id,
                variant_id=variant_id,
                key=key,
                provider=provider,
                model=model,
                purpose=purpose,
                attempt=int(attempt),
                cached=bool(cached),
                request=copied,
                reply=reply,
                error=error,
                prompt_tokens=int(prompt_tokens),
                completion_tokens=int(completion_tokens),
                cost=float(cost),
                latency=float(latency),
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
        """The run's LLM calls with id > ``after_id`` (optionally of one variant), ascending id.

        Raises:
            RunNotFoundError: No such run.
        """
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

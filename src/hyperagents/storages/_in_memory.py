"""A dict-based storage for tests and throw-away runs (nothing survives the process; artifacts,
like every program file, and training checkpoints are bytes in memory)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, cast

from hyperagents.exceptions import (
    DuplicateError,
    RunNotFoundError,
    StorageError,
)
from hyperagents.program import Program
from hyperagents.storages._common import (
    check_lock_target,
    check_seconds,
    check_target,
    json_copy,
    normalise_expected,
    utcnow,
)
from hyperagents.storages._in_memory_checkpoints import MemoryCheckpoints
from hyperagents.storages._in_memory_engines import MemoryEngines
from hyperagents.storages._in_memory_services import MemoryServices
from hyperagents.storages._in_memory_variants import MemoryVariants
from hyperagents.storages._records import (
    EventRecord,
    EventSpec,
    LLMCallRecord,
    LLMCallSpec,
    RunRecord,
    RunSpec,
    RunStatus,
)

__all__ = ["InMemoryStorage"]


class InMemoryStorage(MemoryVariants, MemoryEngines, MemoryServices, MemoryCheckpoints):
    """Storage kept in Python dicts, guarded by one re-entrant lock.

    It satisfies the whole storage contract (see :class:`BaseStorage`) except persistence:
    records are frozen snapshots, JSON fields are deep-copied on the way in and out (later
    mutation never leaks), transitions are compare-and-set, and every method is atomic with
    respect to other threads. :meth:`atomically` holds the lock while its function runs (other
    threads wait) and undoes a failed one from a journal of the values its changes replaced;
    it never retries.

    Example:
        >>> storage = InMemoryStorage()
        >>> storage.list_runs()
        []
    """

    def __repr__(self) -> str:
        return "InMemoryStorage()"

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

    def lock_record(self, *, run_id: int | None = None, service_id: int | None = None) -> None:
        check_lock_target(run_id, service_id)
        with self._lock:  # atomically() holds it: other transactions wait already
            if not self._journal.mine():
                raise StorageError("lock_record locks a record only inside atomically()")
            if run_id is not None:
                self._run(run_id)
            else:
                self._service(cast(int, service_id))

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
            for engine_id in [e.id for e in self._engines.values() if e.run_id == run_id]:
                del self._engines[engine_id]
            self._delete_services_of(run_id)
            self._delete_checkpoints_of(run_id)
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

    def delete_events(
        self, run_id: int, *, kinds: Iterable[str], before_id: int | None = None
    ) -> int:
        wanted = set(kinds)
        with self._lock:
            self._run(run_id)
            doomed = [
                event.id
                for event in self._events.values()
                if event.run_id == run_id
                and event.kind in wanted
                and (before_id is None or event.id < before_id)
            ]
            for event_id in doomed:
                del self._events[event_id]
            return len(doomed)

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

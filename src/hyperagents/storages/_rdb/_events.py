"""The events and LLM calls of :class:`RDBStorage`: append-only records of a run (events a run
keeps only while it needs them are deleted by kind)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from hyperagents.exceptions import StorageError
from hyperagents.storages._common import json_copy, utcnow
from hyperagents.storages._rdb._transactions import EVENTS, LLM_CALLS, RDBCore, retried
from hyperagents.storages._records import EventRecord, EventSpec, LLMCallRecord, LLMCallSpec

__all__ = ["EventMethods"]

_EVENT_COLUMNS = [EVENTS.c[f.name] for f in dataclasses.fields(EventRecord)]
_LLM_CALL_COLUMNS = [LLM_CALLS.c[f.name] for f in dataclasses.fields(LLMCallRecord)]


class EventMethods(RDBCore):
    """The event and LLM call methods of :class:`RDBStorage`."""

    @retried(idempotent=False)
    def add_event(
        self,
        run_id: int,
        kind: str,
        message: str = "",
        *,
        variant_id: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        spec = EventSpec(kind=kind, message=message, data=data)
        try:
            with self._write() as conn:
                return self._done(conn, self._insert_event(conn, run_id, variant_id, spec))
        except IntegrityError:
            self._require_references(run_id, variant_id)
            raise StorageError(f"cannot add event to run {run_id}") from None

    @retried(idempotent=True)
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
        stmt = select(*_EVENT_COLUMNS).where(EVENTS.c.run_id == run_id, EVENTS.c.id > after_id)
        if kinds is not None:
            stmt = stmt.where(EVENTS.c.kind.in_(list(kinds)))
        if variant_id is not None:
            stmt = stmt.where(EVENTS.c.variant_id == variant_id)
        if before_id is not None:
            stmt = stmt.where(EVENTS.c.id < before_id)
        stmt = stmt.order_by(EVENTS.c.id.desc() if newest_first else EVENTS.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_run(conn, run_id)
        return [EventRecord(*row) for row in rows]

    @retried(idempotent=True)
    def delete_events(
        self, run_id: int, *, kinds: Iterable[str], before_id: int | None = None
    ) -> int:
        stmt = delete(EVENTS).where(EVENTS.c.run_id == run_id, EVENTS.c.kind.in_(list(kinds)))
        if before_id is not None:
            stmt = stmt.where(EVENTS.c.id < before_id)
        with self._write() as conn:
            self._require_run(conn, run_id)
            return int(conn.execute(stmt).rowcount)

    # -- LLM calls --------------------------------------------------------------------------
    @retried(idempotent=False)
    def add_llm_call(self, run_id: int, call: LLMCallSpec) -> int:
        row = {
            "run_id": run_id,
            "variant_id": call.variant_id,
            "key": call.key,
            "provider": call.provider,
            "model": call.model,
            "purpose": call.purpose,
            "attempt": int(call.attempt),
            "cached": bool(call.cached),
            "request": json_copy(dict(call.request), "request"),
            "reply": call.reply,
            "error": call.error,
            "prompt_tokens": int(call.prompt_tokens),
            "completion_tokens": int(call.completion_tokens),
            "cost": float(call.cost),
            "latency": float(call.latency),
            "created_at": utcnow(),
        }
        try:
            with self._write() as conn:
                inserted = conn.execute(insert(LLM_CALLS), row).inserted_primary_key
                assert inserted is not None
                return self._done(conn, int(inserted[0]))
        except IntegrityError:
            self._require_references(run_id, call.variant_id)
            raise StorageError(f"cannot record an LLM call for run {run_id}") from None

    @retried(idempotent=True)
    def list_llm_calls(
        self,
        run_id: int,
        *,
        variant_id: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[LLMCallRecord]:
        stmt = select(*_LLM_CALL_COLUMNS).where(
            LLM_CALLS.c.run_id == run_id, LLM_CALLS.c.id > after_id
        )
        if variant_id is not None:
            stmt = stmt.where(LLM_CALLS.c.variant_id == variant_id)
        stmt = stmt.order_by(LLM_CALLS.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_run(conn, run_id)
        return [LLMCallRecord(*row) for row in rows]

    # The totals are summed by the database, not from the records.
    @retried(idempotent=True)
    def llm_usage(self, run_id: int, *, variant_id: int | None = None) -> dict[str, Any]:
        c = LLM_CALLS.c
        ok = c.error.is_(None)
        paid = and_(ok, c.cached.is_(False))

        def total(column: Any, where: Any) -> Any:
            return func.coalesce(func.sum(case((where, column), else_=0)), 0)

        stmt = select(
            total(1, ok),
            total(1, and_(ok, c.cached.is_(True))),
            total(1, c.error.is_not(None)),
            total(c.prompt_tokens, paid),
            total(c.completion_tokens, paid),
            total(c.cost, paid),
        ).where(c.run_id == run_id)
        if variant_id is not None:
            stmt = stmt.where(c.variant_id == variant_id)
        with self._read() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(stmt).one()
        calls, cached, errors, prompt, completion, cost = row
        return {
            "calls": int(calls),
            "cached": int(cached),
            "errors": int(errors),
            "prompt_tokens": int(prompt),
            "completion_tokens": int(completion),
            "cost": float(cost),
        }

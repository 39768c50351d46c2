"""The routes of a run's events and of live updates: the events page (filters, text search,
paging) and the version a page polls or streams (server-sent events) to know when to reload."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from hyperagents.dashboard import _views as views
from hyperagents.dashboard._deps import (
    OptionalId,
    RunDep,
    ServiceDep,
    StorageDep,
    require_token,
)
from hyperagents.dashboard._responses import error_response, json_response
from hyperagents.exceptions import RunNotFoundError
from hyperagents.runs import RunService, canonical_kind, stored_kinds
from hyperagents.storages import BaseStorage, RunRecord

__all__ = ["EVENT_GROUPS", "router"]

#: Event kinds by what they are about (the events page filters on these).
EVENT_GROUPS: dict[str, tuple[str, ...]] = {
    "run": (
        "run.created",
        "run.started",
        "run.warning",
        "run.stop_requested",
        "run.stopped",
        "run.completed",
        "run.failed",
        "run.killed",
    ),
    "mutation": (
        "variant.created",
        "variant.claimed",
        "variant.reclaimed",
        "variant.improved",
        "variant.failed",
        "variant.rejected",
        "variant.penalised",
    ),
    "evaluation": (
        "variant.validated",
        "variant.invalid",
        "variant.evaluated",
        "variant.pruned",
        "variant.completed",
        "variant.pending",
        "variant.quarantined",
        "variant.approved",
        "champion.test",
    ),
}
_STREAM_POLL = 1.0
_STREAM_PING = 15.0
_STREAM_LIFETIME = 300.0  # the browser reconnects on its own
#: Events read per page of a search, and the most a search reads.
_PAGE = 1000
_SCAN_LIMIT = 200_000

router = APIRouter(dependencies=[Depends(require_token)])


def _kinds(group: str | None, kind: str | None) -> list[str] | None:
    """The stored kinds a filter asks for (None: all); events stored under a kind's old name
    are found too.

    Raises:
        ValueError: An unknown group.
    """
    kinds: list[str] | None = None
    if group:
        if group not in EVENT_GROUPS:
            raise ValueError(f"unknown group {group!r}: {', '.join(EVENT_GROUPS)}")
        kinds = list(EVENT_GROUPS[group])
    if kind:
        wanted = canonical_kind(kind)
        kinds = [k for k in (kinds or [wanted]) if k == wanted]
    if kinds is not None:
        kinds = stored_kinds(kinds) if kinds else []
    return kinds


def _search(
    storage: BaseStorage,
    record: RunRecord,
    *,
    kinds: list[str] | None,
    variant: int | None,
    needle: str,
    before: int | None,
    limit: int,
) -> dict[str, Any]:
    """Up to ``limit`` events, newest first, before the event ``before``, whose kind and
    message hold ``needle`` (a text search reads in pages); ``next_before`` continues it."""
    found: list[dict[str, Any]] = []
    cursor = before
    exhausted = False
    scanned = 0
    while len(found) < limit and scanned < _SCAN_LIMIT:
        page = storage.list_events(
            record.id,
            before_id=cursor,
            kinds=kinds,
            variant_id=variant,
            limit=_PAGE,
            newest_first=True,
        )
        scanned += len(page)
        for index, event in enumerate(page):
            cursor = event.id
            if not needle or needle in f"{canonical_kind(event.kind)} {event.message}".lower():
                found.append(views.event_json(event))
            if len(found) >= limit:
                exhausted = index == len(page) - 1 and len(page) < _PAGE
                break
        else:
            if len(page) < _PAGE:
                exhausted = True
                break
    more = cursor is not None and not exhausted
    return {"events": found, "next_before": cursor if more else None}


@router.get("/api/runs/{run}/events")
def run_events(
    record: RunDep,
    storage: StorageDep,
    group: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    variant: OptionalId = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    before: OptionalId = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """The run's events, filtered by group, kind, variant and text, a page at a time."""
    try:
        kinds = _kinds(group, kind)
    except ValueError as exc:
        return error_response(400, str(exc))
    needle = (q or "").strip().lower()
    return json_response(
        _search(
            storage, record, kinds=kinds, variant=variant, needle=needle, before=before, limit=limit
        )
    )


def _version(service: RunService, run: str | None) -> str:
    """What changes when a page must reload: every run's status and time (the runs page), or
    a run's status, liveness, last event, variant count and target.

    Raises:
        RunNotFoundError: No such run.
    """
    storage = service.storage
    if run is None:
        return json.dumps(
            [[r.id, int(r.status), r.updated_at.isoformat()] for r in storage.list_runs()]
        )
    record = service.find_run(run)
    last = storage.list_events(record.id, newest_first=True, limit=1)
    return json.dumps(
        [
            int(record.status),
            views.engine_alive(record),
            last[0].id if last else 0,
            storage.count_variants(record.id),
            record.target_generations,
        ]
    )


@router.get("/api/version")
def current_version(service: ServiceDep, run: str | None = None) -> Response:
    """The version of the runs page, or of a run's pages."""
    return json_response({"version": _version(service, run)})


@router.get("/api/stream")
async def stream(
    request: Request, service: ServiceDep, run: str | None = None, once: bool = False
) -> Response:
    """The version as server-sent events: sent at once, then whenever it changes (``gone``
    when the run is deleted), with pings; the stream ends after a while and the browser
    reconnects."""
    first = await run_in_threadpool(_version, service, run)  # a missing run: 404 before streaming

    async def changes() -> AsyncIterator[str]:
        last = first
        yield f"event: version\ndata: {json.dumps(first)}\n\n"
        if once:
            return
        started = pinged = time.monotonic()
        while time.monotonic() - started < _STREAM_LIFETIME:
            await asyncio.sleep(_STREAM_POLL)
            if await request.is_disconnected():
                return
            try:
                now = await run_in_threadpool(_version, service, run)
            except RunNotFoundError:
                yield "event: gone\ndata: {}\n\n"
                return
            if now != last:
                last = now
                yield f"event: version\ndata: {json.dumps(now)}\n\n"
            elif time.monotonic() - pinged > _STREAM_PING:
                pinged = time.monotonic()
                yield ": ping\n\n"

    return StreamingResponse(
        changes(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

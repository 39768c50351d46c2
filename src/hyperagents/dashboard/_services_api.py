"""The routes of the services page: the services (``hyperagents serve``) in this storage, one
service's detail, its traffic and quality over time and its log; and what a person decides:
promote or roll back the candidate, force or suppress the autopilot's improvements.

The decisions go through the service's storage (compare-and-set routing, commands in the
service's log), so they reach the serving process and its autopilot wherever they run; the
writes follow the dashboard's rules (token, CSRF double submit, same origin: the guard).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from hyperagents.dashboard import _service_series, _service_views
from hyperagents.dashboard._bodies import OverrideBody, ServiceDecisionBody
from hyperagents.dashboard._deps import CallerDep, OptionalId, StorageDep, require_token
from hyperagents.dashboard._responses import error_response, json_response
from hyperagents.storages import ServiceRecord

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_token)])


def get_served(service: str, storage: StorageDep) -> ServiceRecord:
    """The service a path names (``{service}``: its name, or its id).

    Raises:
        ServiceNotFoundError: No such service (404).
    """
    from hyperagents.service import find_service

    return find_service(storage, service)


ServedDep = Annotated[ServiceRecord, Depends(get_served)]


def _tasks(request: Request) -> _service_views.TaskCache:
    tasks: _service_views.TaskCache = request.app.state.service_tasks
    return tasks


@router.get("/api/services")
def services(storage: StorageDep) -> Response:
    """Every service, one row each."""
    rows = [_service_views.service_row(storage, s) for s in storage.list_services()]
    return json_response({"services": rows})


@router.get("/api/services/{service}")
def service_detail(record: ServedDep, storage: StorageDep, request: Request) -> Response:
    """A service: routing, goal, the autopilot's state, the monitor and the A/B state."""
    return json_response(_service_views.service_detail(storage, record, _tasks(request)))


@router.get("/api/services/{service}/series")
def service_series(
    record: ServedDep,
    storage: StorageDep,
    request: Request,
    buckets: Annotated[int, Query(ge=1, le=_service_series.MAX_BUCKETS)] = 60,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Response:
    """Traffic and quality over time, in at most ``MAX_BUCKETS`` buckets."""
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            return error_response(422, "since/until need a time zone (e.g. 2026-12-07T10:00:00Z)")
    if since is not None and until is not None and until <= since:
        return error_response(422, "until must be after since")
    task, _ = _tasks(request).get(storage, record.run_id)
    data = _service_series.series(storage, record, task, buckets=buckets, since=since, until=until)
    return json_response(data)


@router.get("/api/services/{service}/events")
def service_events(
    record: ServedDep,
    storage: StorageDep,
    before: OptionalId = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    state: bool = False,
) -> Response:
    """The service's log (the autopilot's decisions, commands, routing), newest first, a page
    at a time; the autopilot's state entries only with ``state``."""
    page = _service_views.events_page(
        storage,
        record.id,
        before=before,
        limit=limit,
        kinds=None if kind is None else [kind],
        with_state=state,
    )
    return json_response(page)


@router.post("/api/services/{service}/decision")
def decide(
    record: ServedDep, body: ServiceDecisionBody, storage: StorageDep, who: CallerDep
) -> Response:
    """Promote the candidate (it becomes the champion) or roll it back; 409 without a
    candidate in shadow or under A/B (or when someone else decided first)."""
    from hyperagents.service import decide_candidate

    changed = decide_candidate(
        storage, record.id, promote=body.promote, who=who, note=body.note or ""
    )
    if not changed:
        return error_response(
            409, f"service {record.name!r} has no candidate in shadow or under A/B to decide on"
        )
    return json_response(_service_views.service_row(storage, storage.get_service(record.id)))


@router.post("/api/services/{service}/override")
def override(
    record: ServedDep, body: OverrideBody, storage: StorageDep, who: CallerDep
) -> Response:
    """Ask the service's autopilot to force the next improvement, to suppress improvements,
    or to lift either (applied at its next step)."""
    from hyperagents.service import post_override

    command = post_override(storage, record.id, body.override, who=who)
    return json_response({"command": command, "override": body.override}, 202)

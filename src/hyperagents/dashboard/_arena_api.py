"""The route of an arena's page: the suite's growth and the code agents' score drops and
recoveries, round by round, the test agents' hard cases, the tournament's replacements and
the held-out result (see :mod:`._arena_views`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from hyperagents.dashboard._arena_views import arena_view
from hyperagents.dashboard._deps import RunDep, StorageDep, require_token
from hyperagents.dashboard._responses import error_response, json_response
from hyperagents.dashboard._views import is_arena

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_token)])


@router.get("/api/runs/{run}/arena")
def arena(record: RunDep, storage: StorageDep) -> Response:
    """An arena's round-by-round series (400 for a run that is not an arena)."""
    if not is_arena(record):
        return error_response(
            400, f"run {record.name!r} is not an arena (mode {record.mode}): it has no rounds"
        )
    return json_response(arena_view(storage, record))

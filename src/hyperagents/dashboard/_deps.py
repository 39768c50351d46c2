"""What the dashboard's routes depend on (FastAPI dependencies): the application service and
its storage, the guard and the token it requires, who asks, and the run or variant a path
names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi import Path as PathParam

from hyperagents.dashboard._security import Guard
from hyperagents.runs import MAX_ID, RemoteCaller, RunService
from hyperagents.storages import BaseStorage, RunRecord, VariantRecord

__all__ = [
    "CallerDep",
    "GuardDep",
    "OptionalId",
    "RemoteDep",
    "RunDep",
    "ServiceDep",
    "StorageDep",
    "VariantDep",
    "VariantId",
    "require_token",
]

#: A variant's id in a path (beyond the range: 422, never a database error).
VariantId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
#: An event's or a variant's id in a query (beyond the range: 422).
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def get_service(request: Request) -> RunService:
    """The application service the dashboard was built over."""
    service: RunService = request.app.state.service
    return service


ServiceDep = Annotated[RunService, Depends(get_service)]


def get_storage(service: ServiceDep) -> BaseStorage:
    """The storage runs are read from."""
    return service.storage


StorageDep = Annotated[BaseStorage, Depends(get_storage)]


def get_guard(request: Request) -> Guard:
    """The guard holding the dashboard's token and host rules."""
    guard: Guard = request.app.state.guard
    return guard


GuardDep = Annotated[Guard, Depends(get_guard)]


def require_token(request: Request, guard: GuardDep) -> None:
    """Refuse a request without the token (when the dashboard has one).

    The guard's middleware refuses such requests first, unknown paths included; routers that
    serve data declare the requirement too, so that they stay closed wherever they are mounted.

    Raises:
        HTTPException: 401, the request does not carry the token.
    """
    if not guard.authenticated(request):
        raise HTTPException(401, "token required")


def get_caller(request: Request) -> str:
    """Who asks, as decisions and stop requests record it."""
    client = request.client.host if request.client else "?"
    return f"the dashboard ({client})"


CallerDep = Annotated[str, Depends(get_caller)]


def get_remote(guard: GuardDep) -> RemoteCaller:
    """The caller as the application service limits it: over the network, with or without a
    token."""
    return RemoteCaller(token_protected=guard.token is not None)


RemoteDep = Annotated[RemoteCaller, Depends(get_remote)]


def get_run(run: str, service: ServiceDep) -> RunRecord:
    """The run a path names (``{run}``: its name, or its id).

    Raises:
        RunNotFoundError: No such run (404).
    """
    return service.find_run(run)


RunDep = Annotated[RunRecord, Depends(get_run)]


def get_variant(variant_id: VariantId, service: ServiceDep) -> VariantRecord:
    """The variant a path names (``{variant_id}``).

    Raises:
        VariantNotFoundError: No such variant (404).
    """
    return service.find_variant(variant_id)


VariantDep = Annotated[VariantRecord, Depends(get_variant)]

"""The service's HTTP application: a JSON API over :class:`~hyperagents.service.Serving`.

* ``POST /api/service/answer`` ``{"inputs": ...}``: the answer (200), or the variant's error
  (502), both with the ``request_id`` feedback names later.
* ``POST /api/service/requests/{id}/feedback`` ``{"label": ..., "feedback": 0.7, "by": ...}``.
* ``GET /api/service/requests``: the requests, a page at a time (``after_id``, ``limit``,
  ``since``, ``until``, ``arm``, ``with_feedback``, ``newest_first``).
* ``GET /api/service/status``: routing, load and totals.

The dashboard's guard applies (:class:`hyperagents.dashboard.Guard`): loopback by default, a
token (``Authorization: Bearer``) on every request when one is set, loopback host names only
when bound to loopback, JSON-only state changes from no other origin. Bodies are bounded;
anything malformed is a one-line 4xx error; nothing an agent does is a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import anyio
import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from hyperagents import __version__
from hyperagents.dashboard import (
    SECURITY_HEADERS,
    Guard,
    bad_request,
    error_response,
    http_error,
    library_error,
)
from hyperagents.exceptions import HyperagentsError
from hyperagents.service._more_data import wanted_labels
from hyperagents.service._records import attach_feedback, request_json
from hyperagents.service._serving import Serving
from hyperagents.storages import ARMS, MAX_REQUEST_JSON

__all__ = ["PAGE_LIMIT", "create_service_app"]

logger = logging.getLogger("hyperagents.service")

#: Most requests one page of ``GET /api/service/requests`` lists.
PAGE_LIMIT = 500
_MAX_ID = 2**62
_BODY_LIMIT = MAX_REQUEST_JSON + 8 * 1024


class AnswerBody(BaseModel):
    """A request to answer: the task agent's input (JSON)."""

    model_config = ConfigDict(extra="forbid")
    inputs: Any = None


class FeedbackBody(BaseModel):
    """Feedback on an answer: the right answer (a label), a score in [0, 1], or both."""

    model_config = ConfigDict(extra="forbid")
    label: Any = None
    feedback: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    by: str | None = Field(None, max_length=200)


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse what the guard refuses; add the security headers to every answer."""
    guard: Guard = request.app.state.guard
    if not guard.host_allowed(request):
        response = error_response(400, "this service answers requests to localhost only")
    elif (problem := guard.cross_site_problem(request)) is not None:
        response = error_response(403, problem)
    elif not guard.authenticated(request):
        response = error_response(401, "token required (Authorization: Bearer TOKEN)")
    else:
        try:
            response = await call_next(request)
        except Exception:  # never a traceback to the client
            logger.exception("service request failed: %s %s", request.method, request.url.path)
            response = error_response(500, "internal error (the service's log has the details)")
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


router = APIRouter(prefix="/api/service")


def _serving(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


@router.post("/answer")
async def answer(request: Request, body: AnswerBody) -> Response:
    """Answer one request with the routed variant (waiting for a free worker). Once recorded,
    a request is answered and its answer recorded even if the client goes away meanwhile."""
    serving = _serving(request)
    limiter: CapacityLimiter = request.app.state.limiter
    admitted = await anyio.to_thread.run_sync(serving.admit, body.inputs)
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(serving.solve, admitted, limiter=limiter)
    return JSONResponse(result.as_json(), status_code=200 if result.ok else 502)


@router.post("/requests/{request_id}/feedback")
def feedback(
    request: Request,
    request_id: Annotated[int, PathParam(ge=1, le=_MAX_ID)],
    body: FeedbackBody,
) -> Response:
    """Attach a label and/or a score to an answered request."""
    serving = _serving(request)
    client = request.client.host if request.client else "?"
    record = attach_feedback(
        serving.storage,
        request_id,
        label=body.label,
        score=body.feedback,
        by=body.by or f"the service API ({client})",
        service_id=serving.service_id,
    )
    return JSONResponse(request_json(record))


@router.get("/requests")
def requests(
    request: Request,
    after_id: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    since: datetime | None = None,
    until: datetime | None = None,
    arm: Annotated[list[str] | None, Query()] = None,
    with_feedback: bool | None = None,
    newest_first: bool = False,
) -> Response:
    """A page of the service's requests; ``next_after_id`` asks for the next (oldest first)."""
    serving = _serving(request)
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            return error_response(422, "since/until need a time zone (e.g. 2026-12-07T10:00:00Z)")
    if arm is not None and not set(arm) <= set(ARMS):
        return error_response(422, f"arm: one of {', '.join(ARMS)}")
    found = serving.storage.list_service_requests(
        serving.service_id,
        after_id=after_id,
        since=since,
        until=until,
        arms=arm,
        with_feedback=with_feedback,
        limit=limit,
        newest_first=newest_first,
    )
    full = len(found) == limit and not newest_first
    return JSONResponse(
        {
            "requests": [request_json(r) for r in found],
            "next_after_id": found[-1].id if full else None,
        }
    )


@router.get("/wanted")
def wanted(request: Request) -> Response:
    """The requests a plan asked people to label that have no label yet (post one with
    ``POST /requests/{id}/feedback``: it joins the next improvement's train data)."""
    serving = _serving(request)
    return JSONResponse({"wanted": wanted_labels(serving.storage, serving.service_id)})


@router.get("/status")
def status(request: Request) -> Response:
    """The service's routing, load and totals."""
    return JSONResponse(_serving(request).status())


def create_service_app(
    serving: Serving, *, token: str | None = None, loopback_only: bool = True
) -> FastAPI:
    """Build the service's HTTP application over ``serving`` (see the module docstring).

    Args:
        serving: What answers (started by the caller; the app never closes it).
        token: Required on every request when given.
        loopback_only: Answer only requests addressed to a loopback host name.
    """
    app = FastAPI(
        title="hyperagents service",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        debug=False,
        max_body_size=_BODY_LIMIT,
    )
    app.state.serving = serving
    app.state.guard = Guard(token=token, loopback_only=loopback_only, double_submit=False)
    app.state.limiter = CapacityLimiter(serving.workers)
    app.middleware("http")(_guard)
    app.exception_handler(HyperagentsError)(library_error)
    app.exception_handler(RequestValidationError)(bad_request)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.include_router(router)
    return app

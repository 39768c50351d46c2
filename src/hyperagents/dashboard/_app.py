"""The dashboard's HTTP application: the routers (a JSON API over the application service, and
the page that uses it) behind the guard, assembled by :func:`create_app`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from hyperagents import __version__
from hyperagents.dashboard import (
    _arena_api,
    _events_api,
    _pages,
    _runs_api,
    _steer_api,
    _variants_api,
)
from hyperagents.dashboard._bodies import BODY_LIMIT
from hyperagents.dashboard._events_api import EVENT_GROUPS
from hyperagents.dashboard._handlers import (
    bad_request,
    guard_requests,
    http_error,
    internal_error,
    library_error,
)
from hyperagents.dashboard._security import Guard
from hyperagents.exceptions import HyperagentsError
from hyperagents.runs import RunService
from hyperagents.storages import BaseStorage

__all__ = ["EVENT_GROUPS", "create_app"]


def create_app(
    storage: BaseStorage,
    *,
    storage_url: str | None = None,
    token: str | None = None,
    loopback_only: bool = True,
    log_dir: Path | None = None,
) -> FastAPI:
    """Build the dashboard over ``storage``.

    Args:
        storage: Where runs are read from (and stop/delete requests written to).
        storage_url: The URL of ``storage``, given to the engine processes that start and
            resume runs (None: runs cannot be driven from this dashboard).
        token: Required on every API request when given (see :mod:`._security`).
        loopback_only: Answer only requests addressed to a loopback host name (the default
            bind address; refuses DNS-rebinding pages).
        log_dir: Where engine processes started from here write their output.
    """
    app = FastAPI(
        title="hyperagents dashboard",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        debug=False,
        # Bodies are counted as they arrive (Content-Length first): too large is 413, unread.
        max_body_size=BODY_LIMIT,
    )
    service = RunService(storage, storage_url=storage_url, log_dir=log_dir)
    app.state.service = service
    app.state.storage = storage
    app.state.guard = Guard(token=token, loopback_only=loopback_only)
    app.middleware("http")(guard_requests)
    app.exception_handler(HyperagentsError)(library_error)
    app.exception_handler(RequestValidationError)(bad_request)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(Exception)(internal_error)
    app.include_router(_pages.router)
    app.mount("/static", StaticFiles(directory=_pages.static_dir()), name="static")
    for module in (_runs_api, _events_api, _variants_api, _steer_api, _arena_api):
        app.include_router(module.router)
    return app

"""What every request goes through: the guard (host, cross-site and token rules, security
headers, the CSRF cookie), and errors turned into one-line messages, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hyperagents.dashboard._responses import error_response
from hyperagents.dashboard._security import CSRF_COOKIE, SECURITY_HEADERS, Guard, new_csrf_token
from hyperagents.exceptions import (
    DuplicateError,
    HyperagentsError,
    RequestNotFoundError,
    RunNotFoundError,
    RunStateError,
    ServiceNotFoundError,
    TaskNotFoundError,
    VariantNotFoundError,
)

__all__ = ["bad_request", "guard_requests", "http_error", "internal_error", "library_error"]

logger = logging.getLogger("hyperagents.dashboard")

#: API paths answered without the token: what the page needs to sign in.
_OPEN_API = ("/api/login", "/api/info")
_INTERNAL = "internal error (the dashboard's log has the details)"
_NOT_FOUND = (
    RunNotFoundError,
    VariantNotFoundError,
    TaskNotFoundError,
    ServiceNotFoundError,
    RequestNotFoundError,
)


async def guard_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The middleware in front of every route: refuse what the guard refuses (a host name
    other than loopback, a cross-site state change, an API request without the token), and
    add the security headers and the CSRF cookie to every answer."""
    guard: Guard = request.app.state.guard
    path = request.url.path
    if not guard.host_allowed(request):
        response = error_response(400, "this dashboard answers requests to localhost only")
    elif (problem := guard.cross_site_problem(request)) is not None:
        response = error_response(403, problem)
    elif path.startswith("/api/") and path not in _OPEN_API and not guard.authenticated(request):
        response = error_response(401, "token required")
    else:
        try:
            response = await call_next(request)
        except Exception:  # never a traceback in the browser
            logger.exception("dashboard request failed: %s %s", request.method, path)
            response = error_response(500, _INTERNAL)
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    if path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE, new_csrf_token(), httponly=False, samesite="strict", path="/"
        )
    return response


def _status(exc: HyperagentsError) -> int:
    """The HTTP status of a library error: 404 not found (a run, variant, task, service or
    served request), 409 conflict, else 400."""
    if isinstance(exc, _NOT_FOUND):
        return 404
    if isinstance(exc, DuplicateError | RunStateError):
        return 409
    return 400


async def library_error(_: Request, exc: HyperagentsError) -> Response:
    """A library error as its first line, with its status."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return error_response(_status(exc), message)


async def bad_request(_: Request, exc: RequestValidationError) -> Response:
    """A request that does not fit its route (422): the first problems, in words."""
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
    return error_response(422, "; ".join(problems) or "invalid request")


async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
    """An HTTP error (404 no route, 405, 413 too large, 401 from a dependency) as JSON."""
    return error_response(exc.status_code, str(exc.detail))


async def internal_error(request: Request, exc: Exception) -> Response:
    """Anything else: logged, and answered without a detail."""
    logger.error("dashboard request failed: %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, _INTERNAL)

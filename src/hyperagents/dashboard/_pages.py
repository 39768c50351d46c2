"""The page and the session: the page shell (which holds no data), its highlighting style,
and what the page asks before it signs in (``/api/info``, ``/api/login``) or to sign out."""

from __future__ import annotations

import functools
import time
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pygments.formatters import HtmlFormatter

from hyperagents import __version__
from hyperagents.dashboard._bodies import Empty, LoginBody
from hyperagents.dashboard._deps import GuardDep, ServiceDep, require_token
from hyperagents.dashboard._events_api import EVENT_GROUPS
from hyperagents.dashboard._responses import error_response, json_response
from hyperagents.dashboard._security import SESSION_COOKIE, Guard
from hyperagents.runs import LEVELS, Mode, level_preset

__all__ = ["router", "static_dir"]

router = APIRouter()


def static_dir() -> Path:
    """The page's assets, shipped in the package."""
    return Path(str(resources.files("hyperagents.dashboard") / "static"))


@functools.cache
def _highlight_css() -> str:
    return str(HtmlFormatter(style="default").get_style_defs(".hl"))  # type: ignore[no-untyped-call]


def _set_session(response: Response, guard: Guard) -> None:
    assert guard.session_value is not None
    response.set_cookie(
        SESSION_COOKIE, guard.session_value, httponly=True, samesite="strict", path="/"
    )


@router.get("/", include_in_schema=False)
def index(guard: GuardDep, token: str | None = None) -> Response:
    """The page; opened with ``?token=…``, the token is kept in a session cookie and dropped
    from the address bar."""
    if token is not None:
        response: Response = RedirectResponse("/", status_code=303)
        if guard.token_matches(token):
            _set_session(response, guard)
        return response
    return FileResponse(static_dir() / "index.html", media_type="text/html")


@router.get("/highlight.css", include_in_schema=False)
def highlight_css() -> Response:
    """The classes of highlighted code."""
    return Response(_highlight_css(), media_type="text/css")


@router.get("/api/info")
def info(request: Request, guard: GuardDep, service: ServiceDep) -> Response:
    """What the page needs first: whether a token is required and given, whether runs can be
    driven, and (signed in) the tasks it may start."""
    from hyperagents.tasks import list_tasks

    authed = guard.authenticated(request)
    return json_response(
        {
            "version": __version__,
            "token_required": guard.token is not None,
            "authenticated": authed,
            "can_drive": service.can_drive,
            "tasks": [t.name for t in list_tasks()] if authed else [],
            "modes": [m.value for m in Mode],
            # The levels the run form starts (the engine's modes); the arena runs by its own
            # loop: `hyperagents run --level arena`, `experiment --levels ...,arena`.
            "levels": [level for level in LEVELS if level_preset(level).mode is not None],
            "event_groups": EVENT_GROUPS,
        }
    )


@router.post("/api/login")
def login(body: LoginBody, guard: GuardDep) -> Response:
    """Sign in with the token typed into the page (a session cookie)."""
    if guard.token is None:
        return json_response({"ok": True})
    if not guard.token_matches(body.token.strip()):
        time.sleep(0.2)  # slows guessing a little; tokens are long anyway
        return error_response(401, "wrong token")
    response = json_response({"ok": True})
    _set_session(response, guard)
    return response


@router.post("/api/logout", dependencies=[Depends(require_token)])
def logout(_: Empty | None = None) -> Response:
    """Sign out (the session cookie is dropped)."""
    response = json_response({"ok": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response

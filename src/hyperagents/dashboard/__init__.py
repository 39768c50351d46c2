"""The web dashboard: watch runs live, inspect variants, and steer (start, stop, resume, delete,
try a task agent) from a browser.

``hyperagents dashboard`` serves it; :func:`create_app` builds the FastAPI application over any
storage from routers by area (``_pages``: the page and the session; ``_runs_api``: runs and
exports; ``_events_api``: events and live updates; ``_variants_api``: one variant; ``_steer_api``:
what changes things; ``_arena_api``: an arena's rounds; ``_services_api``: the services
``hyperagents serve`` runs, their traffic, quality, drift, autopilot and A/B state, and promote
/ roll back / force / suppress), each a
thin layer over the application service (:class:`hyperagents.runs.RunService`) with FastAPI
dependencies for the service, the guard and the run, variant or service a path names. The
dashboard only reads and writes storage: engines run in processes of their own, so any run
writing to the same storage appears and updates live. All assets ship in the package (no CDN,
no build step).
"""

from __future__ import annotations

from hyperagents.dashboard._app import EVENT_GROUPS, create_app
from hyperagents.dashboard._handlers import bad_request, http_error, library_error
from hyperagents.dashboard._responses import error_response
from hyperagents.dashboard._security import (
    MIN_TOKEN_LENGTH,
    SECURITY_HEADERS,
    Guard,
    is_loopback,
)
from hyperagents.dashboard._serve import TOKEN_ENV_VAR, check_binding, serve

__all__ = [
    "EVENT_GROUPS",
    "MIN_TOKEN_LENGTH",
    "SECURITY_HEADERS",
    "TOKEN_ENV_VAR",
    "Guard",
    "bad_request",
    "check_binding",
    "create_app",
    "error_response",
    "http_error",
    "is_loopback",
    "library_error",
    "serve",
]

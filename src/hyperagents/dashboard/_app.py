"""The dashboard's HTTP application: a JSON API over storage, and the page that uses it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from pygments.formatters import HtmlFormatter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import StreamingResponse

from hyperagents import __version__
from hyperagents.dashboard import _views as views
from hyperagents.dashboard._control import (
    TRY_INPUT_LIMIT,
    EngineLauncher,
    StartSpec,
    delete_run,
    request_stop,
    resume_run,
    start_run,
    try_example,
    try_variant,
)
from hyperagents.dashboard._security import (
    CSRF_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Guard,
    new_csrf_token,
)
from hyperagents.exceptions import (
    ConfigError,
    DuplicateError,
    HyperagentsError,
    ProgramError,
    RunNotFoundError,
    RunStateError,
    TaskNotFoundError,
    VariantNotFoundError,
)
from hyperagents.runs import Mode
from hyperagents.runs._audit import canonical_kind, stored_kinds
from hyperagents.runs._export import EXPORT_COLUMNS, csv_text, run_export, variant_row
from hyperagents.runs._resolve import MAX_ID, find_run
from hyperagents.storages import BaseStorage, RunRecord, VariantRecord

__all__ = ["EVENT_GROUPS", "create_app"]

logger = logging.getLogger("hyperagents.dashboard")

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
#: Largest request body (bytes) of every request but "try it"'s: the forms are small.
_BODY_LIMIT = 64 * 1024
#: Largest body of a "try it" request: the input and the JSON around it.
_TRY_BODY_LIMIT = TRY_INPUT_LIMIT + 4 * 1024

#: A run's or a variant's id in a path or query (beyond it: 422, never a database error).
VariantId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _static_dir() -> Path:
    return Path(str(resources.files("hyperagents.dashboard") / "static"))


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON without FastAPI's per-value encoder (10,000 archive rows stay fast)."""
    body = json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


# -- request bodies ---------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBody(_Body):
    task: str = Field(min_length=1, max_length=200)
    mode: Mode = Mode.HYPERAGENT
    generations: int = Field(30, ge=0, le=100_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    name: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
    workers: int = Field(1, ge=1, le=256)
    sandbox: str | None = Field(None, max_length=20)
    llm: str | None = Field(None, max_length=500)
    max_cost: float | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=0)
    meta: str | None = Field(None, max_length=20)


class StopBody(_Body):
    now: bool = False  # kill the engine (and its sandboxes) instead of letting it finish


class DecisionBody(_Body):
    note: str | None = Field(None, max_length=2000)


class ResumeBody(_Body):
    generations: int | None = Field(None, ge=0, le=100_000)
    workers: int | None = Field(None, ge=1, le=256)


class DeleteBody(_Body):
    confirm: str = Field(max_length=300)


class TryBody(_Body):
    inputs: Any = None


class LoginBody(_Body):
    token: str = Field(max_length=1000)


class _Empty(_Body):
    pass


# -- the application --------------------------------------------------------------------------
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
    guard = Guard(token=token, loopback_only=loopback_only)
    launcher = EngineLauncher(storage_url, log_dir)
    app = FastAPI(
        title="hyperagents dashboard",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        debug=False,
        # Bodies are counted as they arrive (Content-Length first): too large is 413, unread.
        max_body_size=_BODY_LIMIT,
    )
    app.state.storage = storage
    app.state.guard = guard
    app.state.launcher = launcher
    static = _static_dir()

    # -- the guard, on every request ----------------------------------------------------------
    @app.middleware("http")
    async def guard_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if not guard.host_allowed(request):
            response = _error(400, "this dashboard answers requests to localhost only")
        elif (problem := guard.cross_site_problem(request)) is not None:
            response = _error(403, problem)
        elif (
            path.startswith("/api/")
            and path not in ("/api/login", "/api/info")
            and not guard.authenticated(request)
        ):
            response = _error(401, "token required")
        else:
            try:
                response = await call_next(request)
            except Exception:  # never a traceback in the browser
                logger.exception("dashboard request failed: %s %s", request.method, path)
                response = _error(500, "internal error (the dashboard's log has the details)")
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        if path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(
                CSRF_COOKIE, new_csrf_token(), httponly=False, samesite="strict", path="/"
            )
        return response

    # -- errors: a message, never a stack trace -------------------------------------------
    @app.exception_handler(HyperagentsError)
    async def library_error(_: Request, exc: HyperagentsError) -> Response:
        if isinstance(exc, RunNotFoundError | VariantNotFoundError | TaskNotFoundError):
            status = 404
        elif isinstance(exc, DuplicateError | RunStateError):
            status = 409
        elif isinstance(exc, ConfigError | ProgramError):
            status = 400
        else:
            status = 400
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _error(status, message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        logger.error(
            "dashboard request failed: %s %s", request.method, request.url.path, exc_info=exc
        )
        return _error(500, "internal error (the dashboard's log has the details)")

    # -- helpers ---------------------------------------------------------------------------
    def run_of(spec: str) -> RunRecord:
        return find_run(storage, spec)

    def variant_of(variant_id: int) -> VariantRecord:
        return storage.get_variant(variant_id)

    def who(request: Request) -> str:
        client = request.client.host if request.client else "?"
        return f"the dashboard ({client})"

    # -- pages -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index(request: Request, token: str | None = None) -> Response:
        if token is not None:
            # A link with the token: remember it in a cookie and drop it from the address bar.
            response: Response = RedirectResponse("/", status_code=303)
            if guard.token_matches(token):
                _set_session(response, guard)
            return response
        return FileResponse(static / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static), name="static")

    css = str(HtmlFormatter(style="default").get_style_defs(".hl"))  # type: ignore[no-untyped-call]

    @app.get("/highlight.css", include_in_schema=False)
    def highlight_css() -> Response:
        return Response(css, media_type="text/css")

    # -- session ---------------------------------------------------------------------------
    @app.get("/api/info")
    def info(request: Request) -> Response:
        from hyperagents.tasks import list_tasks

        authed = guard.authenticated(request)
        return _json(
            {
                "version": __version__,
                "token_required": guard.token is not None,
                "authenticated": authed,
                "can_drive": launcher.available,
                "tasks": [t.name for t in list_tasks()] if authed else [],
                "modes": [m.value for m in Mode],
                "event_groups": EVENT_GROUPS,
            }
        )

    @app.post("/api/login")
    def login(body: LoginBody) -> Response:
        if guard.token is None:
            return _json({"ok": True})
        if not guard.token_matches(body.token.strip()):
            time.sleep(0.2)  # slows guessing a little; tokens are long anyway
            return _error(401, "wrong token")
        response = _json({"ok": True})
        _set_session(response, guard)
        return response

    @app.post("/api/logout")
    def logout(_: _Empty | None = None) -> Response:
        response = _json({"ok": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- runs ------------------------------------------------------------------------------
    @app.get("/api/runs")
    def runs() -> Response:
        rows = [views.run_row(storage, r) for r in storage.list_runs()]
        return _json({"runs": rows, "engines": launcher.running()})

    @app.get("/api/runs.{fmt}")
    def export_runs(fmt: str) -> Response:
        rows = [views.run_row(storage, r) for r in storage.list_runs()]
        if fmt == "csv":
            return Response(
                csv_text(rows, views.RUN_COLUMNS),
                media_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="runs.csv"'},
            )
        if fmt == "json":
            return _json(
                {"runs": rows},
                headers={"Content-Disposition": 'attachment; filename="runs.json"'},
            )
        return _error(404, f"unknown export format {fmt!r} (csv or json)")

    @app.post("/api/runs", status_code=201)
    def start(body: StartBody) -> Response:
        spec = StartSpec(**body.model_dump() | {"mode": body.mode.value})
        record = start_run(storage, launcher, spec, token_protected=guard.token is not None)
        return _json(views.run_row(storage, record), 201)

    @app.get("/api/runs/{run}")
    def run_overview(run: str) -> Response:
        return _json(views.overview(storage, run_of(run)))

    @app.get("/api/runs/{run}/archive")
    def run_archive(run: str) -> Response:
        return _json(views.archive(storage, run_of(run)))

    @app.get("/api/runs/{run}/lineage")
    def run_lineage(run: str) -> Response:
        return _json(views.lineage(storage, run_of(run)))

    @app.get("/api/runs/{run}/events")
    def run_events(
        run: str,
        group: Annotated[str | None, Query(max_length=40)] = None,
        kind: Annotated[str | None, Query(max_length=100)] = None,
        variant: OptionalId = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        before: OptionalId = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> Response:
        record = run_of(run)
        kinds: list[str] | None = None
        if group:
            if group not in EVENT_GROUPS:
                return _error(400, f"unknown group {group!r}: {', '.join(EVENT_GROUPS)}")
            kinds = list(EVENT_GROUPS[group])
        if kind:
            wanted = canonical_kind(kind)
            kinds = [k for k in (kinds or [wanted]) if k == wanted]
        if kinds is not None:  # events stored under a kind's old name are found too
            kinds = stored_kinds(kinds) if kinds else []
        needle = (q or "").strip().lower()
        found: list[dict[str, Any]] = []
        cursor = before
        exhausted = False
        scanned = 0
        while len(found) < limit and scanned < 200_000:  # a text search scans in pages
            page = storage.list_events(
                record.id,
                before_id=cursor,
                kinds=kinds,
                variant_id=variant,
                limit=1000,
                newest_first=True,
            )
            scanned += len(page)
            for index, event in enumerate(page):
                cursor = event.id
                if not needle or needle in f"{canonical_kind(event.kind)} {event.message}".lower():
                    found.append(views.event_json(event))
                if len(found) >= limit:
                    exhausted = index == len(page) - 1 and len(page) < 1000
                    break
            else:
                if len(page) < 1000:
                    exhausted = True
                    break
        more = cursor is not None and not exhausted
        return _json({"events": found, "next_before": cursor if more else None})

    @app.get("/api/runs/{run}/export.{fmt}")
    def export_run(run: str, fmt: str) -> Response:
        record = run_of(run)
        variants = storage.list_variants(record.id)
        filename = f"{_safe_filename(record.name)}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if fmt == "csv":
            return Response(
                csv_text((variant_row(v) for v in variants), EXPORT_COLUMNS),
                media_type="text/csv",
                headers=disposition,
            )
        if fmt == "json":
            payload = run_export(record, variants)
            return _json(payload, headers=disposition)
        return _error(404, f"unknown export format {fmt!r} (csv or json)")

    @app.post("/api/runs/{run}/stop")
    def stop(run: str, request: Request, body: StopBody | None = None) -> Response:
        record = run_of(run)
        now = body is not None and body.now
        said = request_stop(storage, record, who=who(request), now=now)
        return _json(views.run_row(storage, storage.get_run(record.id)) | {"message": said})

    @app.post("/api/runs/{run}/resume")
    def resume(run: str, body: ResumeBody) -> Response:
        record = run_of(run)
        resume_run(storage, launcher, record, generations=body.generations, workers=body.workers)
        return _json(views.run_row(storage, storage.get_run(record.id)), 202)

    @app.delete("/api/runs/{run}")
    def delete(run: str, body: DeleteBody) -> Response:
        record = run_of(run)
        delete_run(storage, record, confirm=body.confirm)
        return _json({"deleted": record.name})

    # -- live updates ----------------------------------------------------------------------
    def version(run: str | None) -> str:
        if run is None:
            return json.dumps(
                [[r.id, int(r.status), r.updated_at.isoformat()] for r in storage.list_runs()]
            )
        record = run_of(run)
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

    @app.get("/api/version")
    def current_version(run: str | None = None) -> Response:
        return _json({"version": version(run)})

    @app.get("/api/stream")
    async def stream(request: Request, run: str | None = None, once: bool = False) -> Response:
        first = await run_in_threadpool(version, run)  # a missing run: 404 before streaming

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
                    now = await run_in_threadpool(version, run)
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

    # -- variants --------------------------------------------------------------------------
    @app.get("/api/variants/{variant_id}")
    def variant(variant_id: VariantId) -> Response:
        return _json(views.variant_detail(storage, variant_of(variant_id)))

    @app.get("/api/variants/{variant_id}/file")
    def variant_file(
        variant_id: VariantId, path: Annotated[str, Query(min_length=1, max_length=1000)]
    ) -> Response:
        record = variant_of(variant_id)
        if record.program_id is None:
            raise VariantNotFoundError(f"variant {variant_id} has no program")
        return _json(views.file_view(storage.get_program(record.program_id), path))

    @app.get("/api/variants/{variant_id}/diff")
    def variant_diff(variant_id: VariantId, against: OptionalId = None) -> Response:
        record = variant_of(variant_id)
        base, old, new = views.diff_sides(storage, record, against)
        query = "" if against is None else f"?against={against}"
        return _json(
            {
                "variant": record.id,
                "against": None if base is None else base.id,
                **views.diff(old, new),
                "download": f"/api/variants/{record.id}/diff.zip{query}",
            }
        )

    @app.get("/api/variants/{variant_id}/diff.zip")
    def variant_diff_download(variant_id: VariantId, against: OptionalId = None) -> Response:
        record = variant_of(variant_id)
        base, old, new = views.diff_sides(storage, record, against)
        name = f"variant-{record.id}" + ("" if base is None else f"-vs-{base.id}")
        return Response(
            views.diff_archive(old, new),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
        )

    @app.get("/api/variants/{variant_id}/llm")
    def variant_llm(variant_id: VariantId) -> Response:
        record = variant_of(variant_id)
        calls = storage.list_llm_calls(record.run_id, variant_id=record.id)
        return _json({"calls": views.llm_calls(calls)})

    @app.get("/api/variants/{variant_id}/try")
    def try_info(variant_id: VariantId) -> Response:
        record = variant_of(variant_id)
        return _json(try_example(storage.get_run(record.run_id)))

    @app.post("/api/variants/{variant_id}/try", max_body_size=_TRY_BODY_LIMIT)
    def try_it(variant_id: VariantId, body: TryBody) -> Response:
        record = variant_of(variant_id)
        return _json(try_variant(storage, storage.get_run(record.run_id), record, body.inputs))

    # after /try: the same path shape, matched in order
    @app.post("/api/variants/{variant_id}/{decision}")
    def decide(
        variant_id: VariantId, decision: str, request: Request, body: DecisionBody | None = None
    ) -> Response:
        from hyperagents.runs import approve, ban, pin, reject

        record = variant_of(variant_id)
        note = body.note if body is not None else None
        if decision == "approve":
            approve(storage, record, who=who(request), note=note)
        elif decision == "reject":
            reject(storage, record, who=who(request), note=note)
        elif decision == "pin":
            pin(storage, record, who=who(request))
        elif decision == "ban":
            ban(storage, record, who=who(request), note=note)
        else:
            return _error(404, f"unknown decision {decision!r}")
        return _json(views.variant_detail(storage, variant_of(variant_id)))

    return app


def _set_session(response: Response, guard: Guard) -> None:
    assert guard.session_value is not None
    response.set_cookie(
        SESSION_COOKIE, guard.session_value, httponly=True, samesite="strict", path="/"
    )


def _safe_filename(name: str) -> str:
    """An ASCII file name for a Content-Disposition header."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name) or "run"

"""The SQLAlchemy storage: SQLite by default, PostgreSQL (or any SQLAlchemy URL) for many workers.

Design notes:

* One :class:`~sqlalchemy.engine.Engine` per storage object; each method checks out a pooled
  connection, runs one short transaction with SQLAlchemy Core statements on the tables of
  :mod:`hyperagents.storages._rdb.models` and commits before returning (no ORM unit of work, no
  lazy loading, no N+1 queries). The engine's pool makes the object safe to share by threads.
* Compare-and-set transitions are single ``UPDATE … WHERE id = :id AND state IN (:expected)``
  statements whose row count says whether they applied; no lock outlives a call.
* SQLite runs in WAL mode with ``synchronous=NORMAL`` (a commit survives the death of the
  process), ``foreign_keys=ON`` and a 30 s busy timeout; write transactions start with
  ``BEGIN IMMEDIATE`` so concurrent read-modify-write calls queue instead of failing.
  PostgreSQL read-modify-write calls lock the row with ``SELECT … FOR UPDATE``.
* The schema is created and upgraded only by the Alembic migrations shipped in this package,
  run on open under a lock (SQLite: the write lock; PostgreSQL: an advisory lock), so several
  processes may open a fresh database at once.
* A run's engine slot is two columns (``engine``, ``engine_heartbeat_at``) claimed with one
  ``UPDATE runs SET engine = :owner … WHERE id = :id AND (engine = :expected OR engine =
  :owner)``: of engines racing for a run exactly one sees a row count of 1.
* Transient errors (a dropped connection, a database restarting, SQLite's "database is
  locked") are retried by every method with a bounded exponential backoff
  (``retry_seconds``, default 30 s, also ``$HYPERAGENTS_STORAGE_RETRY_SECONDS``; PostgreSQL
  connections are also pinged when taken from the pool). A failed transaction is rolled back,
  so retrying it applies it once. Only when a COMMIT itself was cut off (PostgreSQL) is the
  outcome unknown: then only methods that are harmless to apply twice (merges, heartbeats,
  programs, engine claims by the same owner) are retried; the others raise
  :class:`StorageError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Text,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.pool import StaticPool

from hyperagents.exceptions import (
    DuplicateError,
    RunNotFoundError,
    StorageError,
    StorageURLError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.storages._base import (
    BaseStorage,
    EvaluationRecord,
    EventRecord,
    EventSpec,
    LLMCallRecord,
    RunRecord,
    RunStatus,
    VariantRecord,
    VariantState,
)
from hyperagents.storages._common import (
    check_score,
    dumps_json,
    json_copy,
    normalise_expected,
    utcnow,
)
from hyperagents.storages._rdb.models import (
    BlobModel,
    EvaluationModel,
    EventModel,
    LLMCallModel,
    ProgramModel,
    RunModel,
    VariantModel,
    WriteReceiptModel,
)

__all__ = ["DEFAULT_RETRY_SECONDS", "HEAD_REVISION", "RETRY_ENV_VAR", "RDBStorage", "normalise_url"]

logger = logging.getLogger("hyperagents")

#: The newest migration shipped with this version (a test checks it against the scripts).
HEAD_REVISION = "0004"
#: Folder of the Alembic environment (``env.py``, ``versions/``) inside the installed package.
ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
#: Key of the PostgreSQL advisory lock held while migrating (any constant shared by processes).
_MIGRATION_LOCK_KEY = 0x6879_7065_7261_6700 >> 8
_SQLITE_BUSY_TIMEOUT_S = 30.0
#: Seconds a storage method keeps retrying transient database errors, by default.
DEFAULT_RETRY_SECONDS = 30.0
#: Environment variable overriding :data:`DEFAULT_RETRY_SECONDS` (``0``: no retries).
RETRY_ENV_VAR = "HYPERAGENTS_STORAGE_RETRY_SECONDS"
_RETRY_FIRST_DELAY = 0.05
_RETRY_MAX_DELAY = 4.0
_IN_CHUNK = 500  # ids/hashes per IN (...) clause

RUNS = cast(Table, RunModel.__table__)
BLOBS = cast(Table, BlobModel.__table__)
PROGRAMS = cast(Table, ProgramModel.__table__)
VARIANTS = cast(Table, VariantModel.__table__)
EVALUATIONS = cast(Table, EvaluationModel.__table__)
EVENTS = cast(Table, EventModel.__table__)
LLM_CALLS = cast(Table, LLMCallModel.__table__)
RECEIPTS = cast(Table, WriteReceiptModel.__table__)
#: Receipts older than this are deleted (a receipt is needed only while its call retries).
_RECEIPT_KEEP = timedelta(days=1)
#: Old receipts are pruned once every this many receipts written by one storage object.
_RECEIPT_PRUNE_EVERY = 1000
#: The receipt token of the write-once call in progress in this thread (None: no receipt).
_RECEIPT_TOKEN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hyperagents_receipt", default=None
)

_RUN_COLUMNS = [RUNS.c[f.name] for f in dataclasses.fields(RunRecord)]
_VARIANT_COLUMNS = [VARIANTS.c[f.name] for f in dataclasses.fields(VariantRecord)]
_EVALUATION_COLUMNS = [EVALUATIONS.c[f.name] for f in dataclasses.fields(EvaluationRecord)]
_EVENT_COLUMNS = [EVENTS.c[f.name] for f in dataclasses.fields(EventRecord)]
_LLM_CALL_COLUMNS = [LLM_CALLS.c[f.name] for f in dataclasses.fields(LLMCallRecord)]
# Variants are read in bulk (list_variants of thousands of rows per generation): their JSON
# columns are fetched as text and decoded with ONE json.loads call for all rows, which is several
# times faster than one call per value.
_VARIANT_JSON = ("scores", "metrics", "meta_info")
_VARIANT_SELECT = [
    c.cast(Text).label(c.name) if c.name in _VARIANT_JSON else c for c in _VARIANT_COLUMNS
]
_RUN_STATUSES = {int(s): s for s in RunStatus}
_VARIANT_STATES = {int(s): s for s in VariantState}


def _first_line(exc: BaseException) -> str:
    """A one-line description of a (driver) exception."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def normalise_url(url: str | URL) -> URL:
    """Parse and check a storage URL; map ``postgresql://`` to the psycopg 3 driver.

    Raises:
        StorageURLError: The URL is malformed, or a SQLite file's directory does not exist.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise StorageURLError(
            f"malformed storage URL {str(url)!r}: expected e.g. 'sqlite:///hyperagents.db', "
            "'postgresql://user:password@host/db' or 'memory'"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres") and parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "postgres":
        parsed = parsed.set(drivername="postgresql+" + parsed.get_driver_name())
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            directory = Path(database).expanduser().resolve().parent
            if not directory.is_dir():
                raise StorageURLError(
                    f"cannot use storage {parsed.render_as_string(hide_password=True)!r}: "
                    f"directory {str(directory)!r} does not exist"
                )
    return parsed


def _create_private_file(path: str) -> None:
    """Create a new SQLite file readable by its owner only (it holds labels and scores);
    SQLite gives its -wal and -shm files the same permissions. Existing files are left as
    they are."""
    if path.startswith("file:") or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class _AlreadyApplied(Exception):
    """The receipt of a write-once call exists: an earlier attempt committed (see ``_write``)."""


class _TransientError(StorageError):
    """A database error that may pass: a dropped connection, a database restarting or busy.

    Attributes:
        unknown: It cut off a COMMIT, so the change may have been applied.
    """

    def __init__(self, message: str, *, unknown: bool) -> None:
        super().__init__(message)
        self.unknown = unknown


def _is_transient(exc: SQLAlchemyError, *, sqlite: bool) -> bool:
    """Whether ``exc`` is worth retrying (the transaction it ended was rolled back)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # the dialect recognised a disconnect
        return True
    if not isinstance(exc, OperationalError):
        return False
    if sqlite:  # sqlite3 raises OperationalError for mistakes in SQL too: only a busy database
        message = str(exc.orig).lower()
        return "locked" in message or "busy" in message
    # PostgreSQL: cannot connect, the server shutting down or starting up, a connection
    # terminated, a deadlock or serialization failure (rolled back by the server).
    return True


def _retry_seconds(given: float | None) -> float:
    """The retry budget: ``given``, else ``$HYPERAGENTS_STORAGE_RETRY_SECONDS``, else 30 s.

    Raises:
        StorageURLError: The value is not a finite number >= 0.
    """
    value: Any = given
    if value is None:
        value = os.environ.get(RETRY_ENV_VAR) or DEFAULT_RETRY_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise StorageURLError(f"storage retry time must be a number of seconds >= 0, not {value!r}")
    return seconds


_P = ParamSpec("_P")
_R = TypeVar("_R")
_Method = Callable[Concatenate["RDBStorage", _P], _R]


def _retried(*, idempotent: bool) -> Callable[[_Method[_P, _R]], _Method[_P, _R]]:
    """Retry a storage method on transient errors with a bounded exponential backoff.

    Args:
        idempotent: Applying the method twice is harmless, so it is retried even when a
            COMMIT was cut off (an unknown outcome). Other methods write a receipt in their
            transaction where a COMMIT can be cut off (see :class:`WriteReceiptModel`); after
            an unknown outcome the retry returns the receipt's result if the write committed.
            Such a method returns every value through ``self._done(conn, value)``, inside its
            transaction, so that the receipt holds it.
    """

    def decorate(method: _Method[_P, _R]) -> _Method[_P, _R]:
        def call(self: RDBStorage, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            attempt = functools.partial(method, self, *args, **kwargs)
            receipt = None if idempotent or not self._receipts else uuid.uuid4().hex
            token = _RECEIPT_TOKEN.set(receipt)  # a call nested in this one sets its own
            try:
                return self._retrying(attempt, method.__name__, receipt)
            finally:
                _RECEIPT_TOKEN.reset(token)

        functools.update_wrapper(call, method)
        return call

    return decorate


class RDBStorage(BaseStorage):
    """Storage in a relational database through SQLAlchemy 2 (SQLite, PostgreSQL, …).

    Args:
        url: A SQLAlchemy database URL, e.g. ``sqlite:///hyperagents.db`` or
            ``postgresql://user:password@host:5432/db`` (mapped to the psycopg 3 driver).
        engine_kwargs: Extra keyword arguments for :func:`sqlalchemy.create_engine`.
        retry_seconds: How long a method keeps retrying transient database errors (a dropped
            connection, a restart, a locked database) before it raises :class:`StorageError`;
            ``0`` never retries. Default: ``$HYPERAGENTS_STORAGE_RETRY_SECONDS``, else 30 s.
            Opening the storage is never retried.

    Raises:
        StorageURLError: The URL is malformed or unsupported, its driver is not installed, the
            SQLite directory does not exist, the database cannot be reached, or
            ``retry_seconds`` is negative.
        StorageError: The database schema is newer than this version of hyperagents.

    Example:
        >>> storage = RDBStorage("sqlite://")  # a private in-memory SQLite database
        >>> storage.list_runs()
        []
        >>> storage.close()
    """

    def __init__(
        self,
        url: str,
        *,
        engine_kwargs: Mapping[str, Any] | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        self._url_arg = str(url)
        self._engine_kwargs = dict(engine_kwargs or {})
        self._retry_seconds = _retry_seconds(retry_seconds)
        self._parsed = normalise_url(url)
        self._lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        kwargs: dict[str, Any] = {"json_serializer": dumps_json}
        backend = self._parsed.get_backend_name()
        if backend == "sqlite":
            kwargs["connect_args"] = {"timeout": _SQLITE_BUSY_TIMEOUT_S}
            if not _is_sqlite_memory(self._parsed):
                _create_private_file(str(self._parsed.database))
            if _is_sqlite_memory(self._parsed):
                # One shared connection (each would otherwise get its own empty database);
                # calls are serialised with a lock.
                kwargs["poolclass"] = StaticPool
                kwargs["connect_args"]["check_same_thread"] = False
                self._lock = threading.RLock()
        else:
            kwargs["pool_pre_ping"] = True
        kwargs.update(self._engine_kwargs)
        try:
            engine = create_engine(self._parsed, **kwargs)
        except NoSuchModuleError:
            raise StorageURLError(
                f"unsupported storage URL scheme {self._parsed.drivername!r} in {self}"
            ) from None
        except ImportError as exc:
            hint = " (pip install 'hyperagents[postgres]')" if backend == "postgresql" else ""
            raise StorageURLError(
                f"the database driver for {self._parsed.drivername!r} is not installed{hint}: "
                f"{_first_line(exc)}"
            ) from None
        except (ArgumentError, TypeError, ValueError) as exc:
            raise StorageURLError(f"invalid storage URL {self}: {_first_line(exc)}") from None
        if backend == "sqlite":
            _install_sqlite_hooks(engine, memory=_is_sqlite_memory(self._parsed))
        self._engine = engine
        self._write_engine = engine.execution_options(hyperagents_write=True)
        self._dialect = engine.dialect.name
        self._returning = bool(engine.dialect.update_returning)
        # A failed SQLite COMMIT did not commit: only other databases need receipts.
        self._receipts = self._dialect != "sqlite"
        self._receipts_written = 0
        try:
            self._ensure_schema()
        except (StorageError, DBAPIError, OSError) as exc:
            engine.dispose()
            cause = exc.__cause__ if isinstance(exc, StorageError) else exc
            if isinstance(cause, DBAPIError | OSError):
                raise StorageURLError(f"cannot open storage {self}: {_first_line(cause)}") from None
            raise

    # -- identity ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The URL this storage was opened with (unmasked: it may be given to other processes)."""
        return self._url_arg

    def __str__(self) -> str:
        return self._parsed.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"RDBStorage({str(self)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self._url_arg,
            "engine_kwargs": self._engine_kwargs,
            "retry_seconds": self._retry_seconds,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            engine_kwargs=state["engine_kwargs"],
            retry_seconds=state.get("retry_seconds"),
        )

    def close(self) -> None:
        """Dispose of the engine's connections; the object must not be used afterwards."""
        self._engine.dispose()

    # -- schema -----------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        with self._read() as conn:
            current = _current_revision(conn)
        if current == HEAD_REVISION:
            return
        with self._write() as conn:
            if self._dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            current = _current_revision(conn)
            if current == HEAD_REVISION:
                return
            _run_migrations(conn, current)

    # -- transactions -----------------------------------------------------------------------
    def _retrying(self, attempt: Callable[[], _R], what: str, receipt: str | None) -> _R:
        """Call ``attempt`` until it returns, retrying transient errors for a while.

        Args:
            receipt: The token of the receipt ``attempt`` writes (a write that must apply
                once); after a COMMIT with an unknown outcome the write is applied again only
                when no receipt shows that it committed.

        Raises:
            StorageError: A permanent error, or a transient one that outlasted the retry budget.
        """
        deadline: float | None = None
        delay = _RETRY_FIRST_DELAY
        check_receipt = False
        while True:
            try:
                if check_receipt:
                    found, result = self._receipt(cast(str, receipt))
                    if found:
                        return cast(_R, result)
                    check_receipt = False
                return attempt()
            except _AlreadyApplied:
                check_receipt = True
                continue
            except _TransientError as exc:
                check_receipt = check_receipt or (exc.unknown and receipt is not None)
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._retry_seconds
                if now >= deadline:
                    raise StorageError(
                        f"{exc} (still failing after {self._retry_seconds:g} s of retries)"
                    ) from exc
                pause = min(delay, deadline - now)
                logger.warning("storage %s failed (%s): retrying in %.2f s", what, exc, pause)
                time.sleep(pause)
                delay = min(delay * 2, _RETRY_MAX_DELAY)

    @contextlib.contextmanager
    def _translated(
        self, open_: Callable[[], contextlib.AbstractContextManager[Connection]]
    ) -> Iterator[Connection]:
        """Hold the lock, open a connection with ``open_`` and turn database errors (opening
        included) into StorageError (:class:`_TransientError` for those worth retrying)."""
        stage = "open"
        try:
            with self._lock, open_() as conn:
                stage = "body"
                yield conn
                stage = "commit"
        except (StorageError, IntegrityError):
            raise
        except SQLAlchemyError as exc:
            sqlite = self._dialect == "sqlite"
            if _is_transient(exc, sqlite=sqlite):
                # A SQLite COMMIT that fails did not commit; a PostgreSQL one cut off by a
                # dropped connection may have.
                unknown = stage == "commit" and not sqlite
                raise _TransientError(
                    f"database error: {_first_line(exc)}", unknown=unknown
                ) from exc
            raise _translate(exc) from exc
        except (TypeError, ValueError) as exc:  # raised by a driver's JSON dumper (psycopg)
            raise StorageError(f"value is not JSON-compatible: {exc}") from exc

    def _read(self) -> contextlib.AbstractContextManager[Connection]:
        return self._translated(self._engine.connect)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; for a write-once call it starts by inserting its receipt."""
        with self._translated(self._write_engine.begin) as conn:
            token = _RECEIPT_TOKEN.get()
            if token is not None:
                self._insert_receipt(conn, token)
            yield conn

    def _insert_receipt(self, conn: Connection, token: str) -> None:
        """Insert the receipt ``token``; raise :class:`_AlreadyApplied` if it exists (the
        write committed in an earlier attempt whose COMMIT reply was lost)."""
        now = utcnow()
        try:
            conn.execute(insert(RECEIPTS), {"token": token, "result": None, "created_at": now})
        except IntegrityError:
            raise _AlreadyApplied(token) from None
        self._receipts_written += 1
        if self._receipts_written % _RECEIPT_PRUNE_EVERY == 0:
            conn.execute(delete(RECEIPTS).where(RECEIPTS.c.created_at < now - _RECEIPT_KEEP))

    def _done(self, conn: Connection, result: _R) -> _R:
        """Store ``result`` in the receipt of the write-once call in progress; return it."""
        token = _RECEIPT_TOKEN.get()
        if token is not None:
            conn.execute(update(RECEIPTS).where(RECEIPTS.c.token == token).values(result=result))
        return result

    def _receipt(self, token: str) -> tuple[bool, Any]:
        """Whether the receipt ``token`` exists, and the result it holds."""
        with self._read() as conn:
            stmt = select(RECEIPTS.c.result).where(RECEIPTS.c.token == token)
            row = conn.execute(stmt).first()
        return (row is not None, row[0] if row is not None else None)

    def _insert_event(
        self, conn: Connection, run_id: int, variant_id: int | None, spec: EventSpec | None
    ) -> int:
        if spec is None:
            return 0
        result = conn.execute(
            insert(EVENTS),
            {
                "run_id": run_id,
                "variant_id": variant_id,
                "kind": spec.kind,
                "message": spec.message,
                "data": dict(spec.data) if spec.data is not None else {},
                "created_at": utcnow(),
            },
        )
        return int(cast(Any, result.inserted_primary_key)[0])

    def _run_exists(self, conn: Connection, run_id: int) -> bool:
        return conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is not None

    def _variant_exists(self, conn: Connection, variant_id: int) -> bool:
        stmt = select(VARIANTS.c.id).where(VARIANTS.c.id == variant_id)
        return conn.execute(stmt).first() is not None

    def _program_exists(self, conn: Connection, program_id: str) -> bool:
        stmt = select(PROGRAMS.c.id).where(PROGRAMS.c.id == program_id)
        return conn.execute(stmt).first() is not None

    def _require_run(self, conn: Connection, run_id: int) -> None:
        if not self._run_exists(conn, run_id):
            raise RunNotFoundError(f"run {run_id} not found")

    def _require_variant(self, conn: Connection, variant_id: int) -> None:
        if not self._variant_exists(conn, variant_id):
            raise VariantNotFoundError(f"variant {variant_id} not found")

    def _require_references(self, run_id: int, variant_id: int | None) -> None:
        """After a failed insert: raise the not-found error of a missing run or variant."""
        with self._read() as conn:
            self._require_run(conn, run_id)
            if variant_id is not None:
                self._require_variant(conn, variant_id)

    def _update_variant(
        self, conn: Connection, variant_id: int, stmt: Any, want_run_id: bool
    ) -> tuple[bool, int]:
        """Execute an UPDATE of one variant; return (applied, run_id if asked and applied)."""
        if want_run_id and self._returning:
            row = conn.execute(stmt.returning(VARIANTS.c.run_id)).first()
            return (row is not None, int(row[0]) if row is not None else 0)
        applied = conn.execute(stmt).rowcount > 0
        if applied and want_run_id:
            run_id = conn.execute(
                select(VARIANTS.c.run_id).where(VARIANTS.c.id == variant_id)
            ).scalar_one()
            return True, int(run_id)
        return applied, 0

    # -- runs -------------------------------------------------------------------------------
    @_retried(idempotent=False)
    def create_run(
        self,
        *,
        name: str,
        task: str,
        mode: str,
        seed: int,
        config: Mapping[str, Any],
        seed_program_id: str,
        attrs: Mapping[str, Any] | None = None,
    ) -> int:
        """Create a run in status ``CREATED`` and return its id.

        Raises:
            DuplicateError: A run with this name exists.
            StorageError: ``config`` or ``attrs`` is not JSON-compatible.
        """
        now = utcnow()
        try:
            with self._write() as conn:
                result = conn.execute(
                    insert(RUNS),
                    {
                        "name": name,
                        "task": task,
                        "mode": mode,
                        "seed": int(seed),
                        "config": dict(config),
                        "seed_program_id": seed_program_id,
                        "status": int(RunStatus.CREATED),
                        "attrs": dict(attrs or {}),
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                return self._done(conn, int(cast(Any, result.inserted_primary_key)[0]))
        except IntegrityError:
            raise DuplicateError(f"a run named {name!r} already exists") from None

    @staticmethod
    def _run_record(row: Any) -> RunRecord:
        values = list(row)
        values[7] = _RUN_STATUSES[values[7]]
        return RunRecord(*values)

    @_retried(idempotent=True)
    def get_run(self, run_id: int) -> RunRecord:
        """Return the run.

        Raises:
            RunNotFoundError: No such run.
        """
        with self._read() as conn:
            row = conn.execute(select(*_RUN_COLUMNS).where(RUNS.c.id == run_id)).first()
        if row is None:
            raise RunNotFoundError(f"run {run_id} not found")
        return self._run_record(row)

    @_retried(idempotent=True)
    def get_run_by_name(self, name: str) -> RunRecord:
        """Return the run called ``name``.

        Raises:
            RunNotFoundError: No such run.
        """
        with self._read() as conn:
            row = conn.execute(select(*_RUN_COLUMNS).where(RUNS.c.name == name)).first()
        if row is None:
            raise RunNotFoundError(f"run {name!r} not found")
        return self._run_record(row)

    @_retried(idempotent=True)
    def list_runs(self) -> list[RunRecord]:
        """All runs, ascending id."""
        with self._read() as conn:
            rows = conn.execute(select(*_RUN_COLUMNS).order_by(RUNS.c.id)).all()
        return [self._run_record(row) for row in rows]

    @_retried(idempotent=False)
    def set_run_status(
        self,
        run_id: int,
        status: RunStatus,
        *,
        expected: RunStatus | Iterable[RunStatus] | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the run's status.

        Returns:
            Whether the status was changed.

        Raises:
            RunNotFoundError: No such run.
        """
        stmt = (
            update(RUNS).where(RUNS.c.id == run_id).values(status=int(status), updated_at=utcnow())
        )
        if expected is not None:
            allowed = [int(s) for s in normalise_expected(expected, RunStatus)]
            stmt = stmt.where(RUNS.c.status.in_(allowed))
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)
                return self._done(conn, False)
            self._insert_event(conn, run_id, None, event)
            return self._done(conn, True)

    def _merge_run_json(
        self, run_id: int, column: str, update_with: Mapping[str, Any], *, replace: bool
    ) -> None:
        col = RUNS.c[column]
        with self._write() as conn:
            stmt = select(col).where(RUNS.c.id == run_id)
            if self._dialect != "sqlite":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).first()
            if row is None:
                raise RunNotFoundError(f"run {run_id} not found")
            if replace:
                value = dict(update_with)
            else:
                value = dict(row[0] or {})
                for key, item in update_with.items():
                    if item is None:
                        value.pop(key, None)
                    else:
                        value[key] = item
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values({column: value, "updated_at": utcnow()})
            )

    @_retried(idempotent=True)
    def update_run_attrs(self, run_id: int, attrs: Mapping[str, Any]) -> None:
        """Shallow-merge ``attrs`` into the run's attrs (a value of None deletes the key).

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``attrs`` is not JSON-compatible.
        """
        self._merge_run_json(run_id, "attrs", attrs, replace=False)

    @_retried(idempotent=True)
    def claim_run_engine(self, run_id: int, owner: str, *, expected: str | None) -> bool:
        """Compare-and-set the run's engine in one ``UPDATE`` (claiming again as the holder
        refreshes its heartbeat, which also makes a retried claim safe).

        Returns:
            Whether ``owner`` holds the run now.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``owner`` is empty.
        """
        if not owner:
            raise StorageError("an engine owner token must not be empty")
        now = utcnow()
        was = RUNS.c.engine.is_(None) if expected is None else RUNS.c.engine == expected
        stmt = (
            update(RUNS)
            .where(RUNS.c.id == run_id, or_(RUNS.c.engine == owner, was))
            .values(engine=owner, engine_heartbeat_at=now, updated_at=now)
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)
                return False
            return True

    @_retried(idempotent=True)
    def release_run_engine(
        self,
        run_id: int,
        owner: str,
        *,
        status: RunStatus | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        """Empty the engine slot (setting ``status``, recording ``event``) if ``owner`` holds
        it, in one transaction (a retry finds the slot empty and changes nothing).

        Returns:
            Whether ``owner`` held the run.

        Raises:
            RunNotFoundError: No such run.
        """
        values: dict[str, Any] = {"engine": None, "engine_heartbeat_at": None}
        values["updated_at"] = utcnow()
        if status is not None:
            values["status"] = int(status)
        stmt = update(RUNS).where(RUNS.c.id == run_id, RUNS.c.engine == owner).values(values)
        with self._write() as conn:
            if not owner or conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)
                return False
            self._insert_event(conn, run_id, None, event)
            return True

    @_retried(idempotent=True)
    def update_run_config(self, run_id: int, config: Mapping[str, Any]) -> None:
        """Replace the run's config.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``config`` is not JSON-compatible.
        """
        self._merge_run_json(run_id, "config", config, replace=True)

    @_retried(idempotent=False)
    def delete_run(self, run_id: int) -> None:
        """Delete a run with its variants, evaluations and events (programs stay).

        Raises:
            RunNotFoundError: No such run.
        """
        with self._write() as conn:
            self._require_run(conn, run_id)
            variant_ids = select(VARIANTS.c.id).where(VARIANTS.c.run_id == run_id)
            conn.execute(delete(EVENTS).where(EVENTS.c.run_id == run_id))
            conn.execute(delete(LLM_CALLS).where(LLM_CALLS.c.run_id == run_id))
            conn.execute(delete(EVALUATIONS).where(EVALUATIONS.c.variant_id.in_(variant_ids)))
            conn.execute(delete(VARIANTS).where(VARIANTS.c.run_id == run_id))
            conn.execute(delete(RUNS).where(RUNS.c.id == run_id))

    # -- programs ---------------------------------------------------------------------------
    def _insert_ignoring_duplicates(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]]
    ) -> None:
        if not rows:
            return
        if self._dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
        elif self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
        else:  # other dialects: a concurrent writer makes this fail; put_program retries
            conn.execute(insert(table), rows)

    @_retried(idempotent=True)
    def put_program(self, program: Program) -> str:
        """Store a program (deduplicating blobs and manifests); return its id.

        Raises:
            StorageError: The database failed.
        """
        program_id = program.id
        by_hash: dict[str, bytes] = {}
        for path, digest in program.blobs.items():
            by_hash.setdefault(digest, program[path])
        for attempt in range(3):
            try:
                with self._write() as conn:
                    if self._program_exists(conn, program_id):
                        return program_id
                    hashes = list(by_hash)
                    present: set[str] = set()
                    for i in range(0, len(hashes), _IN_CHUNK):
                        chunk = hashes[i : i + _IN_CHUNK]
                        stmt = select(BLOBS.c.sha256).where(BLOBS.c.sha256.in_(chunk))
                        present.update(conn.execute(stmt).scalars())
                    rows = [
                        {"sha256": h, "size": len(data), "data": data}
                        for h, data in by_hash.items()
                        if h not in present
                    ]
                    self._insert_ignoring_duplicates(conn, BLOBS, rows)
                    self._insert_ignoring_duplicates(
                        conn,
                        PROGRAMS,
                        [{"id": program_id, "manifest": program.manifest, "created_at": utcnow()}],
                    )
                return program_id
            except IntegrityError as exc:
                if attempt == 2:
                    raise StorageError(
                        f"cannot store program {program_id}: {_first_line(exc)}"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @_retried(idempotent=True)
    def get_program(self, program_id: str) -> Program:
        """Return a stored program.

        Raises:
            StorageError: No program with this id is stored, or its blobs are corrupt.
        """
        with self._read() as conn:
            manifest = conn.execute(
                select(PROGRAMS.c.manifest).where(PROGRAMS.c.id == program_id)
            ).scalar()
            if manifest is None:
                raise StorageError(f"program {program_id} not found")
            hashes = sorted(set(manifest.values()))
            blobs: dict[str, bytes] = {}
            for i in range(0, len(hashes), _IN_CHUNK):
                chunk = hashes[i : i + _IN_CHUNK]
                stmt = select(BLOBS.c.sha256, BLOBS.c.data).where(BLOBS.c.sha256.in_(chunk))
                blobs.update((h, bytes(d)) for h, d in conn.execute(stmt))
        try:
            program = Program({path: blobs[digest] for path, digest in manifest.items()})
        except KeyError as exc:
            raise StorageError(f"program {program_id} is missing blob {exc.args[0]}") from None
        if program.id != program_id:
            raise StorageError(f"program {program_id} is corrupt (content hashes to {program.id})")
        return program

    @_retried(idempotent=True)
    def has_program(self, program_id: str) -> bool:
        """Whether a program with this id is stored."""
        with self._read() as conn:
            return self._program_exists(conn, program_id)

    @_retried(idempotent=True)
    def count_blobs(self) -> int:
        """Number of distinct file contents stored."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(BLOBS)).scalar_one())

    # -- variants ---------------------------------------------------------------------------
    @_retried(idempotent=False)
    def create_variant(
        self,
        *,
        run_id: int,
        generation: int,
        parent_id: int | None,
        state: VariantState = VariantState.RUNNING,
        owner: str | None = None,
        program_id: str | None = None,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
    ) -> int:
        """Insert a variant and return its id.

        Raises:
            DuplicateError: The run already has a variant for ``generation``.
            RunNotFoundError: No such run.
            StorageError: ``program_id`` is not stored, or ``meta_info`` is not JSON.
        """
        now = utcnow()
        try:
            with self._write() as conn:
                result = conn.execute(
                    insert(VARIANTS),
                    {
                        "run_id": run_id,
                        "generation": int(generation),
                        "parent_id": parent_id,
                        "program_id": program_id,
                        "state": int(state),
                        "scores": {},
                        "metrics": {},
                        "meta_info": dict(meta_info or {}),
                        "reason": None,
                        "owner": owner,
                        "heartbeat_at": now if owner is not None else None,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                variant_id = int(cast(Any, result.inserted_primary_key)[0])
                self._insert_event(conn, run_id, variant_id, event)
                return self._done(conn, variant_id)
        except IntegrityError:
            with self._read() as conn:
                self._require_run(conn, run_id)
                if program_id is not None and not self._program_exists(conn, program_id):
                    raise StorageError(f"program {program_id} is not stored") from None
            raise DuplicateError(
                f"run {run_id} already has a variant for generation {generation}"
            ) from None

    @staticmethod
    def _variant_records(rows: Sequence[Any]) -> list[VariantRecord]:
        """Build records from rows of ``_VARIANT_SELECT`` (JSON columns as text)."""
        texts: list[str] = []
        for r in rows:
            texts.append(r[6] if r[6] is not None else "{}")
            texts.append(r[7] if r[7] is not None else "{}")
            texts.append(r[8] if r[8] is not None else "{}")
        decoded = json.loads("[" + ",".join(texts) + "]")
        states = _VARIANT_STATES
        return [
            VariantRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                states[r[5]],
                decoded[3 * i],
                decoded[3 * i + 1],
                decoded[3 * i + 2],
                r[9],
                r[10],
                r[11],
                r[12],
                r[13],
            )
            for i, r in enumerate(rows)
        ]

    @_retried(idempotent=True)
    def get_variant(self, variant_id: int) -> VariantRecord:
        """Return the variant.

        Raises:
            VariantNotFoundError: No such variant.
        """
        with self._read() as conn:
            stmt = select(*_VARIANT_SELECT).where(VARIANTS.c.id == variant_id)
            row = conn.execute(stmt).first()
        if row is None:
            raise VariantNotFoundError(f"variant {variant_id} not found")
        return self._variant_records([row])[0]

    @_retried(idempotent=True)
    def get_variant_by_generation(self, run_id: int, generation: int) -> VariantRecord | None:
        """The run's variant for ``generation``, or None.

        Raises:
            RunNotFoundError: No such run.
        """
        with self._read() as conn:
            stmt = select(*_VARIANT_SELECT).where(
                VARIANTS.c.run_id == run_id, VARIANTS.c.generation == generation
            )
            row = conn.execute(stmt).first()
            if row is None:
                self._require_run(conn, run_id)
                return None
        return self._variant_records([row])[0]

    @_retried(idempotent=True)
    def list_variants(
        self,
        run_id: int,
        *,
        states: Iterable[VariantState] | None = None,
    ) -> list[VariantRecord]:
        """The run's variants (optionally only in ``states``), ascending generation.

        Raises:
            RunNotFoundError: No such run.
        """
        stmt = select(*_VARIANT_SELECT).where(VARIANTS.c.run_id == run_id)
        if states is not None:
            stmt = stmt.where(VARIANTS.c.state.in_([int(s) for s in states]))
        stmt = stmt.order_by(VARIANTS.c.generation)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_run(conn, run_id)
                return []
        return self._variant_records(rows)

    @_retried(idempotent=True)
    def count_variants(self, run_id: int) -> int:
        """Number of variants of the run.

        Raises:
            RunNotFoundError: No such run.
        """
        with self._read() as conn:
            stmt = select(func.count()).select_from(VARIANTS).where(VARIANTS.c.run_id == run_id)
            count = int(conn.execute(stmt).scalar_one())
            if count == 0:
                self._require_run(conn, run_id)
        return count

    @_retried(idempotent=False)
    def set_variant_program(
        self,
        variant_id: int,
        program_id: str,
        *,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
    ) -> None:
        """Record the child program and the improver's info.

        Raises:
            VariantNotFoundError: No such variant.
            StorageError: The program is not stored, or ``meta_info`` is not JSON.
        """
        values: dict[str, Any] = {"program_id": program_id, "updated_at": utcnow()}
        if meta_info is not None:
            values["meta_info"] = dict(meta_info)
        stmt = update(VARIANTS).where(VARIANTS.c.id == variant_id).values(values)
        try:
            with self._write() as conn:
                applied, run_id = self._update_variant(conn, variant_id, stmt, event is not None)
                if not applied:
                    raise VariantNotFoundError(f"variant {variant_id} not found")
                self._insert_event(conn, run_id, variant_id, event)
        except IntegrityError:
            raise StorageError(f"program {program_id} is not stored") from None

    @_retried(idempotent=False)
    def set_variant_state(
        self,
        variant_id: int,
        state: VariantState,
        *,
        expected: VariantState | Iterable[VariantState],
        reason: str | None = None,
        release: bool = False,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the variant's state.

        Returns:
            Whether the state was changed.

        Raises:
            VariantNotFoundError: No such variant.
        """
        allowed = [int(s) for s in normalise_expected(expected, VariantState)]
        values: dict[str, Any] = {"state": int(state), "updated_at": utcnow()}
        if reason is not None:
            values["reason"] = reason
        if release:
            values["owner"] = None
        stmt = (
            update(VARIANTS)
            .where(VARIANTS.c.id == variant_id, VARIANTS.c.state.in_(allowed))
            .values(values)
        )
        with self._write() as conn:
            applied, run_id = self._update_variant(conn, variant_id, stmt, event is not None)
            if not applied:
                self._require_variant(conn, variant_id)
                return self._done(conn, False)
            self._insert_event(conn, run_id, variant_id, event)
            return self._done(conn, True)

    @_retried(idempotent=False)
    def claim_variant(
        self,
        variant_id: int,
        owner: str,
        *,
        expected_owner: str | None,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the owner (and stamp ``heartbeat_at``).

        Returns:
            Whether the owner was changed.

        Raises:
            VariantNotFoundError: No such variant.
        """
        now = utcnow()
        condition = (
            VARIANTS.c.owner.is_(None)
            if expected_owner is None
            else VARIANTS.c.owner == expected_owner
        )
        stmt = (
            update(VARIANTS)
            .where(VARIANTS.c.id == variant_id, condition)
            .values(owner=owner, heartbeat_at=now, updated_at=now)
        )
        with self._write() as conn:
            applied, run_id = self._update_variant(conn, variant_id, stmt, event is not None)
            if not applied:
                self._require_variant(conn, variant_id)
                return self._done(conn, False)
            self._insert_event(conn, run_id, variant_id, event)
            return self._done(conn, True)

    @_retried(idempotent=True)
    def heartbeat(self, owner: str, variant_ids: Sequence[int]) -> None:
        """Stamp ``heartbeat_at`` = now on those of ``variant_ids`` still owned by ``owner``."""
        ids = list(variant_ids)
        if not ids:
            return
        now = utcnow()
        with self._write() as conn:
            for i in range(0, len(ids), _IN_CHUNK):
                conn.execute(
                    update(VARIANTS)
                    .where(VARIANTS.c.owner == owner, VARIANTS.c.id.in_(ids[i : i + _IN_CHUNK]))
                    .values(heartbeat_at=now)
                )

    @_retried(idempotent=True)
    def update_variant_metrics(self, variant_id: int, metrics: Mapping[str, Any]) -> None:
        """Shallow-merge ``metrics`` into the variant's metrics.

        Raises:
            VariantNotFoundError: No such variant.
            StorageError: ``metrics`` is not JSON-compatible.
        """
        with self._write() as conn:
            stmt = select(VARIANTS.c.metrics).where(VARIANTS.c.id == variant_id)
            if self._dialect != "sqlite":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).first()
            if row is None:
                raise VariantNotFoundError(f"variant {variant_id} not found")
            merged = {**(row[0] or {}), **metrics}
            conn.execute(
                update(VARIANTS)
                .where(VARIANTS.c.id == variant_id)
                .values(metrics=merged, updated_at=utcnow())
            )

    # -- evaluations ------------------------------------------------------------------------
    @_retried(idempotent=False)
    def add_evaluation(
        self,
        *,
        variant_id: int,
        stage: str,
        split: str,
        score: float,
        n: int,
        results: Sequence[Mapping[str, Any]],
        metrics: Mapping[str, Any],
        event: EventSpec | None = None,
    ) -> int:
        """Insert an evaluation and denormalise its score/metrics on the variant atomically.

        Raises:
            DuplicateError: The variant already has an evaluation for ``stage``.
            VariantNotFoundError: No such variant.
            StorageError: ``score`` is not finite, or ``results``/``metrics`` are not JSON.
        """
        value = check_score(score)
        now = utcnow()
        stage_metrics = dict(metrics)
        try:
            with self._write() as conn:
                stmt = select(VARIANTS.c.run_id, VARIANTS.c.scores, VARIANTS.c.metrics).where(
                    VARIANTS.c.id == variant_id
                )
                if self._dialect != "sqlite":
                    stmt = stmt.with_for_update()
                row = conn.execute(stmt).first()
                if row is None:
                    raise VariantNotFoundError(f"variant {variant_id} not found")
                run_id, scores, variant_metrics = row
                result = conn.execute(
                    insert(EVALUATIONS),
                    {
                        "variant_id": variant_id,
                        "stage": stage,
                        "split": split,
                        "score": value,
                        "n": int(n),
                        "results": [dict(r) for r in results],
                        "metrics": stage_metrics,
                        "created_at": now,
                    },
                )
                evaluation_id = int(cast(Any, result.inserted_primary_key)[0])
                scores = {**(scores or {}), stage: value}
                variant_metrics = dict(variant_metrics or {})
                previous = variant_metrics.get(stage)
                merged = dict(previous) if isinstance(previous, Mapping) else {}
                merged.update(stage_metrics)
                variant_metrics[stage] = merged
                conn.execute(
                    update(VARIANTS)
                    .where(VARIANTS.c.id == variant_id)
                    .values(scores=scores, metrics=variant_metrics, updated_at=now)
                )
                self._insert_event(conn, int(run_id), variant_id, event)
                return self._done(conn, evaluation_id)
        except IntegrityError:
            raise DuplicateError(
                f"variant {variant_id} already has a {stage!r} evaluation"
            ) from None

    @_retried(idempotent=True)
    def list_evaluations(self, variant_id: int) -> list[EvaluationRecord]:
        """The variant's evaluations, ascending id.

        Raises:
            VariantNotFoundError: No such variant.
        """
        with self._read() as conn:
            stmt = (
                select(*_EVALUATION_COLUMNS)
                .where(EVALUATIONS.c.variant_id == variant_id)
                .order_by(EVALUATIONS.c.id)
            )
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_variant(conn, variant_id)
        return [EvaluationRecord(*row) for row in rows]

    # -- events -----------------------------------------------------------------------------
    @_retried(idempotent=False)
    def add_event(
        self,
        run_id: int,
        kind: str,
        message: str = "",
        *,
        variant_id: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an event and return its id.

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: ``variant_id`` is given and no such variant exists.
            StorageError: ``data`` is not JSON-compatible.
        """
        spec = EventSpec(kind=kind, message=message, data=data)
        try:
            with self._write() as conn:
                return self._done(conn, self._insert_event(conn, run_id, variant_id, spec))
        except IntegrityError:
            self._require_references(run_id, variant_id)
            raise StorageError(f"cannot add event to run {run_id}") from None

    @_retried(idempotent=True)
    def list_events(
        self,
        run_id: int,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        kinds: Iterable[str] | None = None,
        variant_id: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[EventRecord]:
        """Events with ``after_id`` < id < ``before_id`` (optionally filtered), at most ``limit``,
        in ascending id order (descending with ``newest_first``: the latest ``limit`` events).

        Raises:
            RunNotFoundError: No such run.
        """
        stmt = select(*_EVENT_COLUMNS).where(EVENTS.c.run_id == run_id, EVENTS.c.id > after_id)
        if kinds is not None:
            stmt = stmt.where(EVENTS.c.kind.in_(list(kinds)))
        if variant_id is not None:
            stmt = stmt.where(EVENTS.c.variant_id == variant_id)
        if before_id is not None:
            stmt = stmt.where(EVENTS.c.id < before_id)
        stmt = stmt.order_by(EVENTS.c.id.desc() if newest_first else EVENTS.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_run(conn, run_id)
        return [EventRecord(*row) for row in rows]

    # -- LLM calls ----------------------------------------------------------------------------
    @_retried(idempotent=False)
    def add_llm_call(
        self,
        run_id: int,
        *,
        key: str,
        provider: str,
        model: str,
        request: Mapping[str, Any],
        reply: str | None = None,
        error: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        latency: float = 0.0,
        cached: bool = False,
        attempt: int = 1,
        purpose: str = "",
        variant_id: int | None = None,
    ) -> int:
        """Record one LLM call and return its id.

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: ``variant_id`` is given and no such variant exists.
            StorageError: ``request`` is not JSON-compatible.
        """
        row = {
            "run_id": run_id,
            "variant_id": variant_id,
            "key": key,
            "provider": provider,
            "model": model,
            "purpose": purpose,
            "attempt": int(attempt),
            "cached": bool(cached),
            "request": json_copy(dict(request), "request"),
            "reply": reply,
            "error": error,
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "cost": float(cost),
            "latency": float(latency),
            "created_at": utcnow(),
        }
        try:
            with self._write() as conn:
                inserted = conn.execute(insert(LLM_CALLS), row).inserted_primary_key
                assert inserted is not None
                return self._done(conn, int(inserted[0]))
        except IntegrityError:
            self._require_references(run_id, variant_id)
            raise StorageError(f"cannot record an LLM call for run {run_id}") from None

    @_retried(idempotent=True)
    def list_llm_calls(
        self,
        run_id: int,
        *,
        variant_id: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[LLMCallRecord]:
        """The run's LLM calls with id > ``after_id`` (optionally of one variant), ascending id.

        Raises:
            RunNotFoundError: No such run.
        """
        stmt = select(*_LLM_CALL_COLUMNS).where(
            LLM_CALLS.c.run_id == run_id, LLM_CALLS.c.id > after_id
        )
        if variant_id is not None:
            stmt = stmt.where(LLM_CALLS.c.variant_id == variant_id)
        stmt = stmt.order_by(LLM_CALLS.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_run(conn, run_id)
        return [LLMCallRecord(*row) for row in rows]

    @_retried(idempotent=True)
    def llm_usage(self, run_id: int, *, variant_id: int | None = None) -> dict[str, Any]:
        """Totals of the run's (or one variant's) LLM calls, summed by the database.

        Raises:
            RunNotFoundError: No such run.
        """
        c = LLM_CALLS.c
        ok = c.error.is_(None)
        paid = and_(ok, c.cached.is_(False))

        def total(column: Any, where: Any) -> Any:
            return func.coalesce(func.sum(case((where, column), else_=0)), 0)

        stmt = select(
            total(1, ok),
            total(1, and_(ok, c.cached.is_(True))),
            total(1, c.error.is_not(None)),
            total(c.prompt_tokens, paid),
            total(c.completion_tokens, paid),
            total(c.cost, paid),
        ).where(c.run_id == run_id)
        if variant_id is not None:
            stmt = stmt.where(c.variant_id == variant_id)
        with self._read() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(stmt).one()
        calls, cached, errors, prompt, completion, cost = row
        return {
            "calls": int(calls),
            "cached": int(cached),
            "errors": int(errors),
            "prompt_tokens": int(prompt),
            "completion_tokens": int(completion),
            "cost": float(cost),
        }


# -- module helpers -----------------------------------------------------------------------------
def _translate(exc: SQLAlchemyError) -> StorageError:
    """Turn a SQLAlchemy error into a one-line :class:`StorageError`."""
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        orig = exc.orig
        if isinstance(orig, (TypeError, ValueError)):
            return StorageError(f"value is not JSON-compatible: {orig}")
    return StorageError(f"database error: {_first_line(exc)}")


def _enable_wal(cursor: Any) -> None:
    """Switch the database to WAL. Several processes opening a new file at once can get
    SQLITE_BUSY here without SQLite waiting on its busy handler: retry for a while."""
    import sqlite3

    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _install_sqlite_hooks(engine: Engine, *, memory: bool) -> None:
    """Set the SQLite pragmas on every connection and take control of transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below emit BEGIN itself (pysqlite's implicit
        # transactions start too late for read-modify-write and cannot be IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("hyperagents_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _current_revision(conn: Connection) -> str | None:
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def _run_migrations(conn: Connection, current: str | None) -> None:
    """Upgrade the schema to the newest revision on ``conn`` (inside its transaction).

    Raises:
        StorageError: The database is at a revision this version does not know (newer).
    """
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR).replace("%", "%%"))
    config.attributes["connection"] = conn
    if current is not None:
        known = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
        if current not in known:
            raise StorageError(
                f"the database schema is at revision {current!r}, which this version of "
                "hyperagents does not know (created by a newer version?)"
            )
    command.upgrade(config, "head")

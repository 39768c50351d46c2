"""The transactions of :class:`RDBStorage`: the tables, one short transaction per method,
retries of transient errors, and the receipts that make a write apply once.

Every storage method runs in :meth:`RDBCore._read` or :meth:`RDBCore._write` and is wrapped in
:func:`retried`. Transient errors (a dropped connection, a database restarting, SQLite's
"database is locked") are retried with a bounded exponential backoff. A failed transaction is
rolled back, so retrying it applies it once. Only when a COMMIT itself was cut off
(PostgreSQL) is the outcome unknown: then a method that is harmless to apply twice is simply
retried, and any other looks first for the receipt its transaction wrote.

:meth:`RDBCore.atomically` runs a function's calls in one transaction (one connection, held
with the lock by the thread that opened it), retried as a whole, with one receipt for all of
it. Inside it the methods use its connection (on PostgreSQL each write in a savepoint of its
own, so that a failed statement leaves the transaction usable for the method's diagnosis) and
neither retry nor write receipts of their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    delete,
    select,
    update,
)
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)

from hyperagents.exceptions import (
    RunNotFoundError,
    StorageError,
    StorageURLError,
    VariantNotFoundError,
)
from hyperagents.storages._base import BaseStorage
from hyperagents.storages._common import utcnow
from hyperagents.storages._rdb._artifacts import ArtifactStore
from hyperagents.storages._rdb._connect import first_line
from hyperagents.storages._rdb._packing import JSONTexts
from hyperagents.storages._rdb._statements import (
    INSERT_EVENT,
    INSERT_RECEIPT,
    PROGRAM_EXISTS,
    RUN_EXISTS,
    VARIANT_EXISTS,
    insert_ignoring,
)
from hyperagents.storages._rdb.models import (
    BannedVariantModel,
    BlobModel,
    CheckpointModel,
    EvaluationModel,
    EventModel,
    LLMCallModel,
    ProgramModel,
    RunEngineModel,
    RunModel,
    ServiceEventModel,
    ServiceModel,
    ServiceRequestModel,
    VariantModel,
    WriteReceiptModel,
)
from hyperagents.storages._records import EventSpec

__all__ = [
    "BANNED",
    "BLOBS",
    "CHECKPOINTS",
    "DEFAULT_RETRY_SECONDS",
    "EVALUATIONS",
    "EVENTS",
    "IN_CHUNK",
    "LLM_CALLS",
    "PROGRAMS",
    "RETRY_ENV_VAR",
    "RUNS",
    "RUN_ENGINES",
    "SERVICES",
    "SERVICE_EVENTS",
    "SERVICE_REQUESTS",
    "VARIANTS",
    "RDBCore",
    "retried",
    "retry_seconds",
]

logger = logging.getLogger("hyperagents")

#: Seconds a storage method keeps retrying transient database errors, by default.
DEFAULT_RETRY_SECONDS = 30.0
#: Environment variable overriding :data:`DEFAULT_RETRY_SECONDS` (``0``: no retries).
RETRY_ENV_VAR = "HYPERAGENTS_STORAGE_RETRY_SECONDS"
_RETRY_FIRST_DELAY = 0.05
_RETRY_MAX_DELAY = 4.0
IN_CHUNK = 500  # ids/hashes per IN (...) clause

RUNS = cast(Table, RunModel.__table__)
BANNED = cast(Table, BannedVariantModel.__table__)
BLOBS = cast(Table, BlobModel.__table__)
PROGRAMS = cast(Table, ProgramModel.__table__)
VARIANTS = cast(Table, VariantModel.__table__)
EVALUATIONS = cast(Table, EvaluationModel.__table__)
EVENTS = cast(Table, EventModel.__table__)
LLM_CALLS = cast(Table, LLMCallModel.__table__)
RECEIPTS = cast(Table, WriteReceiptModel.__table__)
RUN_ENGINES = cast(Table, RunEngineModel.__table__)
CHECKPOINTS = cast(Table, CheckpointModel.__table__)
SERVICES = cast(Table, ServiceModel.__table__)
SERVICE_REQUESTS = cast(Table, ServiceRequestModel.__table__)
SERVICE_EVENTS = cast(Table, ServiceEventModel.__table__)
#: Receipts older than this are deleted (a receipt is needed only while its call retries).
_RECEIPT_KEEP = timedelta(days=1)
#: Old receipts are pruned once every this many receipts written by one storage object.
_RECEIPT_PRUNE_EVERY = 1000
#: The receipt token of the write-once call in progress in this thread (None: no receipt).
_RECEIPT_TOKEN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hyperagents_receipt", default=None
)


class _Level:
    """One level of an :meth:`RDBCore.atomically` call in progress in a thread: the outermost
    transaction, or a savepoint in it.

    Attributes:
        conn: The transaction's connection.
        spoiled: The error of a storage call made at this level (the level cannot commit).
        after: What to do once the outermost transaction has ended, committed or rolled back
            (see :meth:`RDBCore._when_done`; kept by the outermost level only).
    """

    __slots__ = ("after", "conn", "spoiled")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.spoiled: BaseException | None = None
        self.after: list[Callable[[], None]] = []

    def check(self) -> None:
        """Raise if a storage call at this level failed.

        Raises:
            StorageError: A call failed (:class:`_TransientError` for a transient error, so
                that the outermost transaction is tried again).
        """
        spoiled = self.spoiled
        if spoiled is None:
            return
        what = f"an earlier storage call in this transaction failed: {first_line(spoiled)}"
        if isinstance(spoiled, _TransientError):
            raise _TransientError(what, unknown=False) from spoiled
        raise StorageError(what) from spoiled


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


def retry_seconds(given: float | None) -> float:
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


_S = TypeVar("_S", bound="RDBCore")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def retried(
    *, idempotent: bool
) -> Callable[[Callable[Concatenate[_S, _P], _R]], Callable[Concatenate[_S, _P], _R]]:
    """Retry a storage method on transient errors with a bounded exponential backoff.

    Args:
        idempotent: Applying the method twice is harmless, so it is retried even when a
            COMMIT was cut off (an unknown outcome). Other methods write a receipt in their
            transaction where a COMMIT can be cut off (see :class:`WriteReceiptModel`); after
            an unknown outcome the retry returns the receipt's result if the write committed.
            Such a method returns every value through ``self._done(conn, value)``, inside its
            transaction, so that the receipt holds it.
    """

    def decorate(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
        def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            attempt = functools.partial(method, self, *args, **kwargs)
            levels = self._levels()
            if levels:  # inside atomically(): retried (and receipted) as a whole
                return _at_level(levels[-1], attempt)
            receipt = None if idempotent or not self._receipts else uuid.uuid4().hex
            token = _RECEIPT_TOKEN.set(receipt)  # a call nested in this one sets its own
            try:
                return self._retrying(attempt, method.__name__, receipt)
            finally:
                _RECEIPT_TOKEN.reset(token)

        functools.update_wrapper(call, method)
        return call

    return decorate


def _at_level(level: _Level, attempt: Callable[[], _R]) -> _R:
    """Make a storage call inside an ``atomically`` level; an error spoils the level."""
    level.check()
    try:
        return attempt()
    except BaseException as exc:
        level.spoiled = exc
        raise


@contextlib.contextmanager
def _savepoint(conn: Connection) -> Iterator[Connection]:
    """A savepoint of ``conn``'s transaction: released on success, rolled back on an error."""
    with conn.begin_nested():
        yield conn


def _run_after(actions: list[Callable[[], None]]) -> None:
    """Call the actions deferred until a transaction ended, logging (not raising) errors."""
    for action in actions:
        try:
            action()
        except Exception as exc:  # the transaction's outcome stands; the action is a cleanup
            logger.warning("storage cleanup after a transaction failed: %s", first_line(exc))


def _translate(exc: SQLAlchemyError) -> StorageError:
    """Turn a SQLAlchemy error into a one-line :class:`StorageError`."""
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        orig = exc.orig
        if isinstance(orig, (TypeError, ValueError)):
            return StorageError(f"value is not JSON-compatible: {orig}")
    return StorageError(f"database error: {first_line(exc)}")


class RDBCore(BaseStorage):
    """What every part of :class:`RDBStorage` shares: its engines, its transactions, the
    receipts of its write-once calls, and checks that records exist."""

    _engine: Engine
    _write_engine: Engine
    _dialect: str
    #: Decoded texts of packed JSON values read again and again (see ``_packing``).
    _texts: JSONTexts
    _returning: bool
    _lock: contextlib.AbstractContextManager[Any]
    _retry_seconds: float
    _receipts: bool
    _receipts_written: int
    #: Per thread: ``levels``, the ``atomically`` calls in progress (outermost first).
    _blocks: threading.local
    #: Where artifacts go (None: they stay in their rows, e.g. an in-memory SQLite database).
    _artifacts: ArtifactStore | None

    def _levels(self) -> list[_Level]:
        """The ``atomically`` calls in progress in this thread (empty: none)."""
        try:
            levels: list[_Level] = self._blocks.levels
        except AttributeError:
            levels = self._blocks.levels = []
        return levels

    def _retrying(
        self,
        attempt: Callable[[], _R],
        what: str,
        receipt: str | None,
        answer: Callable[[], _R] | None = None,
    ) -> _R:
        """Call ``attempt`` until it returns, retrying transient errors for a while.

        Args:
            receipt: The token of the receipt ``attempt`` writes (a write that must apply
                once); after a COMMIT with an unknown outcome the write is applied again only
                when no receipt shows that it committed.
            answer: What to return when the receipt shows that an attempt committed (default:
                the result the receipt holds).

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
                        return answer() if answer is not None else cast(_R, result)
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

    def _db_error(self, exc: SQLAlchemyError, *, commit: bool) -> StorageError:
        """The StorageError of a database error (:class:`_TransientError` for one worth
        retrying; ``commit``: it cut off a COMMIT)."""
        sqlite = self._dialect == "sqlite"
        if _is_transient(exc, sqlite=sqlite):
            # A SQLite COMMIT that fails did not commit; a PostgreSQL one cut off by a dropped
            # connection may have.
            unknown = commit and not sqlite
            return _TransientError(f"database error: {first_line(exc)}", unknown=unknown)
        return _translate(exc)

    @contextlib.contextmanager
    def _translated(
        self,
        open_: Callable[[], contextlib.AbstractContextManager[Connection]],
        *,
        commits: bool = True,
    ) -> Iterator[Connection]:
        """Hold the lock, open a connection with ``open_`` and turn database errors (opening
        included) into StorageError (:class:`_TransientError` for those worth retrying;
        ``commits``: leaving ``open_`` commits a transaction)."""
        stage = "open"
        try:
            with self._lock, open_() as conn:
                stage = "body"
                yield conn
                stage = "commit"
        except (StorageError, IntegrityError):
            raise
        except SQLAlchemyError as exc:
            raise self._db_error(exc, commit=commits and stage == "commit") from exc
        except (TypeError, ValueError) as exc:  # raised by a driver's JSON dumper (psycopg)
            raise StorageError(f"value is not JSON-compatible: {exc}") from exc

    def _read(self) -> contextlib.AbstractContextManager[Connection]:
        levels = self._levels()
        if levels:  # inside atomically(): its transaction
            conn = levels[-1].conn
            return self._translated(lambda: contextlib.nullcontext(conn), commits=False)
        return self._translated(self._engine.connect)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; for a write-once call it starts by inserting its receipt.
        Inside ``atomically`` it is the block's transaction (on PostgreSQL, a savepoint: a
        failed statement would otherwise abort the whole transaction)."""
        levels = self._levels()
        if levels:
            conn = levels[-1].conn
            if self._dialect == "postgresql":
                opened = self._translated(lambda: _savepoint(conn), commits=False)
            else:
                opened = self._translated(lambda: contextlib.nullcontext(conn), commits=False)
            with opened as inner:
                yield inner
            return
        with self._translated(self._write_engine.begin) as conn:
            token = _RECEIPT_TOKEN.get()
            if token is not None:
                self._insert_receipt(conn, token)
            yield conn

    # -- atomically -------------------------------------------------------------------------
    def atomically(self, fn: Callable[[], _R]) -> _R:
        levels = self._levels()
        if levels:
            return self._nested(levels, fn)
        receipt = uuid.uuid4().hex if self._receipts else None
        # What fn returned in the last attempt that wrote the receipt: the one that committed,
        # if the receipt shows that one did.
        held: list[_R] = []

        def attempt() -> _R:
            with self._transaction(levels) as level:
                if receipt is not None:
                    self._insert_receipt(level.conn, receipt)
                    held.clear()
                token = _RECEIPT_TOKEN.set(None)  # the calls inside write no receipts
                try:
                    result = fn()
                finally:
                    _RECEIPT_TOKEN.reset(token)
                level.check()
                held.append(result)
            return result

        def committed() -> _R:
            if not held:  # pragma: no cover - a receipt is only found after an attempt wrote it
                raise StorageError("a transaction committed, but its result was lost")
            return held[-1]

        return self._retrying(attempt, "atomically", receipt, committed)

    def _when_done(self, action: Callable[[], None]) -> None:
        """Call ``action`` once the transaction in progress has ended, whether it committed
        or rolled back: inside ``atomically``, after its outermost transaction (a retried
        attempt's actions run after that attempt), without the lock; outside it, now (call
        it after the method's own transaction). ``action`` must look at what was committed
        and act on that (e.g. delete files no row names), so that it is right either way.
        Its errors are logged, never raised: the transaction's outcome stands."""
        levels = self._levels()
        if levels:
            levels[0].after.append(action)
        else:
            _run_after([action])

    @contextlib.contextmanager
    def _transaction(self, levels: list[_Level]) -> Iterator[_Level]:
        """The outermost level of ``atomically``: a write transaction on a connection of its
        own, with the lock held, committed when the body returns, rolled back if it raises;
        then, without the lock, the actions :meth:`_when_done` deferred."""
        after: list[Callable[[], None]] = []
        try:
            with self._body(levels, after) as level:
                yield level
        finally:
            _run_after(after)

    @contextlib.contextmanager
    def _body(self, levels: list[_Level], after: list[Callable[[], None]]) -> Iterator[_Level]:
        """The transaction of :meth:`_transaction`, its level's deferred actions in ``after``."""
        with self._lock:
            try:
                conn = self._write_engine.connect()
                conn.begin()  # SQLite: BEGIN IMMEDIATE (the write lock, taken now)
            except SQLAlchemyError as exc:
                raise self._db_error(exc, commit=False) from exc
            try:
                level = _Level(conn)
                levels.append(level)
                try:
                    yield level
                finally:
                    levels.pop()
                    after.extend(level.after)
                try:
                    conn.commit()
                except SQLAlchemyError as exc:
                    raise self._db_error(exc, commit=True) from exc
            finally:
                with contextlib.suppress(SQLAlchemyError):
                    conn.close()  # rolls back what was not committed

    def _nested(self, levels: list[_Level], fn: Callable[[], _R]) -> _R:
        """``atomically`` inside another: ``fn`` in a savepoint of the enclosing transaction."""
        outer = levels[-1]
        outer.check()
        try:
            savepoint = outer.conn.begin_nested()
        except SQLAlchemyError as exc:
            outer.spoiled = self._db_error(exc, commit=False)
            raise outer.spoiled from exc
        level = _Level(outer.conn)
        levels.append(level)
        try:
            result = fn()
            level.check()
        except BaseException as exc:
            levels.pop()
            try:
                savepoint.rollback()
            except SQLAlchemyError as rollback_error:
                outer.spoiled = self._db_error(rollback_error, commit=False)
            if isinstance(exc, _TransientError):  # the whole transaction is tried again
                outer.spoiled = exc
            raise
        levels.pop()
        try:
            savepoint.commit()
        except SQLAlchemyError as exc:
            outer.spoiled = self._db_error(exc, commit=False)
            raise outer.spoiled from exc
        return result

    def _insert_receipt(self, conn: Connection, token: str) -> None:
        """Insert the receipt ``token``; raise :class:`_AlreadyApplied` if it exists (the
        write committed in an earlier attempt whose COMMIT reply was lost)."""
        now = utcnow()
        try:
            conn.execute(INSERT_RECEIPT, {"token": token, "result": None, "created_at": now})
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
        result = conn.execute(INSERT_EVENT, _event_row(run_id, variant_id, spec, utcnow()))
        return int(cast(Any, result.inserted_primary_key)[0])

    def _insert_events(
        self,
        conn: Connection,
        run_id: int,
        variant_id: int | None,
        specs: Sequence[EventSpec | None],
    ) -> None:
        """Insert the given events (None: none) in their order, in one statement."""
        now = utcnow()
        rows = [_event_row(run_id, variant_id, spec, now) for spec in specs if spec is not None]
        if rows:
            conn.execute(INSERT_EVENT, rows)

    def _run_exists(self, conn: Connection, run_id: int) -> bool:
        return conn.execute(RUN_EXISTS, {"key": run_id}).first() is not None

    def _variant_exists(self, conn: Connection, variant_id: int) -> bool:
        return conn.execute(VARIANT_EXISTS, {"key": variant_id}).first() is not None

    def _program_exists(self, conn: Connection, program_id: str) -> bool:
        return conn.execute(PROGRAM_EXISTS, {"key": program_id}).first() is not None

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

    def _insert_ignoring_duplicates(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]]
    ) -> None:
        if rows:
            conn.execute(insert_ignoring(self._dialect, table), rows)


def _event_row(
    run_id: int, variant_id: int | None, spec: EventSpec, now: datetime
) -> dict[str, Any]:
    """The ``events`` row of ``spec`` (the parameters of ``INSERT_EVENT``)."""
    return {
        "run_id": run_id,
        "variant_id": variant_id,
        "kind": spec.kind,
        "message": spec.message,
        "data": dict(spec.data) if spec.data is not None else {},
        "created_at": now,
    }

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
  programs, engine claims by the same owner) are retried; the others write a receipt in their
  transaction and their retry looks for it first.
* :meth:`atomically` runs a function's calls in one transaction on one connection, taken by the
  calling thread with ``BEGIN IMMEDIATE`` on SQLite (other writers wait until it commits);
  it is retried as a whole on transient errors and, where receipts are needed, writes one
  receipt for all its calls. A nested call is a ``SAVEPOINT``.
* Artifacts (large program files, a model's weights) are kept outside the ``blobs`` rows: in a
  content-addressed folder beside a SQLite file (``<database>.artifacts/``), in large objects
  on PostgreSQL; see :mod:`._artifacts`. Training checkpoints (one row of ``checkpoints`` per
  variant) keep their bytes in the same stores, replaced atomically; see :mod:`._checkpoints`.
* A run's typed state is columns of ``runs`` (the generation target, the time spent, the
  pinned parent) and the rows of ``banned_variants``, changed by single ``UPDATE`` or
  ``INSERT`` statements; ``attrs`` is a JSON column merged under a row lock.

The class is put together from one part per job: :mod:`._runs`, :mod:`._programs`,
:mod:`._variants` (with evaluations), :mod:`._events` (with LLM calls), :mod:`._engines`
(the engine processes of a run), :mod:`._services` (services, their requests and logs),
:mod:`._checkpoints` (training checkpoints), over
:mod:`._transactions` (transactions, retries, receipts) and :mod:`._connect` (URLs, SQLite
settings, migrations). The contract and its docstrings are :class:`BaseStorage`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from hyperagents.exceptions import StorageError, StorageURLError
from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._artifacts import artifact_store, sqlite_side_folder
from hyperagents.storages._rdb._checkpoints import CheckpointMethods
from hyperagents.storages._rdb._connect import (
    ALEMBIC_DIR,
    HEAD_REVISION,
    MIGRATION_LOCK_KEY,
    SQLITE_BUSY_TIMEOUT_S,
    create_private_file,
    current_revision,
    first_line,
    install_sqlite_hooks,
    is_sqlite_memory,
    normalise_url,
    run_migrations,
)
from hyperagents.storages._rdb._engines import EngineMethods
from hyperagents.storages._rdb._events import EventMethods
from hyperagents.storages._rdb._manifests import BaseManifests
from hyperagents.storages._rdb._packing import JSONTexts
from hyperagents.storages._rdb._programs import BaseFiles, ProgramMethods
from hyperagents.storages._rdb._runs import RunMethods
from hyperagents.storages._rdb._services import ServiceMethods
from hyperagents.storages._rdb._transactions import (
    DEFAULT_RETRY_SECONDS,
    RETRY_ENV_VAR,
)
from hyperagents.storages._rdb._transactions import (
    retry_seconds as retry_seconds_of,
)
from hyperagents.storages._rdb._variants import VariantMethods

__all__ = [
    "ALEMBIC_DIR",
    "DEFAULT_RETRY_SECONDS",
    "HEAD_REVISION",
    "RETRY_ENV_VAR",
    "RDBStorage",
    "normalise_url",
]


def _make_engine(
    parsed: URL, engine_kwargs: Mapping[str, Any], shown: str
) -> tuple[Engine, contextlib.AbstractContextManager[Any]]:
    """The SQLAlchemy engine of a storage URL, and the lock its calls need (a private
    in-memory SQLite database has one shared connection: calls are serialised).

    Raises:
        StorageURLError: The scheme is unsupported, its driver is not installed, or the URL is
            invalid.
    """
    lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    kwargs: dict[str, Any] = {"json_serializer": dumps_json}
    backend = parsed.get_backend_name()
    memory = is_sqlite_memory(parsed)
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        if memory:
            # One shared connection (each would otherwise get its own empty database).
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
            lock = threading.RLock()
        else:
            create_private_file(str(parsed.database))
    else:
        kwargs["pool_pre_ping"] = True
    kwargs.update(engine_kwargs)
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise StorageURLError(
            f"unsupported storage URL scheme {parsed.drivername!r} in {shown}"
        ) from None
    except ImportError as exc:
        hint = " (pip install 'hyperagents[postgres]')" if backend == "postgresql" else ""
        raise StorageURLError(
            f"the database driver for {parsed.drivername!r} is not installed{hint}: "
            f"{first_line(exc)}"
        ) from None
    except (ArgumentError, TypeError, ValueError) as exc:
        raise StorageURLError(f"invalid storage URL {shown}: {first_line(exc)}") from None
    if backend == "sqlite":
        install_sqlite_hooks(engine, memory=memory)
    return engine, lock


class RDBStorage(
    RunMethods,
    ProgramMethods,
    VariantMethods,
    EventMethods,
    EngineMethods,
    ServiceMethods,
    CheckpointMethods,
):
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
        self._retry_seconds = retry_seconds_of(retry_seconds)
        self._parsed = normalise_url(url)
        engine, self._lock = _make_engine(self._parsed, self._engine_kwargs, str(self))
        self._engine = engine
        self._write_engine = engine.execution_options(hyperagents_write=True)
        self._dialect = engine.dialect.name
        self._returning = bool(engine.dialect.update_returning)
        # A failed SQLite COMMIT did not commit: only other databases need receipts.
        self._receipts = self._dialect != "sqlite"
        self._receipts_written = 0
        self._blocks = threading.local()
        self._texts = JSONTexts()
        self._bases = BaseFiles()
        self._manifest_bases = BaseManifests()
        self._artifacts = artifact_store(self._parsed, self._dialect)
        try:
            self._ensure_schema()
        except (StorageError, DBAPIError, OSError) as exc:
            engine.dispose()
            cause = exc.__cause__ if isinstance(exc, StorageError) else exc
            if isinstance(cause, DBAPIError | OSError):
                raise StorageURLError(f"cannot open storage {self}: {first_line(cause)}") from None
            raise

    # -- identity ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The URL this storage was opened with (unmasked: it may be given to other processes)."""
        return self._url_arg

    def local_folder(self, name: str) -> Path | None:
        if self._dialect == "sqlite":
            return sqlite_side_folder(self._parsed, name)
        where = self._parsed.render_as_string(hide_password=True).encode("utf-8")
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        key = hashlib.sha256(where).hexdigest()[:16]
        return Path(cache) / "hyperagents" / name / key

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
        self._engine.dispose()

    # -- schema -----------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        with self._read() as conn:
            current = current_revision(conn)
        if current == HEAD_REVISION:
            return
        with self._write() as conn:
            if self._dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            current = current_revision(conn)
            if current == HEAD_REVISION:
                return
            run_migrations(conn, current)

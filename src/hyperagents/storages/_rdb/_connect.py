"""Opening a database: storage URLs, SQLite's connection settings, schema migrations."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from hyperagents.exceptions import StorageError, StorageURLError

__all__ = [
    "ALEMBIC_DIR",
    "HEAD_REVISION",
    "MIGRATION_LOCK_KEY",
    "SQLITE_BUSY_TIMEOUT_S",
    "create_private_file",
    "current_revision",
    "first_line",
    "install_sqlite_hooks",
    "is_sqlite_memory",
    "normalise_url",
    "run_migrations",
]

#: The newest migration shipped with this version (a test checks it against the scripts).
HEAD_REVISION = "0012_checkpoints"
#: Folder of the Alembic environment (``env.py``, ``versions/``) inside the installed package.
ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
#: Key of the PostgreSQL advisory lock held while migrating (any constant shared by processes).
MIGRATION_LOCK_KEY = 0x6879_7065_7261_6700 >> 8
#: Seconds SQLite waits for a lock held by another connection.
SQLITE_BUSY_TIMEOUT_S = 30.0


def first_line(exc: BaseException) -> str:
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


def create_private_file(path: str) -> None:
    """Create a new SQLite file readable by its owner only (it holds labels and scores);
    SQLite gives its -wal and -shm files the same permissions. Existing files are left as
    they are."""
    if path.startswith("file:") or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _enable_wal(cursor: Any) -> None:
    """Switch the database to WAL. Several processes opening a new file at once can get
    SQLITE_BUSY here without SQLite waiting on its busy handler: retry for a while."""
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
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


def install_sqlite_hooks(engine: Engine, *, memory: bool) -> None:
    """Set the SQLite pragmas on every connection and take control of transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below emit BEGIN itself (pysqlite's implicit
        # transactions start too late for read-modify-write and cannot be IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
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


def current_revision(conn: Connection) -> str | None:
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def run_migrations(conn: Connection, current: str | None) -> None:
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

"""Helpers of the PostgreSQL tests: fresh databases on the test server (not a pytest module).

The server is named by ``HYPERAGENTS_TEST_POSTGRES_URL`` (``.ci/start_postgres.sh`` prints one);
without it the tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

POSTGRES_ENV = "HYPERAGENTS_TEST_POSTGRES_URL"


def postgres_admin_url() -> str:
    """The URL of the test server; skip (or fail when ``CI=true``) if it is not configured."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = (
            f"{POSTGRES_ENV} is not set "
            f"(run: export {POSTGRES_ENV}=$(.ci/start_postgres.sh | tail -n1))"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL tests must run on CI: {message}")
        pytest.skip(message)
    return url


@contextlib.contextmanager
def fresh_database_url(kind: str, folder: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file in ``folder`` (``kind`` ``sqlite``), or a new
    database on the PostgreSQL test server (any other kind; dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'runs.db'}"
        return
    with postgres_databases() as make:
        yield make()


@contextlib.contextmanager
def postgres_databases() -> Iterator[Callable[[], str]]:
    """A factory of URLs to new, empty databases on the test server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from hyperagents.storages._rdb import normalise_url

    admin_url = postgres_admin_url()
    engine = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"hyperagents_t_{uuid.uuid4().hex[:16]}"
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
        with engine.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def admin_sql(sql: str, **params: Any) -> None:
    """Run ``sql`` on the test server's maintenance database (autocommit)."""
    from sqlalchemy import create_engine, text

    from hyperagents.storages._rdb import normalise_url

    engine = create_engine(normalise_url(postgres_admin_url()), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def blip_database(
    url: str,
    seconds: float,
    *,
    refusing: threading.Event | None = None,
    reopening: threading.Event | None = None,
) -> None:
    """What a restart looks like to the clients of one database: its connections are
    terminated and new ones refused for ``seconds`` (other databases of the shared test
    server are left alone).

    ``refusing`` is set once the connections are gone and new ones refused; ``reopening``
    just before the database takes connections again (so a client that got one saw it set).
    """
    from hyperagents.storages._rdb import normalise_url

    name = normalise_url(url).database
    admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        admin_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()",
            name=name,
        )
        if refusing is not None:
            refusing.set()
        time.sleep(seconds)
    finally:
        if reopening is not None:
            reopening.set()
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def count_large_objects(storage: Any) -> int:
    """How many large objects the database of ``storage`` (an RDBStorage) holds."""
    from sqlalchemy import text

    with storage._engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM pg_largeobject_metadata")).scalar_one())

"""Fixtures for the storage tests: fresh PostgreSQL databases on the test server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

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


@pytest.fixture
def postgres_database() -> Iterator[Callable[[], str]]:
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


@pytest.fixture
def fresh_postgres_url(postgres_database: Callable[[], str]) -> str:
    """A URL to a new, empty database on the test server (dropped after the test)."""
    return postgres_database()

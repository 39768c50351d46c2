"""Fixtures for the storage tests: fresh PostgreSQL databases on the test server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hyperagents.storages import RDBStorage
from postgres_helpers import postgres_databases


@pytest.fixture
def postgres_database() -> Iterator[Callable[[], str]]:
    """A factory of URLs to new, empty databases on the test server, dropped afterwards."""
    with postgres_databases() as make:
        yield make


@pytest.fixture
def fresh_postgres_url(postgres_database: Callable[[], str]) -> str:
    """A URL to a new, empty database on the test server (dropped after the test)."""
    return postgres_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to a fresh, empty database (a SQLite file, or a new PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    factory: Callable[[], str] = request.getfixturevalue("postgres_database")
    return factory()


@pytest.fixture
def postgres(fresh_postgres_url: str) -> Iterator[RDBStorage]:
    """An :class:`RDBStorage` on a new, empty PostgreSQL database."""
    storage = RDBStorage(fresh_postgres_url)
    yield storage
    storage.close()

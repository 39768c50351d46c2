"""Fixtures for the storage tests: fresh PostgreSQL databases on the test server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

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

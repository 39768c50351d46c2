"""The storage conformance suite against every backend: in-memory, SQLite, PostgreSQL.

PostgreSQL tests need ``HYPERAGENTS_TEST_POSTGRES_URL`` (``.ci/start_postgres.sh`` prints one);
without it they are skipped, or fail when ``CI=true``. Each test gets its own database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperagents.storages import BaseStorage, InMemoryStorage, RDBStorage
from hyperagents.testing.storage import StorageConformanceTests


class TestInMemoryStorage(StorageConformanceTests):
    @pytest.fixture
    def storage(self) -> Iterator[BaseStorage]:
        storage = InMemoryStorage()
        yield storage
        storage.close()


class TestSQLiteStorage(StorageConformanceTests):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[BaseStorage]:
        storage = RDBStorage(f"sqlite:///{tmp_path / 'hyperagents.db'}")
        yield storage
        storage.close()


class TestSQLiteMemoryStorage(StorageConformanceTests):
    """``sqlite://``: a private in-memory SQLite database (one shared connection)."""

    @pytest.fixture
    def storage(self) -> Iterator[BaseStorage]:
        storage = RDBStorage("sqlite://")
        yield storage
        storage.close()


@pytest.mark.postgres
class TestPostgresStorage(StorageConformanceTests):
    @pytest.fixture
    def storage(self, fresh_postgres_url: str) -> Iterator[BaseStorage]:
        storage = RDBStorage(fresh_postgres_url)
        yield storage
        storage.close()

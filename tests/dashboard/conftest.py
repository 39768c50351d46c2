"""Fixtures of the dashboard's tests: a real run in a SQLite file, and a client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hyperagents.dashboard import create_app
from hyperagents.storages import RDBStorage

from dashboard_helpers import Site, make_run


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{tmp / 'runs.db'}"
    storage = RDBStorage(url)
    make_run(storage, "toy-a", 8)
    yield Site(url, storage, "toy-a", tmp)
    storage.close()


@pytest.fixture
def client(site: Site) -> Iterator[TestClient]:
    app = create_app(site.storage, storage_url=site.url, log_dir=site.tmp / "logs")
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        test_client.get("/")  # the CSRF cookie
        yield test_client

"""A real run in a SQLite file, shared by the dashboard's tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperagents.dashboard import create_app
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import RDBStorage

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


@dataclass
class Site:
    url: str
    storage: RDBStorage
    run: str
    tmp: Path


def make_run(storage: RDBStorage, name: str, generations: int, *, seed: int = 1) -> Run:
    run = Run.create(
        task=TOY,
        name=name,
        seed=seed,
        storage=storage,
        config=RunConfig.parse({}, sandbox="process", subset_size=10),
    )
    run.optimize(generations)
    return run


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


def csrf(client: TestClient) -> dict[str, str]:
    """The headers a page of the dashboard sends with a state-changing request."""
    return {"X-CSRF-Token": client.cookies["hyperagents_csrf"]}

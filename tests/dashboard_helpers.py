"""Helpers of the dashboard's tests: a real run in a SQLite file (not a pytest module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from hyperagents.runs import Run, RunConfig
from hyperagents.storages import RDBStorage

TOY = f"{Path(__file__).resolve().parent / 'toytask.py'}:ToyTask"


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


def csrf(client: TestClient) -> dict[str, str]:
    """The headers a page of the dashboard sends with a state-changing request."""
    return {"X-CSRF-Token": client.cookies["hyperagents_csrf"]}

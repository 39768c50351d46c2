"""Helpers of the service's tests: a real run of a task whose agent misbehaves on request,
with a second variant to try as a candidate (not a pytest module)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from servicetask import HOSTILE_AGENT

from hyperagents.storages import RDBStorage
from served_runs import make_served_run

TASK = f"{Path(__file__).resolve().parent / 'servicetask.py'}:ServiceToyTask"
#: The candidate's task agent: the champion's, with a lower threshold ({"x": 0.5} -> "hi").
CANDIDATE_AGENT = HOSTILE_AGENT.replace('PARAMS = {"t": 0.63}', 'PARAMS = {"t": 0.2}')


@dataclass
class Site:
    url: str
    storage: RDBStorage
    run: str
    run_id: int
    champion: int
    candidate: int
    tmp: Path


def make_service_run(storage: RDBStorage, name: str) -> tuple[int, int, int]:
    """A run of the service task (its seed evaluated) and a candidate variant: (run id,
    champion id, candidate id)."""
    return make_served_run(storage, name, task=TASK, candidate_agent=CANDIDATE_AGENT)


def service_site(url: str, tmp: Path) -> Iterator[Site]:
    """A served run with a candidate variant in the storage at ``url`` (a fixture's body)."""
    storage = RDBStorage(url)
    run_id, champion, candidate = make_service_run(storage, "svc")
    yield Site(url, storage, "svc", run_id, champion, candidate, tmp)
    storage.close()

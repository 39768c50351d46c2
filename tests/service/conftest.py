"""Fixtures of the service's tests: a real run of a task whose agent misbehaves on request, in
a SQLite file, with a second variant to try as a candidate."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from service_helpers import Site, service_site

from hyperagents.service import Serving
from hyperagents.storages import ServiceSpec


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("service")
    yield from service_site(f"sqlite:///{tmp / 'service.db'}", tmp)


_names = itertools.count()


@pytest.fixture
def new_service(site: Site) -> Callable[..., int]:
    """Create a fresh service over the site's run (its own requests), returning its id."""

    def make(*, seed: int = 0) -> int:
        spec = ServiceSpec(
            name=f"svc-{next(_names)}", run_id=site.run_id, champion_id=site.champion, seed=seed
        )
        return site.storage.create_service(spec)

    return make


@pytest.fixture
def serving(site: Site, new_service: Callable[..., int]) -> Iterator[Serving]:
    """A started service with two workers, closed afterwards."""
    answering = Serving(site.storage, new_service(), workers=2)
    answering.start()
    yield answering
    answering.close()

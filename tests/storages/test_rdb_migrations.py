"""Migration 0005: run state read by key from ``attrs`` before moves into typed columns (and
back on a downgrade), so databases written by older versions stay readable and resumable.
Migration 0006: the run's engines, and the engine and worker on variants and evaluations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from hyperagents.storages import EventSpec, RDBStorage, RunSpec, ServiceSpec, VariantState
from hyperagents.storages._rdb import normalise_url
from hyperagents.storages._rdb.models import UTCDateTime
from hyperagents.storages._rdb.storage import ALEMBIC_DIR

_WHEN = datetime(2026, 1, 1, tzinfo=UTC)
_RUNS = sa.table(
    "runs",
    *(sa.column(name) for name in ("id", "name", "task", "mode", "seed", "seed_program_id")),
    sa.column("status", sa.Integer()),
    sa.column("config", sa.JSON()),
    sa.column("attrs", sa.JSON()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
_VARIANTS = sa.table(
    "variants",
    *(sa.column(name) for name in ("id", "run_id", "generation", "parent_id", "state")),
    *(sa.column(name, sa.JSON()) for name in ("scores", "metrics", "meta_info")),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)


def _migrate(conn: Connection, revision: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(config, revision)


@pytest.fixture
def old_database(db_url: str) -> Iterator[Callable[[dict[str, dict[str, Any]]], str]]:
    """A factory: a database at revision 0004 holding runs named as the keys, with those
    ``attrs`` and three variants each (ids 10*run, 10*run+1, 10*run+2)."""
    engine = sa.create_engine(normalise_url(db_url))

    def make(runs: dict[str, dict[str, Any]]) -> str:
        with engine.begin() as conn:
            _migrate(conn, "0004")
            for run_id, (name, attrs) in enumerate(runs.items(), start=1):
                conn.execute(
                    _RUNS.insert(),
                    {
                        "id": run_id,
                        "name": name,
                        "task": "toy",
                        "mode": "hyperagent",
                        "seed": 0,
                        "seed_program_id": "x",
                        "status": 2,
                        "config": {},
                        "attrs": attrs,
                        "created_at": _WHEN,
                        "updated_at": _WHEN,
                    },
                )
                for generation in range(3):
                    conn.execute(
                        _VARIANTS.insert(),
                        {
                            "id": 10 * run_id + generation,
                            "run_id": run_id,
                            "generation": generation,
                            "parent_id": None if generation == 0 else 10 * run_id,
                            "state": int(VariantState.COMPLETE),
                            "scores": {},
                            "metrics": {},
                            "meta_info": {},
                            "created_at": _WHEN,
                            "updated_at": _WHEN,
                        },
                    )
        return db_url

    yield make
    engine.dispose()


#: ``attrs`` as versions before 0005 wrote them: run state and free-form notes mixed.
_OLD_ATTRS: dict[str, Any] = {
    "task_name": "toy-task",
    "experiment": "grid",
    "arm": "frozen-meta+transfer",
    "target_generations": 8,
    "elapsed_seconds": 12.5,
    "pinned_parent": {"variant": 11, "by": "ann"},
    "banned": [12, 99],  # 99 is no variant of the run: it is dropped
    "meta_from": "other/champion",
    "started_from": "dashboard",
}


def test_old_run_state_moves_out_of_attrs(
    old_database: Callable[[dict[str, dict[str, Any]]], str],
) -> None:
    url = old_database(
        {
            "old": _OLD_ATTRS,
            "bare": {},
            "odd": {
                "target_generations": "eight",
                "elapsed_seconds": -3,
                "pinned_parent": 21,
                "banned": "all",
                "task_name": 7,
                "note": [1],
            },
        }
    )
    storage = RDBStorage(url)
    try:
        old = storage.get_run_by_name("old")
        assert (old.task_name, old.experiment, old.arm) == (
            "toy-task",
            "grid",
            "frozen-meta+transfer",
        )
        assert (old.target_generations, old.elapsed_seconds) == (8, 12.5)
        assert (old.pinned_parent, old.pinned_by, old.banned) == (11, "ann", frozenset({12}))
        assert old.attrs == {"meta_from": "other/champion", "started_from": "dashboard"}
        bare = storage.get_run_by_name("bare")
        assert bare.attrs == {} and bare.target_generations is None
        assert (bare.elapsed_seconds, bare.banned, bare.task_name) == (0.0, frozenset(), None)
        # Values of the wrong type were never written by hyperagents: they are dropped.
        odd = storage.get_run_by_name("odd")
        assert odd.attrs == {"note": [1]}
        assert (odd.target_generations, odd.elapsed_seconds, odd.pinned_parent) == (None, 0, None)
        assert (odd.banned, odd.task_name) == (frozenset(), None)
        # The migrated run goes on: its pin is used once, more bans add up.
        assert storage.unpin_parent(old.id, expected=11)
        storage.ban_variant(10 * old.id + 1, event=EventSpec("variant.banned"))
        assert storage.get_run(old.id).banned == frozenset({11, 12})
        storage.set_target_generations(old.id, 10)
        assert storage.get_run(old.id).target_generations == 10
        storage.delete_run(old.id)
        assert [r.name for r in storage.list_runs()] == ["bare", "odd"]
    finally:
        storage.close()


def test_the_downgrade_puts_the_state_back(
    old_database: Callable[[dict[str, dict[str, Any]]], str],
) -> None:
    url = old_database({"old": _OLD_ATTRS, "bare": {"note": 1}})
    RDBStorage(url).close()  # upgraded to 0005
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            _migrate(conn, "0004", down=True)
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("banned_variants")
            rows = dict(conn.execute(sa.select(_RUNS.c.name, _RUNS.c.attrs)).all())
            count = conn.execute(sa.select(sa.func.count()).select_from(_VARIANTS)).scalar()
    finally:
        engine.dispose()
    assert rows["old"] == {**_OLD_ATTRS, "banned": [12]}
    assert rows["bare"] == {"note": 1}
    assert count == 6


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_0006_old_rows_say_no_engine_and_the_downgrade_drops_it(db_url: str) -> None:
    storage = RDBStorage(db_url)
    spec = RunSpec(name="old", task="t", mode="hyperagent", seed=1, config={}, seed_program_id="x")
    run_id = storage.create_run(spec)
    variant_id = storage.create_variant(run_id=run_id, generation=0, parent_id=None)
    storage.add_evaluation(
        variant_id=variant_id, stage="val", split="val", score=0.5, n=1, results=[], metrics={}
    )
    storage.close()
    engine = sa.create_engine(normalise_url(db_url))
    with engine.begin() as conn:
        _migrate(conn, "0005", down=True)
    engine.dispose()
    assert "run_engines" not in _tables(db_url)
    storage = RDBStorage(db_url)  # upgraded again on open
    try:
        assert "run_engines" in _tables(db_url)
        variant = storage.get_variant(variant_id)
        assert (variant.engine, variant.worker) == (None, None)
        (evaluation,) = storage.list_evaluations(variant_id)
        assert (evaluation.engine, evaluation.worker) == (None, None)
        assert storage.list_engines(run_id) == []
        storage.register_engine(run_id, "o", host="h", pid=1, workers=1)
        assert [e.owner for e in storage.list_engines(run_id)] == ["o"]
    finally:
        storage.close()


def test_0010_the_downgrade_drops_services_and_the_upgrade_brings_them_back(db_url: str) -> None:
    storage = RDBStorage(db_url)
    spec = RunSpec(name="old", task="t", mode="hyperagent", seed=1, config={}, seed_program_id="x")
    run_id = storage.create_run(spec)
    variant_id = storage.create_variant(run_id=run_id, generation=0, parent_id=None)
    service_id = storage.create_service(
        ServiceSpec(name="svc", run_id=run_id, champion_id=variant_id)
    )
    storage.add_service_request(service_id, variant_id=variant_id, arm="champion", inputs=1)
    storage.close()
    engine = sa.create_engine(normalise_url(db_url))
    with engine.begin() as conn:
        _migrate(conn, "0009_columns", down=True)
    engine.dispose()
    assert not {"services", "service_requests", "service_events"} & _tables(db_url)
    storage = RDBStorage(db_url)  # upgraded again on open, the run kept
    try:
        assert {"services", "service_requests", "service_events"} <= _tables(db_url)
        assert storage.get_run(run_id).name == "old" and storage.list_services() == []
        again = storage.create_service(
            ServiceSpec(name="svc", run_id=run_id, champion_id=variant_id)
        )
        assert storage.get_service(again).champion_id == variant_id
    finally:
        storage.close()

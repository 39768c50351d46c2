"""Migration 0006: a database written before several engines could share a run opens, its
variants and evaluations say no engine (not recorded), its runs have no engines, and the
downgrade takes the table and columns away again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from hyperagents.storages import RDBStorage, RunSpec
from hyperagents.storages._rdb import normalise_url
from hyperagents.storages._rdb.storage import ALEMBIC_DIR
from hyperagents.testing.storage import make_program


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    factory: Callable[[], str] = request.getfixturevalue("postgres_database")
    return factory()


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(ALEMBIC_DIR))
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_0006_upgrades_old_rows_and_downgrades(db_url: str) -> None:
    # A storage at the head writes a run; going down to 0005 keeps its rows.
    storage = RDBStorage(db_url)
    program = make_program()
    storage.put_program(program)
    run_id = storage.create_run(
        RunSpec(name="old", task="t", mode="hyperagent", seed=1, config={}, seed_program_id="x")
    )
    variant_id = storage.create_variant(run_id=run_id, generation=0, parent_id=None)
    storage.add_evaluation(
        variant_id=variant_id, stage="val", split="val", score=0.5, n=1, results=[], metrics={}
    )
    storage.close()
    _migrate(db_url, "0005", down=True)
    assert "run_engines" not in _tables(db_url)
    # Opening it again upgrades it: old rows say no engine, the run has no engines.
    storage = RDBStorage(db_url)
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

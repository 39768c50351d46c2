"""Migration 0007: rows written unpacked (revision 0005) are packed by the upgrade and read back
as they were; the downgrade puts plain JSON text and plain file bytes back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from hyperagents.program import Program
from hyperagents.storages import RDBStorage
from hyperagents.storages._rdb import normalise_url
from hyperagents.storages._rdb._packing import BLOB_DELTA, BLOB_RAW, BLOB_ZLIB
from hyperagents.storages._rdb.models import UTCDateTime
from hyperagents.storages._rdb.storage import ALEMBIC_DIR

_WHEN = datetime(2026, 1, 1, tzinfo=UTC)
_RESULTS = [
    {"id": f"val-{i:04d}", "score": i % 2, "feedback": "correct ☃", "output": "accept",
     "error": None, "wall": 0.000123, "cpu": 0.0}
    for i in range(30)
]  # fmt: skip
_META = {"agent": "offline-meta-agent", "changes": {"X": [0.1, 0.2]}, "note": "é" * 80}
_METRICS = {"val": {"n": 30, "wall_seconds": 0.01, "cpu_seconds": 0.01, "errors": 0}}
_RULES = "".join(f"def rule_{i}(x):\n    return x * {i} + PARAMS['X']\n\n" for i in range(40))
_PROGRAM = Program(
    {"task_agent.py": "PARAMS = {'X': 0.5}\n" + _RULES, "tiny.txt": "a", "zero.bin": bytes(200)}
)
_CHILD_AGENT = "PARAMS = {'X': 0.625}\n" + _RULES


def _table(name: str, *columns: str, json_columns: tuple[str, ...] = ()) -> sa.TableClause:
    times = ("created_at", "updated_at") if name == "variants" else ("created_at",)
    return sa.table(
        name,
        *(sa.column(c) for c in columns),
        *(sa.column(c, sa.JSON()) for c in json_columns),
        *(sa.column(c, UTCDateTime()) for c in times),
    )


def _migrate(conn: Connection, revision: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(config, revision)


def _fill(conn: Connection) -> None:
    """Rows as revision 0005 stored them."""
    blobs = sa.table("blobs", sa.column("sha256"), sa.column("size"), sa.column("data"))
    for path, digest in _PROGRAM.blobs.items():
        data = _PROGRAM[path]
        conn.execute(blobs.insert(), {"sha256": digest, "size": len(data), "data": data})
    conn.execute(
        _table("programs", "id", json_columns=("manifest",)).insert(),
        {"id": _PROGRAM.id, "manifest": _PROGRAM.manifest, "created_at": _WHEN},
    )
    runs = sa.table(
        "runs",
        *(sa.column(c) for c in ("id", "name", "task", "mode", "seed", "seed_program_id")),
        *(sa.column(c) for c in ("status", "elapsed_seconds")),
        sa.column("config", sa.JSON()),
        sa.column("attrs", sa.JSON()),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    conn.execute(
        runs.insert(),
        {"id": 1, "name": "old", "task": "t", "mode": "hyperagent", "seed": 0,
         "seed_program_id": _PROGRAM.id, "status": 2, "elapsed_seconds": 0.0, "config": {},
         "attrs": {}, "created_at": _WHEN, "updated_at": _WHEN},
    )  # fmt: skip
    variants = _table(
        "variants", "id", "run_id", "generation", "parent_id", "program_id", "state",
        json_columns=("scores", "metrics", "meta_info"),
    )  # fmt: skip
    conn.execute(
        variants.insert(),
        {"updated_at": _WHEN, "id": 1, "run_id": 1, "generation": 0, "parent_id": None,
         "program_id": _PROGRAM.id, "state": 3, "scores": {"val": 0.5}, "metrics": _METRICS,
         "meta_info": _META, "created_at": _WHEN},
    )  # fmt: skip
    evaluations = _table(
        "evaluations", "id", "variant_id", "stage", "split", "score", "n",
        json_columns=("results", "metrics"),
    )  # fmt: skip
    conn.execute(
        evaluations.insert(),
        {"id": 1, "variant_id": 1, "stage": "val", "split": "val", "score": 0.5, "n": 30,
         "results": _RESULTS, "metrics": _METRICS["val"], "created_at": _WHEN},
    )  # fmt: skip
    events = _table(
        "events", "id", "run_id", "variant_id", "kind", "message", json_columns=("data",)
    )
    conn.execute(
        events.insert(),
        [
            {"id": 1, "run_id": 1, "variant_id": 1, "kind": "small", "message": "",
             "data": {}, "created_at": _WHEN},
            {"id": 2, "run_id": 1, "variant_id": None, "kind": "big", "message": "m",
             "data": {"changed": ["task_agent.py"] * 20}, "created_at": _WHEN},
        ],
    )  # fmt: skip


def _raw(conn: Connection, sql: str) -> list[Any]:
    return list(conn.execute(sa.text(sql)).all())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at revision 0005 holding a run, a program, a variant, an evaluation and
    events, as that revision stored them."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        factory: Callable[[], str] = request.getfixturevalue("postgres_database")
        url = factory()
    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        _migrate(conn, "0005")
        _fill(conn)
    engine.dispose()
    return url


def _check_reads(storage: RDBStorage) -> None:
    [variant] = storage.list_variants(1)
    assert (variant.meta_info, variant.metrics, variant.scores) == (_META, _METRICS, {"val": 0.5})
    assert storage.get_variant(1).meta_info == _META
    [evaluation] = storage.list_evaluations(1)
    assert evaluation.results == _RESULTS and evaluation.metrics == _METRICS["val"]
    assert [e.data for e in storage.list_events(1)] == [{}, {"changed": ["task_agent.py"] * 20}]
    assert storage.get_program(_PROGRAM.id) == _PROGRAM


def test_upgrade_packs_old_rows_and_they_read_back(old_url: str) -> None:
    storage = RDBStorage(old_url)  # upgraded to the head
    try:
        _check_reads(storage)
    finally:
        storage.close()
    engine = sa.create_engine(normalise_url(old_url))
    with engine.connect() as conn:
        heads = {row[0] for row in _raw(conn, "SELECT data FROM blobs")}
        if engine.dialect.name == "sqlite":
            kinds = _raw(
                conn,
                "SELECT typeof(e.results), typeof(e.metrics), typeof(v.meta_info), "
                "typeof(v.scores), typeof(p.manifest) FROM evaluations e, variants v, programs p",
            )
            assert kinds == [("blob", "blob", "blob", "text", "blob")]
            assert _raw(conn, "SELECT typeof(data) FROM events ORDER BY id") == [
                ("text",),
                ("blob",),
            ]
    engine.dispose()
    assert {bytes(h)[0] for h in heads} == {BLOB_RAW, BLOB_ZLIB}


def test_downgrade_unpacks_to_plain_text_and_bytes(old_url: str) -> None:
    storage = RDBStorage(old_url)
    child = Program({**{p: _PROGRAM[p] for p in _PROGRAM.blobs}, "task_agent.py": _CHILD_AGENT})
    try:
        storage.get_program(_PROGRAM.id)  # read: its files become this storage's bases
        storage.put_program(child)  # its task_agent.py is stored as a difference
    finally:
        storage.close()
    engine = sa.create_engine(normalise_url(old_url))
    with engine.connect() as conn:
        formats = {bytes(d)[0] for (d,) in _raw(conn, "SELECT data FROM blobs")}
    assert formats == {BLOB_RAW, BLOB_ZLIB, BLOB_DELTA}
    with engine.begin() as conn:
        _migrate(conn, "0005", down=True)
    with engine.connect() as conn:
        blobs = {bytes(d) for (d,) in _raw(conn, "SELECT data FROM blobs")}
        assert blobs == {_PROGRAM[p] for p in _PROGRAM.blobs} | {_CHILD_AGENT.encode()}
        results = _raw(conn, "SELECT CAST(results AS TEXT), CAST(metrics AS TEXT) FROM evaluations")
        meta = _raw(conn, "SELECT CAST(meta_info AS TEXT), CAST(metrics AS TEXT) FROM variants")
        manifest = _raw(
            conn, f"SELECT CAST(manifest AS TEXT) FROM programs WHERE id = '{_PROGRAM.id}'"
        )
    engine.dispose()
    assert [json.loads(t) for t in results[0]] == [_RESULTS, _METRICS["val"]]
    assert [json.loads(t) for t in meta[0]] == [_META, _METRICS]
    assert json.loads(manifest[0][0]) == _PROGRAM.manifest
    storage = RDBStorage(old_url)  # up again: the same values
    try:
        _check_reads(storage)
        assert storage.get_program(child.id) == child
    finally:
        storage.close()

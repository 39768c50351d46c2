"""Migration 0011_compact (SQLite): blob hashes stored once, manifests stored as their
difference from another manifest, JSON packed with a second dictionary; a database in the
layout of revision 0010 reads the same after the upgrade, and the downgrade gives it back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hyperagents.exceptions import StorageError
from hyperagents.program import Program
from hyperagents.storages import RDBStorage, RunSpec
from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._manifests import (
    ManifestDifference,
    PackedManifest,
    apply_difference,
    manifest_difference,
)
from hyperagents.storages._rdb._packing import (
    JSON_COLUMNS_V1,
    JSON_DEFLATE_V1,
    JSON_DEFLATE_V2,
    JSON_MANIFEST_DELTA,
    JSON_RECORDS_REF,
    json_text,
    pack_json_text,
)
from hyperagents.storages._rdb._references import read_reference
from migration_helpers import migrate_url

_MODULES = {f"meta_{name}.py": f"# {name}\n" + "x = 1\n" * 40 for name in "abcdefghij"}
_META = {
    "agent": "offline-meta-agent",
    "mechanism": "surrogate",
    "forced_restart": False,
    "detail": {"acquisition": 18.66, "good": 13, "points": 49},
    "meta": {"portfolio": {"restart_after": 12.0, "share_floor": 0.03, "weights_share": 0.5}},
    "params": {"X": 0.25, "Y": -3.5},
}


def _program(x: float) -> Program:
    return Program(
        {**_MODULES, "task_agent.py": f"PARAMS = {{'X': {x}}}\n", "meta_state.json": f"[{x}]"}
    )


def _fill(url: str) -> dict[str, Any]:
    """A run with a seed, two children and their records; what the storage reads of them."""
    storage = RDBStorage(url)
    try:
        seed, child, grandchild = _program(0.5), _program(0.625), _program(0.75)
        for program in (seed, child, grandchild):
            storage.put_program(program)
        run_id = storage.create_run(
            RunSpec(name="r", task="t", mode="hyperagent", seed=0, config={},
                    seed_program_id=seed.id)
        )  # fmt: skip
        vid = storage.create_variant(
            run_id=run_id, generation=0, parent_id=None, program_id=child.id, meta_info=_META
        )
        storage.update_variant_metrics(vid, {"val": _META})
        _evaluate(storage, vid, "train_subset", _train(range(0, 400, 8)))
        _evaluate(storage, vid, "train", _train(range(400)))  # holds the subset's records
        results = [{"id": f"val-{i:04d}", "score": i % 2, "wall": 1e-6 * i} for i in range(30)]
        _evaluate(storage, vid, "val", results)
        return _reads(storage, vid, [seed, child, grandchild])
    finally:
        storage.close()


def _train(numbers: Iterable[int]) -> list[dict[str, Any]]:
    """Per-instance results of train instances ``numbers`` (the same record for a number)."""
    return [
        {"id": f"train-{i:04d}", "score": float(i % 3 == 0), "feedback": "ok" if i % 3 else "no",
         "output": "accept", "error": None, "wall": (100 + i * 37 % 91) * 1e-6, "cpu": 0.0}
        for i in numbers
    ]  # fmt: skip


def _evaluate(storage: RDBStorage, vid: int, stage: str, results: list[dict[str, Any]]) -> None:
    storage.add_evaluation(
        variant_id=vid, stage=stage, split=stage.split("_")[0], score=0.5, n=len(results),
        results=results, metrics={"n": len(results), "wall_seconds": 0.012},
    )  # fmt: skip


def _reads(storage: RDBStorage, vid: int, programs: list[Program]) -> dict[str, Any]:
    variant = storage.get_variant(vid)
    return {
        "variant": (variant.meta_info, variant.metrics, variant.program_id),
        "evaluations": [(e.results, e.metrics) for e in storage.list_evaluations(vid)],
        "programs": [storage.get_program(p.id) == p for p in programs],
    }


def _raw(path: Path, sql: str) -> list[Any]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


def _heads(path: Path, table: str, column: str) -> set[Any]:
    rows = _raw(path, f"SELECT {column} FROM {table}")
    return {bytes(v)[0] if isinstance(v, bytes) else "text" for (v,) in rows}


def _without_rowid(path: Path) -> list[bool]:
    """Whether ``blobs`` and ``programs`` are ``WITHOUT ROWID`` tables."""
    rows = _raw(path, "SELECT name, sql FROM sqlite_schema WHERE name IN ('blobs', 'programs')")
    return [("WITHOUT ROWID" in sql.upper()) for _, sql in sorted(rows)]


def test_children_manifests_are_stored_as_differences_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    reads = _fill(f"sqlite:///{path}")
    assert reads["programs"] == [True, True, True]
    sizes = _raw(path, "SELECT substr(manifest, 1, 1), length(manifest) FROM programs")
    alone = [n for head, n in sizes if bytes(head)[0] == JSON_DEFLATE_V2]
    differences = [n for head, n in sizes if bytes(head)[0] == JSON_MANIFEST_DELTA]
    assert len(alone) == 1 and len(differences) == 2  # both children refer to the seed
    assert max(differences) * 2 < alone[0]
    assert _without_rowid(path) == [True, True]
    assert _heads(path, "variants", "meta_info") == {JSON_DEFLATE_V2}
    stages = dict(_raw(path, "SELECT stage, substr(results, 1, 1) FROM evaluations"))
    assert {s: bytes(h)[0] for s, h in stages.items()} == {
        "train_subset": JSON_RECORDS_REF,
        "train": JSON_COLUMNS_V1,
        "val": JSON_COLUMNS_V1,
    }
    assert reads["evaluations"][0][0] == _train(range(0, 400, 8))
    assert reads["evaluations"][1][0] == _train(range(400))
    storage = RDBStorage(f"sqlite:///{path}")  # a fresh process: nothing remembered
    try:
        assert storage.get_program(_program(0.75).id) == _program(0.75)
        storage.put_program(_program(1.0))  # its base: the seed, read as that one's base
        assert storage.get_program(_program(1.0).id) == _program(1.0)
    finally:
        storage.close()
    assert len(_raw(path, "SELECT id FROM programs WHERE substr(manifest, 1, 1) = x'04'")) == 3


def test_a_database_in_the_old_layout_reads_the_same_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    reads = _fill(url)
    migrate_url(url, "0010_service", down=True)  # the layout revision 0010 writes and reads
    assert _without_rowid(path) == [False, False]
    assert _raw(path, "PRAGMA foreign_key_check") == []
    for table, column in (("programs", "manifest"), ("variants", "meta_info")):
        assert _heads(path, table, column) <= {JSON_DEFLATE_V1, "text"}
    assert _heads(path, "evaluations", "metrics") <= {JSON_DEFLATE_V1, "text"}
    assert _heads(path, "evaluations", "results") <= {JSON_DEFLATE_V1, JSON_COLUMNS_V1, "text"}
    manifests = _raw(path, "SELECT id, manifest FROM programs")
    assert all(json.loads(json_text(m)) for _, m in manifests)
    storage = RDBStorage(url)  # upgraded to the head
    try:
        assert _reads(storage, 1, [_program(0.5), _program(0.625), _program(0.75)]) == reads
    finally:
        storage.close()
    assert _without_rowid(path) == [True, True]
    assert _raw(path, "PRAGMA foreign_key_check") == []
    references = {row[2] for row in _raw(path, "PRAGMA foreign_key_list(variants)")}
    assert references == {"runs", "programs"}


def test_a_manifest_difference_needs_its_base(tmp_path: Path) -> None:
    base = _program(0.5).manifest
    child = _program(0.625).manifest
    difference = manifest_difference(child, ("ab" * 32, base))
    assert difference is not None and set(difference.changes) == {
        "meta_state.json",
        "task_agent.py",
    }
    assert apply_difference(base, difference) == child
    removed = manifest_difference({k: v for k, v in child.items() if k != "meta_a.py"},
                                  ("ab" * 32, base))  # fmt: skip
    assert removed is not None and removed.changes["meta_a.py"] is None
    assert manifest_difference({"a.py": "1" * 64}, ("ab" * 32, {"b.py": "2" * 64})) is None
    dialect = sa.create_engine("sqlite://").dialect
    column = PackedManifest()
    stored = column.process_bind_param(difference, dialect)
    assert column.process_result_value(stored, dialect) == difference
    with pytest.raises(StorageError, match="corrupt"):
        column.process_result_value(stored[:20], dialect)
    with pytest.raises(StorageError, match="manifest difference"):
        json_text(stored)
    path = tmp_path / "orphan.db"
    storage = RDBStorage(f"sqlite:///{path}")
    try:
        storage.put_program(_program(0.5))
        orphan = ManifestDifference("cd" * 32, {"task_agent.py": None})
        with sqlite3.connect(path) as conn:
            conn.execute(
                "UPDATE programs SET manifest = ?", (column.process_bind_param(orphan, dialect),)
            )
        conn.close()
        with pytest.raises(StorageError, match="missing manifest"):
            storage.get_program(_program(0.5).id)
    finally:
        storage.close()


def test_values_packed_with_the_first_dictionary_still_read() -> None:
    text = dumps_json(_META)
    old = pack_json_text(text, version=JSON_DEFLATE_V1)
    new = pack_json_text(text)
    assert isinstance(old, bytes) and old[0] == JSON_DEFLATE_V1
    assert isinstance(new, bytes) and new[0] == JSON_DEFLATE_V2 and len(new) < len(old)
    assert json_text(old) == json_text(new) == text


def test_results_another_evaluation_holds_are_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "refs.db"
    storage = RDBStorage(f"sqlite:///{path}")
    subset, full = _train(range(0, 400, 8)), _train(range(400))
    changed = [dict(r, score=0.5) if r["id"] == "train-0008" else r for r in full]
    try:
        run_id = storage.create_run(
            RunSpec(name="r", task="t", mode="m", seed=0, config={}, seed_program_id="")
        )
        a, b = (storage.create_variant(run_id=run_id, generation=g, parent_id=None) for g in (0, 1))
        for vid, train in ((a, full), (b, changed)):
            _evaluate(storage, vid, "train_subset", subset)
            _evaluate(storage, vid, "train", train)
        _evaluate(storage, a, "recheck", [*full, *_train(range(400, 410))])  # holds train too
        assert [e.results for e in storage.list_evaluations(a)] == [
            subset,
            full,
            [*full, *_train(range(400, 410))],
        ]
        assert [e.results for e in storage.list_evaluations(b)] == [subset, changed]
    finally:
        storage.close()
    heads = _raw(path, "SELECT variant_id, stage, substr(results, 1, 1) FROM evaluations")
    formats = {(v, s): bytes(h)[0] for v, s, h in heads}
    assert formats[(1, "train_subset")] == JSON_RECORDS_REF  # one record differs in b's train
    assert formats[(2, "train_subset")] == formats[(1, "train")] == JSON_COLUMNS_V1
    size = _raw(path, "SELECT length(results) FROM evaluations WHERE stage = 'train_subset'")
    assert size[0][0] * 3 < size[1][0]
    storage = RDBStorage(f"sqlite:///{path}")  # another process reads the same
    try:
        assert storage.list_evaluations(a)[0].results == subset
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM evaluations WHERE variant_id = 1 AND stage = 'train'")
        conn.close()
        with pytest.raises(StorageError, match="refer to missing 'train'"):
            storage.list_evaluations(a)
    finally:
        storage.close()
    with pytest.raises(StorageError, match="reference is corrupt"):
        read_reference(bytes((JSON_RECORDS_REF,)) + b"not deflate")

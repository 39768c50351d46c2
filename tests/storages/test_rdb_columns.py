"""Evaluation results laid out by column on SQLite (format byte 0x02): exact round trips of
any list of records, smaller than rows for per-instance results, and rows where the layout
does not apply; migration 0009_columns converts both ways."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import StorageError
from hyperagents.storages import RDBStorage, RunSpec
from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._columns import columns_layout
from hyperagents.storages._rdb._packing import (
    JSON_COLUMNS_V1,
    JSON_DEFLATE_V1,
    JSON_DEFLATE_V2,
    json_text,
    pack_json_text,
    pack_records,
)
from migration_helpers import migrate_url


def _results(n: int, *, split: str = "train", seed: int = 0) -> list[dict[str, Any]]:
    """Per-instance results as the engine stores them for a classification task."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        expected, predicted = rng.choice(("accept", "reject")), rng.choice(("accept", "reject"))
        right = expected == predicted
        out.append(
            {
                "id": f"{split}-{i:04d}",
                "score": 1.0 if right else 0.0,
                "feedback": f"{'correct' if right else 'wrong'}: predicted {predicted}, "
                f"expected {expected}",
                "output": predicted,
                "error": None,
                "wall": round(rng.uniform(3e-5, 9e-5), 6),
                "cpu": 0.0,
            }
        )
    return out


def _round_trip(value: Any) -> str | bytes:
    stored = pack_records(value)
    assert json_text(stored) == dumps_json(value)
    return stored


def test_per_instance_results_are_stored_by_column_in_well_under_half_the_bytes() -> None:
    results = _results(400)
    stored = _round_trip(results)
    assert isinstance(stored, bytes) and stored[0] == JSON_COLUMNS_V1
    by_row = pack_json_text(dumps_json(results))
    assert isinstance(by_row, bytes) and by_row[0] == JSON_DEFLATE_V2
    assert len(stored) < 0.45 * len(by_row)
    layout = columns_layout(results)
    assert layout is not None
    specs = dict(zip(layout["k"], layout["c"], strict=True))
    assert specs["id"] == {"s": ["train-", 4, [0] + [1] * 399]}
    assert "u" in specs["wall"]  # whole microseconds
    assert {"score", "feedback", "output", "error", "cpu"} == {
        k for k, spec in specs.items() if "t" in spec
    }
    assert len(layout["g"]["v"]) == 4  # right or wrong, accept or reject


@pytest.mark.parametrize(
    "value",
    [
        [],
        [{"id": "a"}] * 7,  # too short
        [{"a": 1, "b": 2}] * 5 + [{"b": 2, "a": 1}] * 5,  # another key order
        [{"a": 1}] * 9 + [{"a": 1, "b": 2}],  # other keys
        [{"a": 1}] * 9 + [[1]],  # not all objects
        {"id": "train-0001"},
        "text " * 100,
    ],
)
def test_values_the_layout_does_not_fit_are_stored_as_before(value: Any) -> None:
    assert columns_layout(value) is None
    assert pack_records(value) == pack_json_text(dumps_json(value))


def test_any_record_list_reads_back_exactly() -> None:
    """Ids of mixed widths or prefixes, numbers that look alike (1, 1.0, -0.0, True), floats
    that are not whole microseconds, nesting, unicode: the text read back is the text given."""
    rng = random.Random(7)
    pool: list[Any] = [0, 1, 1.0, -0.0, True, False, None, 1e-6, 2.5e-05, 0.1 + 0.2, 1e300,
                       "x", "☃ é", "val-0001", "val-1", "val-10000", "7", [1, {"a": None}],
                       {"nested": [1.0, "2"]}, 2**70, -3]  # fmt: skip
    for trial in range(300):
        n = rng.choice((8, 9, 16, 50, 120))
        keys = rng.sample(["id", "score", "out", "t", "n", "é"], rng.randint(1, 5))
        kind = trial % 3
        records = []
        for i in range(n):
            row = {}
            for k in keys:
                if k == "id" and kind == 0:
                    row[k] = f"p-{i * rng.choice((1, 1, 2, 7)):0{rng.choice((3, 4))}d}"
                elif k == "t" and kind == 1:
                    row[k] = round(rng.random() / 1000, rng.choice((6, 6, 7)))
                else:
                    row[k] = rng.choice(pool[: rng.randint(2, len(pool))])
            records.append(row)
        _round_trip(records)


def test_a_corrupt_layout_is_a_storage_error() -> None:
    stored = _round_trip(_results(200))
    assert isinstance(stored, bytes) and stored[0] == JSON_COLUMNS_V1
    bogus = pack_json_text(
        dumps_json({"n": 3, "k": ["a"], "c": [{"s": 5}], "g": {}, "_": "x" * 99})
    )
    assert isinstance(bogus, bytes)
    with pytest.raises(StorageError, match="corrupt"):
        json_text(bytes((JSON_COLUMNS_V1,)) + bogus[1:])
    with pytest.raises(StorageError, match="corrupt"):
        json_text(stored[:-10])


def _format(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT typeof(results), substr(results, 1, 1) FROM evaluations")
        found = [(kind, bytes(head)[0] if kind == "blob" else head) for kind, head in rows]
    conn.close()
    return found


def test_the_storage_writes_the_layout_and_the_migration_converts_both_ways(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.db"
    url = f"sqlite:///{path}"
    results = _results(200, split="val")
    storage = RDBStorage(url)
    try:
        run_id = storage.create_run(
            RunSpec(name="r", task="t", mode="hyperagent", seed=0, config={}, seed_program_id="")
        )
        vid = storage.create_variant(run_id=run_id, generation=0, parent_id=None)
        storage.add_evaluation(
            variant_id=vid, stage="val", split="val", score=0.5, n=200, results=results,
            metrics={"n": 200},
        )  # fmt: skip
        assert storage.list_evaluations(vid)[0].results == results
    finally:
        storage.close()
    assert _format(path) == [("blob", JSON_COLUMNS_V1)]
    migrate_url(url, "0007", down=True)  # what an older version reads
    assert _format(path) == [("blob", JSON_DEFLATE_V1)]
    with sqlite3.connect(path) as conn:
        [(stored,)] = conn.execute("SELECT results FROM evaluations").fetchall()
    conn.close()
    assert json.loads(json_text(stored)) == results
    migrate_url(url, "0009_columns")
    assert _format(path) == [("blob", JSON_COLUMNS_V1)]
    storage = RDBStorage(url)
    try:
        assert storage.list_evaluations(vid)[0].results == results
    finally:
        storage.close()

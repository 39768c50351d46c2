"""Packed values on SQLite: JSON deflated with a preset dictionary, program files compressed,
both behind a format byte; plain rows written before packing stay readable."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import StorageError
from hyperagents.program import Program
from hyperagents.storages import RDBStorage, RunSpec
from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._packing import (
    BLOB_DELTA,
    BLOB_RAW,
    BLOB_ZLIB,
    JSON_DEFLATE_V1,
    JSON_DEFLATE_V2,
    PACK_MIN,
    JSONTexts,
    blob_base,
    json_text,
    pack_blob,
    pack_json_text,
    unpack_blob,
)

#: JSON values of every shape (an object, an array, nesting, unicode, numbers at the edges).
SHAPES: list[Any] = [
    {},
    [],
    None,
    {"a": 1},
    {"nested": {"deep": [{"x": [1, 2, {"y": None}]}] * 20}, "flag": True, "off": False},
    [{"id": f"val-{i:04d}", "score": i % 2, "feedback": "ok", "wall": 1e-6 * i} for i in range(50)],
    {"text": "héllo wörld — ☃ 𝄞 日本語 " * 10, "empty": "", "quote": '"\\\n\t'},
    {"big": 2**63 - 1, "small": -(2**63), "tiny": 5e-324, "huge": 1.7976931348623157e308},
    {"floats": [0.1, -0.0, 1e-300, 123456.789012345678]},
    ["a string " * 40],
]


@pytest.mark.parametrize("value", SHAPES)
def test_json_round_trips_through_packing(value: Any) -> None:
    text = dumps_json(value)
    stored = pack_json_text(text)
    assert json_text(stored) == text
    assert json.loads(json_text(stored)) == value
    if isinstance(stored, bytes):
        assert stored[0] == JSON_DEFLATE_V2 and len(stored) < len(text.encode())


def test_short_or_incompressible_text_stays_text() -> None:
    short = dumps_json({"n": 1})
    assert len(short) < PACK_MIN and pack_json_text(short) == short
    noise = json.dumps(os.urandom(300).hex())  # hex compresses, random unicode does not
    assert isinstance(pack_json_text(noise), bytes)
    rough = json.dumps("".join(chr(0x4E00 + b * 37 % 20000) for b in os.urandom(200)))
    stored = pack_json_text(rough)
    assert json_text(stored) == rough


def test_the_dictionary_helps_small_values() -> None:
    value = {
        "n": 1,
        "wall_seconds": 0.012,
        "wall_per_instance": 0.0002,
        "cpu_seconds": 0.01,
        "peak_memory_mb": 15.6,
        "errors": 0,
        "timeouts": 0,
    }
    text = dumps_json(value)
    stored = pack_json_text(text)
    assert isinstance(stored, bytes)
    assert len(stored) < len(zlib.compress(text.encode(), 9)) - 20


def test_unknown_format_bytes_and_corrupt_values_are_storage_errors() -> None:
    with pytest.raises(StorageError, match="unknown format byte 0x7f"):
        json_text(b"\x7f{}")
    with pytest.raises(StorageError, match="unknown format byte"):
        json_text(b"")
    with pytest.raises(StorageError, match="corrupt"):
        json_text(bytes((JSON_DEFLATE_V1,)) + b"\xff\xfe not deflate")
    with pytest.raises(StorageError, match="unknown format byte 0x09"):
        unpack_blob(b"\x09abc")
    with pytest.raises(StorageError, match="corrupt"):
        unpack_blob(bytes((BLOB_ZLIB,)) + b"nope")


@pytest.mark.parametrize(
    "data", [b"", b"x", b"print('hi')\n" * 200, os.urandom(5000), b"\x00\x01" + bytes(300)]
)
def test_program_files_round_trip_with_a_format_byte(data: bytes) -> None:
    stored = pack_blob(data)
    assert stored[0] in (BLOB_RAW, BLOB_ZLIB)
    assert unpack_blob(stored) == data
    assert unpack_blob(memoryview(stored)) == data
    assert len(stored) <= len(data) + 1
    if data == b"print('hi')\n" * 200:
        assert stored[0] == BLOB_ZLIB and len(stored) < len(data) / 10


def test_nan_is_refused_as_before(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        dumps_json({"x": math.nan})
    storage = RDBStorage(f"sqlite:///{tmp_path / 'nan.db'}")
    try:
        run_id = _new_run(storage)
        with pytest.raises(StorageError, match="not JSON-compatible"):
            storage.add_event(run_id, "k", data={"x": math.nan, "pad": "y" * 100})
        with pytest.raises(StorageError, match="not JSON-compatible"):
            storage.add_event(run_id, "k", data={"x": object()})
        assert storage.list_events(run_id) == []
    finally:
        storage.close()


def _new_run(storage: RDBStorage, program_id: str = "p") -> int:
    spec = RunSpec(name="r", task="t", mode="m", seed=0, config={}, seed_program_id=program_id)
    return storage.create_run(spec)


def _raw(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


def test_sqlite_stores_big_values_packed_and_reads_them_back(tmp_path: Path) -> None:
    path = tmp_path / "packed.db"
    storage = RDBStorage(f"sqlite:///{path}")
    results = [{"id": f"train-{i:04d}", "score": 1.0, "feedback": "correct ☃"} for i in range(40)]
    big = {"text": "x" * 300_000, "list": list(range(2000))}
    try:
        program = Program({"task_agent.py": "PARAMS = {}\n" * 100, "tiny.txt": "a"})
        storage.put_program(program)
        run_id = _new_run(storage, program.id)
        vid = storage.create_variant(
            run_id=run_id, generation=0, parent_id=None, program_id=program.id, meta_info=big
        )
        storage.add_evaluation(
            variant_id=vid, stage="train", split="train", score=1.0, n=40,
            results=results, metrics={"n": 40, "wall_seconds": 0.5},
        )  # fmt: skip
        storage.add_event(run_id, "k", data={"unicode": "日本語 " * 30})
        assert storage.get_program(program.id) == program
        [variant] = storage.list_variants(run_id)
        assert variant.meta_info == big and variant.scores == {"train": 1.0}
        [evaluation] = storage.list_evaluations(vid)
        assert evaluation.results == results and evaluation.metrics["n"] == 40
        assert storage.list_events(run_id)[-1].data == {"unicode": "日本語 " * 30}
    finally:
        storage.close()
    kinds = dict(_raw(path, "SELECT 'results', typeof(results) FROM evaluations"))
    kinds.update(_raw(path, "SELECT 'meta_info', typeof(meta_info) FROM variants"))
    kinds.update(_raw(path, "SELECT 'scores', typeof(scores) FROM variants"))
    kinds.update(_raw(path, "SELECT 'manifest', typeof(manifest) FROM programs"))
    assert kinds == {"results": "blob", "meta_info": "blob", "scores": "text", "manifest": "blob"}
    blobs = dict(_raw(path, "SELECT size, data FROM blobs"))
    assert blobs[1] == bytes((BLOB_RAW,)) + b"a"
    assert blobs[1200][0] == BLOB_ZLIB and len(blobs[1200]) < 100


def test_plain_rows_written_before_packing_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "mixed.db"
    storage = RDBStorage(f"sqlite:///{path}")
    try:
        run_id = _new_run(storage)
        vid = storage.create_variant(run_id=run_id, generation=0, parent_id=None)
        meta = {"agent": "old", "notes": "plain text row " * 20}
        with sqlite3.connect(path) as conn:  # as a version before packing wrote it
            conn.execute("UPDATE variants SET meta_info = ? WHERE id = ?", (json.dumps(meta), vid))
            conn.execute(
                "INSERT INTO events (run_id, kind, message, data, created_at) "
                "VALUES (?, 'old', '', ?, '2026-01-01 00:00:00.000000')",
                (run_id, json.dumps({"old": "é" * 100})),
            )
        conn.close()
        assert storage.get_variant(vid).meta_info == meta
        assert storage.list_variants(run_id)[0].meta_info == meta
        assert storage.list_events(run_id, kinds=["old"])[0].data == {"old": "é" * 100}
        storage.update_variant_metrics(vid, {"val": {"n": 1, "note": "merged " * 20}})
    finally:
        storage.close()
    # The plain row is read, merged and written back packed.
    assert _raw(path, "SELECT typeof(metrics), typeof(meta_info) FROM variants") == [
        ("blob", "text")
    ]


def test_decoded_texts_cache_is_bounded_and_repeats_hits() -> None:
    texts = JSONTexts(max_chars=5000, max_entry=2000)
    values = [pack_json_text(dumps_json({"i": i, "pad": "p" * 900})) for i in range(20)]
    assert all(isinstance(v, bytes) for v in values)
    for value in values:
        assert json.loads(texts.text(value))["pad"] == "p" * 900
    assert texts.chars <= 5000 and 0 < len(texts) <= 5
    kept = values[-1]
    assert texts.text(bytes(kept)) == json_text(kept)  # a hit, as the same text
    huge = pack_json_text(dumps_json({"pad": "h" * 5000}))
    assert json.loads(texts.text(huge))["pad"] == "h" * 5000  # too big to keep: decoded
    assert texts.chars <= 5000
    assert texts.text(None) == "{}" and texts.text(None, "[]") == "[]"
    assert texts.text('{"plain":1}') == '{"plain":1}'
    none = JSONTexts(max_chars=0)
    assert none.text(values[0]) == json_text(values[0]) and len(none) == 0


_AGENT = "".join(f"def rule_{i}(x):\n    return x * {i} + PARAMS['k{i}']\n\n" for i in range(60))


def _agent(values: dict[str, float]) -> str:
    return f"PARAMS = {values!r}\n\n" + _AGENT


def test_a_file_is_stored_as_its_difference_from_a_base() -> None:
    base_file = _agent({"k1": 0.5, "k2": 1.0}).encode()
    child = _agent({"k1": 0.75, "k2": 1.0}).encode()
    digest = "ab" * 32
    stored = pack_blob(child, (digest, base_file))
    assert stored[0] == BLOB_DELTA and blob_base(stored) == digest
    assert len(stored) < len(pack_blob(child)) / 4
    assert unpack_blob(stored, base_file) == child
    with pytest.raises(StorageError, match="needs file abab"):
        unpack_blob(stored)
    # A base that does not help is not used.
    unrelated = pack_blob(child, (digest, os.urandom(3000)))
    assert unrelated[0] == BLOB_ZLIB and blob_base(unrelated) is None


def test_children_files_are_stored_as_differences_and_read_anywhere(tmp_path: Path) -> None:
    path = tmp_path / "delta.db"
    url = f"sqlite:///{path}"
    seed = Program({"task_agent.py": _agent({"k1": 0.5}), "notes.txt": "n" * 10})
    children = [
        Program({"task_agent.py": _agent({"k1": 0.5 + i / 100}), "notes.txt": "n" * 10})
        for i in range(1, 6)
    ]
    storage = RDBStorage(url)
    try:
        for program in [seed, *children]:
            storage.put_program(program)
        assert all(storage.get_program(p.id) == p for p in [seed, *children])
    finally:
        storage.close()
    formats = {h: bytes(d)[0] for h, d in _raw(path, "SELECT sha256, data FROM blobs")}
    assert [formats[seed.blobs[p]] for p in ("notes.txt", "task_agent.py")] == [
        BLOB_RAW,
        BLOB_ZLIB,
    ]
    assert [formats[c.blobs["task_agent.py"]] for c in children] == [BLOB_DELTA] * 5
    again = RDBStorage(url)  # another process: no base remembered, all readable
    try:
        assert [again.get_program(p.id) for p in children] == children
        extra = Program({"task_agent.py": _agent({"k1": 9.0}), "notes.txt": "n" * 10})
        again.put_program(extra)  # stands alone: it becomes this process's base
        assert again.get_program(extra.id) == extra
    finally:
        again.close()
    extra_agent = extra.blobs["task_agent.py"]
    [(stored,)] = _raw(path, f"SELECT data FROM blobs WHERE sha256 = '{extra_agent}'")
    assert bytes(stored)[0] == BLOB_ZLIB

"""Training checkpoints of :class:`RDBStorage` where their bytes live: files beside a SQLite
database (one per variant however often it is replaced, garbage of a killed put removed, every
read checked), the row of an in-memory database, PostgreSQL large objects (one per variant,
none orphaned); a process killed while it replaces one leaves a whole checkpoint; and
migration 0012_checkpoints down and up again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hyperagents.exceptions import StorageError
from hyperagents.storages import RDBStorage, RunSpec
from hyperagents.storages._rdb import normalise_url
from hyperagents.testing._storage_checkpoints import checkpoint_files
from migration_helpers import migrate_url
from postgres_helpers import count_large_objects


def _run_and_variant(storage: RDBStorage, name: str = "r") -> tuple[int, int]:
    spec = RunSpec(name=name, task="t", mode="hyperagent", seed=1, config={}, seed_program_id="x")
    run = storage.create_run(spec)
    return run, storage.create_variant(run_id=run, generation=1, parent_id=None)


def _rows(storage: RDBStorage) -> list[tuple[int, int, int, int | None, bytes | None]]:
    with storage._engine.connect() as conn:
        query = sa.text("SELECT run_id, variant_id, step, lo_oid, data FROM checkpoints")
        return [(r, v, s, o, d) for r, v, s, o, d in conn.execute(query)]


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RDBStorage]:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'h.db'}")
    yield storage
    storage.close()


def _folder(tmp_path: Path) -> Path:
    return tmp_path / "h.db.artifacts" / "checkpoints"


# -- SQLite: files beside the database ---------------------------------------------------------
def test_sqlite_keeps_one_file_per_variant_however_often_it_is_replaced(
    sqlite: RDBStorage, tmp_path: Path
) -> None:
    run, variant = _run_and_variant(sqlite)
    for step in range(12):
        sqlite.put_checkpoint(run, variant, key="k", step=step, files=checkpoint_files(step))
    (kept,) = _folder(tmp_path).iterdir()  # the newest only: the replaced ones were freed
    assert kept.name.startswith(f"run{run}-variant{variant}-")
    assert kept.stat().st_size == sum(len(d) for d in checkpoint_files(11).values())
    assert [(s, o, d) for _, _, s, o, d in _rows(sqlite)] == [(11, None, None)]  # not in the row
    assert sqlite.drop_checkpoint(run, variant)
    assert list(_folder(tmp_path).iterdir()) == []


def test_sqlite_removes_what_a_killed_put_left(sqlite: RDBStorage, tmp_path: Path) -> None:
    run, variant = _run_and_variant(sqlite)
    sqlite.put_checkpoint(run, variant, key="k", step=1, files={"w": b"1"})
    folder = _folder(tmp_path)
    (kept,) = folder.iterdir()
    other = f"run{run}-variant{variant + 10}-{'0' * 64}"  # another variant's: kept
    for stray in (f"run{run}-variant{variant}-{'f' * 64}", f".{kept.name}.abc123", other):
        (folder / stray).write_bytes(b"left by a killed put")
    sqlite.put_checkpoint(run, variant, key="k", step=2, files={"w": b"2"})
    (newest,) = (p for p in folder.iterdir() if p.name != other)
    assert newest.read_bytes() == b"2"
    found = sqlite.get_checkpoint(run, variant)
    assert found is not None and found.step == 2


def test_sqlite_a_changed_or_missing_file_is_a_clear_error(
    sqlite: RDBStorage, tmp_path: Path
) -> None:
    run, variant = _run_and_variant(sqlite)
    sqlite.put_checkpoint(run, variant, key="k", step=3, files=checkpoint_files(3))
    (kept,) = _folder(tmp_path).iterdir()
    data = bytearray(kept.read_bytes())
    data[1000] ^= 0x01
    kept.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=r"checkpoint of variant .* is corrupt"):
        sqlite.get_checkpoint(run, variant)
    kept.unlink()
    with pytest.raises(StorageError, match=r"checkpoint of variant .* is missing"):
        sqlite.get_checkpoint(run, variant)
    assert sqlite.get_checkpoint(run, variant, key="another") is None  # its bytes are not read
    sqlite.put_checkpoint(run, variant, key="k", step=4, files={"w": b"4"})  # replaced: fine
    found = sqlite.get_checkpoint(run, variant)
    assert found is not None and dict(found.files) == {"w": b"4"}


def test_sqlite_deleting_a_run_removes_its_files_and_no_other_runs(
    sqlite: RDBStorage, tmp_path: Path
) -> None:
    runs = [_run_and_variant(sqlite, f"r{i}") for i in range(11)]  # run 1 and run 10
    for run, variant in runs:
        sqlite.put_checkpoint(run, variant, key="k", step=run, files={"w": b"%d" % run})
    folder = _folder(tmp_path)
    (folder / f".run1-variant{runs[0][1]}-{'a' * 64}.xyz").write_bytes(b"half")
    sqlite.delete_run(1)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 10 and not any(n.lstrip(".").startswith("run1-") for n in names)
    found = sqlite.get_checkpoint(10, runs[9][1])
    assert found is not None and dict(found.files) == {"w": b"10"}


def _fails(fn: Callable[[], object]) -> Callable[[], None]:
    def block() -> None:
        fn()
        raise RuntimeError("rolled back")

    return block


def test_sqlite_a_rolled_back_drop_or_deletion_keeps_the_file_and_a_commit_removes_it(
    sqlite: RDBStorage, tmp_path: Path
) -> None:
    run, variant = _run_and_variant(sqlite)
    sqlite.put_checkpoint(run, variant, key="k", step=1, files=checkpoint_files(1))
    folder = _folder(tmp_path)
    (kept,) = folder.iterdir()
    for undone in (lambda: sqlite.drop_checkpoint(run, variant), lambda: sqlite.delete_run(run)):
        with pytest.raises(RuntimeError, match="rolled back"):
            sqlite.atomically(_fails(undone))
        assert list(folder.iterdir()) == [kept]  # the row still names it: still there
        found = sqlite.get_checkpoint(run, variant)
        assert found is not None and dict(found.files) == checkpoint_files(1)
    assert sqlite.atomically(lambda: sqlite.drop_checkpoint(run, variant))
    assert list(folder.iterdir()) == []  # committed: the bytes are gone
    sqlite.put_checkpoint(run, variant, key="k", step=2, files={"w": b"2"})
    sqlite.atomically(lambda: sqlite.delete_run(run))
    assert list(folder.iterdir()) == []


def test_sqlite_a_rolled_back_put_leaves_no_file(sqlite: RDBStorage, tmp_path: Path) -> None:
    run, variant = _run_and_variant(sqlite)
    sqlite.put_checkpoint(run, variant, key="k", step=1, files={"w": b"1"})
    folder = _folder(tmp_path)
    (kept,) = folder.iterdir()

    def two_puts() -> None:  # the second replaces the first's uncommitted row
        sqlite.put_checkpoint(run, variant, key="k", step=2, files={"w": b"2"})
        sqlite.put_checkpoint(run, variant, key="k", step=3, files={"w": b"3"})

    with pytest.raises(RuntimeError, match="rolled back"):
        sqlite.atomically(_fails(two_puts))
    assert list(folder.iterdir()) == [kept]
    found = sqlite.get_checkpoint(run, variant)
    assert found is not None and dict(found.files) == {"w": b"1"}
    sqlite.atomically(two_puts)  # committed: only the last one's file is left
    (newest,) = folder.iterdir()
    assert newest.read_bytes() == b"3"


def test_an_in_memory_database_keeps_the_bytes_in_the_row() -> None:
    storage = RDBStorage("sqlite://")
    try:
        run, variant = _run_and_variant(storage)
        storage.put_checkpoint(run, variant, key="k", step=1, files={"a": b"x", "b": b"yz"})
        assert [d for *_, d in _rows(storage)] == [b"xyz"]
        found = storage.get_checkpoint(run, variant)
        assert found is not None and dict(found.files) == {"a": b"x", "b": b"yz"}
    finally:
        storage.close()


# -- a process killed while it replaces its checkpoint -----------------------------------------
_PUTTER = """
import random, sys
from hyperagents.storages import RDBStorage
storage = RDBStorage(sys.argv[1])
run, variant = int(sys.argv[2]), int(sys.argv[3])
step = 0
while True:
    step += 1
    data = random.Random(step).randbytes(3_000_000)
    storage.put_checkpoint(run, variant, key="k", step=step, files={"w": data, "s": b"%d" % step})
    print(step, flush=True)
"""


def _killed_while_putting(url: str, run: int, variant: int) -> int:
    """Start a process that replaces the checkpoint again and again, SIGKILL it in the middle
    of a put, and return the last step it said it stored."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_PUTTER), url, str(run), str(variant)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    said = [int(proc.stdout.readline()) for _ in range(3)]
    time.sleep(0.05)  # somewhere in a later put
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=60)
    said += [int(line) for line in rest.split()]
    return said[-1]


def _check_whole_after_a_kill(storage: RDBStorage, url: str) -> None:
    run, variant = _run_and_variant(storage)
    last = _killed_while_putting(url, run, variant)
    found = storage.get_checkpoint(run, variant)
    assert found is not None and found.step in (last, last + 1)  # the one before, or the new
    assert dict(found.files) == {
        "w": random.Random(found.step).randbytes(3_000_000),
        "s": b"%d" % found.step,
    }
    storage.put_checkpoint(run, variant, key="k", step=0, files={"w": b"after"})


def test_sqlite_a_kill_mid_put_leaves_a_whole_checkpoint(
    sqlite: RDBStorage, tmp_path: Path
) -> None:
    _check_whole_after_a_kill(sqlite, f"sqlite:///{tmp_path / 'h.db'}")
    (only,) = _folder(tmp_path).iterdir()  # what the kill left is gone with the next put
    assert only.read_bytes() == b"after"


# -- PostgreSQL: large objects -------------------------------------------------------------------
@pytest.mark.postgres
def test_postgres_keeps_one_large_object_per_variant(postgres: RDBStorage) -> None:
    run, variant = _run_and_variant(postgres)
    other_run, other = _run_and_variant(postgres, "other")
    postgres.put_checkpoint(other_run, other, key="k", step=1, files={"w": b"kept"})
    for step in range(10):
        postgres.put_checkpoint(run, variant, key="k", step=step, files=checkpoint_files(step))
        assert count_large_objects(postgres) == 2  # the replaced one was unlinked
    rows = _rows(postgres)
    assert all(oid is not None and data is None for *_, oid, data in rows)  # not in the rows
    found = postgres.get_checkpoint(run, variant)
    assert found is not None and dict(found.files) == checkpoint_files(9)
    assert postgres.drop_checkpoint(run, variant)
    assert count_large_objects(postgres) == 1
    postgres.put_checkpoint(run, variant, key="k", step=1, files={"w": b"1"})
    postgres.delete_run(run)
    assert count_large_objects(postgres) == 1  # the other run's
    postgres.delete_run(other_run)
    assert count_large_objects(postgres) == 0


@pytest.mark.postgres
def test_postgres_a_failed_put_leaves_no_large_object(postgres: RDBStorage) -> None:
    run, variant = _run_and_variant(postgres)
    postgres.put_checkpoint(run, variant, key="k", step=1, files={"w": b"1"})

    def replace_then_fail() -> None:
        postgres.put_checkpoint(run, variant, key="k", step=2, files=checkpoint_files(2))
        raise RuntimeError("died")

    with pytest.raises(RuntimeError):
        postgres.atomically(replace_then_fail)
    assert count_large_objects(postgres) == 1
    found = postgres.get_checkpoint(run, variant)
    assert found is not None and found.step == 1


@pytest.mark.postgres
def test_postgres_detects_a_changed_large_object(postgres: RDBStorage) -> None:
    run, variant = _run_and_variant(postgres)
    postgres.put_checkpoint(run, variant, key="k", step=1, files=checkpoint_files(1))
    ((*_, oid, _),) = _rows(postgres)
    with postgres._engine.begin() as conn:
        query = sa.text("SELECT lo_put(CAST(:oid AS oid), 100, :b)")
        conn.execute(query, {"oid": oid, "b": b"\x00\x01\x02"})
    with pytest.raises(StorageError, match=r"checkpoint of variant .* is corrupt"):
        postgres.get_checkpoint(run, variant)


@pytest.mark.postgres
def test_postgres_a_kill_mid_put_leaves_a_whole_checkpoint(
    postgres: RDBStorage, fresh_postgres_url: str
) -> None:
    _check_whole_after_a_kill(postgres, fresh_postgres_url)
    time.sleep(0.5)  # the server ends the killed process's transaction
    assert count_large_objects(postgres) == 1  # none orphaned by the kill


# -- migration 0012_checkpoints ------------------------------------------------------------------
def test_0012_the_downgrade_drops_checkpoints_and_the_upgrade_brings_them_back(
    db_url: str, tmp_path: Path
) -> None:
    storage = RDBStorage(db_url)
    run, variant = _run_and_variant(storage)
    storage.put_checkpoint(run, variant, key="k", step=5, files=checkpoint_files(5))
    storage.close()
    migrate_url(db_url, "0011_compact", down=True)
    engine = sa.create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            assert "checkpoints" not in sa.inspect(conn).get_table_names()
            if conn.dialect.name == "postgresql":
                objects = sa.text("SELECT count(*) FROM pg_largeobject_metadata")
                assert conn.execute(objects).scalar_one() == 0  # unlinked, not orphaned
    finally:
        engine.dispose()
    folder = tmp_path / "test.db.artifacts" / "checkpoints"
    if db_url.startswith("sqlite"):  # left by the downgrade (it could roll back): unread
        assert len(list(folder.iterdir())) == 1
    storage = RDBStorage(db_url)  # upgraded again on open
    try:
        assert not folder.exists()  # the upgrade deleted what no row of its table names
        assert storage.get_checkpoint(run, variant) is None
        storage.put_checkpoint(run, variant, key="k", step=6, files={"w": b"6"})
        found = storage.get_checkpoint(run, variant)
        assert found is not None and (found.step, dict(found.files)) == (6, {"w": b"6"})
    finally:
        storage.close()

"""Artifacts of :class:`RDBStorage` where they live: the file store beside a SQLite file
(written before the row commits, checked on every read, reused after a crash), the rows of an
in-memory database, PostgreSQL large objects (chunked, unlinked with their row); and migration
0008_artifacts from a database made before it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hyperagents.exceptions import StorageError
from hyperagents.program import Program
from hyperagents.storages import RDBStorage
from hyperagents.storages._rdb import normalise_url
from hyperagents.storages._rdb._artifacts import CHUNK, sqlite_artifact_dir
from hyperagents.storages._rdb._packing import pack_blob, unpack_blob
from hyperagents.storages._rdb.storage import ALEMBIC_DIR
from hyperagents.testing._storage_artifacts import LARGE, model_program
from postgres_helpers import count_large_objects

WEIGHTS = "model/model.safetensors"


def _rows(storage: RDBStorage) -> dict[str, tuple[int, bytes, int | None]]:
    with storage._engine.connect() as conn:
        query = sa.text("SELECT sha256, size, data, lo_oid FROM blobs")
        return {h: (int(s), bytes(d), o) for h, s, d, o in conn.execute(query)}


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RDBStorage]:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'h.db'}")
    yield storage
    storage.close()


def _store_path(tmp_path: Path, digest: str) -> Path:
    return tmp_path / "h.db.artifacts" / digest[:2] / digest


# -- SQLite: the file store ---------------------------------------------------------------------
def test_sqlite_keeps_artifacts_in_files_beside_the_database(
    sqlite: RDBStorage, tmp_path: Path
) -> None:
    program = model_program()
    sqlite.put_program(program)
    rows = _rows(sqlite)
    for path in ("data/large.bin", WEIGHTS):
        digest = program.blobs[path]
        stored = _store_path(tmp_path, digest)
        assert stored.read_bytes() == program[path]
        assert stored.stat().st_mode & 0o777 == 0o600
        assert rows[digest] == (len(program[path]), b"\x03", None)  # the row names it only
    assert (tmp_path / "h.db.artifacts").stat().st_mode & 0o777 == 0o700
    # Small files and the model's config stay in their rows.
    config = program.blobs["model/config.json"]
    assert unpack_blob(rows[config][1]) == program["model/config.json"]
    assert not list((tmp_path / "h.db.artifacts").rglob(".*"))  # no temporary file left


def test_a_flipped_byte_in_the_store_is_a_clear_error(sqlite: RDBStorage, tmp_path: Path) -> None:
    program = model_program()
    sqlite.put_program(program)
    stored = _store_path(tmp_path, program.blobs[WEIGHTS])
    data = bytearray(stored.read_bytes())
    data[100] ^= 0x01
    stored.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=f"'{WEIGHTS}' is corrupt in the artifact store"):
        sqlite.get_program(program.id)
    stored.unlink()
    with pytest.raises(StorageError, match=f"'{WEIGHTS}' is missing from the artifact store"):
        sqlite.get_program(program.id)
    # Another program with that content finds its row, so the file is not written again:
    # reading that program says the same, never gives wrong bytes.
    other = model_program("other")
    sqlite.put_program(other)
    with pytest.raises(StorageError, match="missing from the artifact store"):
        sqlite.get_program(other.id)


def test_a_corrupt_orphan_is_replaced_when_its_content_is_stored(
    sqlite: RDBStorage, tmp_path: Path
) -> None:
    program = model_program()
    stored = _store_path(tmp_path, program.blobs["data/large.bin"])
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"\x00" * LARGE)  # same size, wrong content: left by a broken disk
    sqlite.put_program(program)
    assert stored.read_bytes() == program["data/large.bin"]
    assert sqlite.get_program(program.id) == program


_CRASH = """
import os, sys
from hyperagents.storages import RDBStorage
from hyperagents.storages._rdb._artifacts import FileArtifacts, LargeObjects
from hyperagents.testing._storage_artifacts import model_program

for store in (FileArtifacts, LargeObjects):
    original = store.put
    def put(self, conn, digest, data, original=original):
        oid = original(self, conn, digest, data)
        if len(data) > 1_000_000:  # the large file is in place: die before the row commits
            os._exit(9)
        return oid
    store.put = put
RDBStorage(sys.argv[1]).put_program(model_program())
"""


def _killed_while_storing(url: str) -> None:
    """Store :func:`model_program` in another process killed once the large file is in the
    artifact store, before its transaction commits."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CRASH), url], env=env, timeout=120, check=False
    )
    assert done.returncode == 9


def test_a_crash_before_the_commit_leaves_an_orphan_that_is_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    RDBStorage(url).close()  # the schema exists before the crash
    _killed_while_storing(url)
    program = model_program()
    orphan = _store_path(tmp_path, program.blobs["data/large.bin"])
    assert orphan.read_bytes() == program["data/large.bin"]  # written whole, fsynced
    storage = RDBStorage(url)
    try:
        assert not storage.has_program(program.id)
        assert storage.count_blobs() == 0  # no row names a file
        inode = orphan.stat().st_ino
        storage.put_program(program)
        assert orphan.stat().st_ino == inode  # checked and reused, not written again
        assert storage.get_program(program.id) == program
    finally:
        storage.close()


@pytest.mark.parametrize(
    ("url", "folder"),
    [
        ("sqlite:///runs/h.db", "runs/h.db.artifacts"),  # resolved once, at open
        ("sqlite:///file:runs/h.db?uri=true&mode=ro", "runs/h.db.artifacts"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:m?mode=memory&cache=shared&uri=true", None),
    ],
)
def test_where_a_sqlite_database_keeps_its_artifacts(url: str, folder: str | None) -> None:
    found = sqlite_artifact_dir(make_url(url))
    assert found == (None if folder is None else Path(folder).resolve())


def test_an_in_memory_database_keeps_artifacts_in_its_rows() -> None:
    storage = RDBStorage("sqlite://")
    try:
        program = model_program()
        storage.put_program(program)
        rows = _rows(storage)
        stored = rows[program.blobs["data/large.bin"]][1]
        assert unpack_blob(stored) == program["data/large.bin"]
        assert storage.get_program(program.id) == program
    finally:
        storage.close()


# -- PostgreSQL: large objects ------------------------------------------------------------------
@pytest.mark.postgres
def test_postgres_keeps_artifacts_incount_large_objects(postgres: RDBStorage) -> None:
    program = model_program()
    assert LARGE > 2 * CHUNK  # written and read in several chunks
    postgres.put_program(program)
    rows = _rows(postgres)
    for path in ("data/large.bin", WEIGHTS):
        size, data, oid = rows[program.blobs[path]]
        assert (size, data) == (len(program[path]), b"\x03")
        assert oid is not None
    assert count_large_objects(postgres) == 2
    assert postgres.get_program(program.id) == program
    postgres.put_program(model_program("other"))  # shares both: no new large object
    assert count_large_objects(postgres) == 2


@pytest.mark.postgres
def test_postgres_detects_a_changed_large_object(postgres: RDBStorage) -> None:
    program = model_program()
    postgres.put_program(program)
    oid = _rows(postgres)[program.blobs[WEIGHTS]][2]
    flipped = bytes([program[WEIGHTS][100] ^ 0x01])
    with postgres._engine.begin() as conn:
        conn.execute(
            sa.text("SELECT lo_put(CAST(:oid AS oid), 100, :b)"), {"oid": oid, "b": flipped}
        )
    with pytest.raises(StorageError, match=f"'{WEIGHTS}' is corrupt in the artifact store"):
        postgres.get_program(program.id)
    with postgres._engine.begin() as conn:
        conn.execute(sa.text("SELECT lo_unlink(CAST(:oid AS oid))"), {"oid": oid})
    with pytest.raises(StorageError, match=f"'{WEIGHTS}' is missing from the artifact store"):
        postgres.get_program(program.id)


@pytest.mark.postgres
def test_postgres_unlinks_a_large_object_with_its_row(postgres: RDBStorage) -> None:
    postgres.put_program(model_program())
    assert count_large_objects(postgres) == 2
    with postgres._engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM blobs WHERE lo_oid IS NOT NULL"))
    assert count_large_objects(postgres) == 0


@pytest.mark.postgres
def test_postgres_a_crash_before_the_commit_leaves_nothing(
    postgres: RDBStorage, fresh_postgres_url: str
) -> None:
    _killed_while_storing(fresh_postgres_url)
    program = model_program()
    assert not postgres.has_program(program.id)
    assert postgres.count_blobs() == 0
    assert count_large_objects(postgres) == 0  # the large objects went with the transaction
    postgres.put_program(program)
    assert postgres.get_program(program.id) == program


# -- migration 0008_artifacts -------------------------------------------------------------------
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


def _store_as_0007(url: str, program: Program) -> None:
    """Store ``program`` as revision 0007 did: every file in its row."""
    blobs = sa.table("blobs", sa.column("sha256"), sa.column("size"), sa.column("data"))
    programs = sa.table(
        "programs", sa.column("id"), sa.column("manifest", sa.JSON()), sa.column("created_at")
    )
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            for path, digest in program.blobs.items():
                row = {"sha256": digest, "size": len(program[path])}
                conn.execute(blobs.insert(), row | {"data": pack_blob(program[path])})
            row = {"id": program.id, "manifest": program.manifest, "created_at": "2026-12-01"}
            conn.execute(programs.insert(), row)
    finally:
        engine.dispose()


def test_a_database_made_before_0008_upgrades_and_reads_its_programs(db_url: str) -> None:
    _migrate(db_url, "0007")
    old = model_program("old", large=1_500_000)
    _store_as_0007(db_url, old)
    storage = RDBStorage(db_url)  # upgrades to the head
    try:
        assert storage.get_program(old.id) == old  # its files stay in their rows
        new = model_program("new", seed=3)
        storage.put_program(new)
        assert storage.get_program(new.id) == new
        assert _rows(storage)[new.blobs["data/large.bin"]][1] == b"\x03"
    finally:
        storage.close()


def test_the_downgrade_puts_artifacts_back_into_their_rows(db_url: str) -> None:
    program = model_program()
    storage = RDBStorage(db_url)
    storage.put_program(program)
    storage.close()
    _migrate(db_url, "0007", down=True)
    engine = sa.create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("blobs")}
            query = sa.text("SELECT data FROM blobs WHERE sha256 = :h")
            stored = conn.execute(query, {"h": program.blobs["data/large.bin"]}).scalar_one()
            if conn.dialect.name == "postgresql":
                objects = sa.text("SELECT count(*) FROM pg_largeobject_metadata")
                assert conn.execute(objects).scalar_one() == 0
    finally:
        engine.dispose()
    assert "lo_oid" not in columns
    assert unpack_blob(stored) == program["data/large.bin"]
    storage = RDBStorage(db_url)  # and up again: the program reads back
    try:
        assert storage.get_program(program.id) == program
    finally:
        storage.close()

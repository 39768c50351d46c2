"""RDBStorage specifics: migrations, concurrent opening, durability, URLs, SQLite settings."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

import hyperagents
from hyperagents.exceptions import StorageError, StorageURLError
from hyperagents.program import Program
from hyperagents.storages import (
    DEFAULT_STORAGE_URL,
    InMemoryStorage,
    LLMCallSpec,
    RDBStorage,
    RunSpec,
    RunStatus,
    VariantState,
    get_storage,
)
from hyperagents.storages._rdb import HEAD_REVISION, normalise_url
from hyperagents.storages._rdb.models import Base
from hyperagents.storages._rdb.storage import ALEMBIC_DIR

EXPECTED_TABLES = {
    "alembic_version",
    "runs",
    "banned_variants",
    "blobs",
    "programs",
    "write_receipts",
    "variants",
    "evaluations",
    "events",
    "llm_calls",
    "run_engines",
    "services",
    "service_requests",
    "service_events",
    "checkpoints",
}
SRC_DIR = str(Path(hyperagents.__file__).resolve().parents[1])


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC_DIR, env.get("PYTHONPATH")) if p)
    return env


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


@pytest.fixture
def storage(db_url: str) -> Iterator[RDBStorage]:
    storage = RDBStorage(db_url)
    yield storage
    storage.close()


def _script_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


# -- migrations ---------------------------------------------------------------------------------
def test_head_revision_constant_matches_the_scripts() -> None:
    assert _script_head() == HEAD_REVISION


def test_migrations_create_exactly_the_expected_schema(storage: RDBStorage, db_url: str) -> None:
    engine = create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == EXPECTED_TABLES
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            assert [v[0] for v in versions] == [HEAD_REVISION]
            # The ORM models and the migrations describe the same schema.
            from alembic.autogenerate import compare_metadata
            from alembic.migration import MigrationContext

            context = MigrationContext.configure(conn, opts={"compare_type": False})
            assert compare_metadata(context, Base.metadata) == []
            variant_uniques = inspect(conn).get_unique_constraints("variants")
            assert {tuple(u["column_names"]) for u in variant_uniques} == {("run_id", "generation")}
            indexes = {tuple(i["column_names"]) for i in inspect(conn).get_indexes("variants")}
            assert ("run_id", "state") in indexes
            eval_uniques = inspect(conn).get_unique_constraints("evaluations")
            assert {tuple(u["column_names"]) for u in eval_uniques} == {("variant_id", "stage")}
            event_indexes = {tuple(i["column_names"]) for i in inspect(conn).get_indexes("events")}
            assert ("run_id", "id") in event_indexes
    finally:
        engine.dispose()


def test_reopening_does_not_run_migrations(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    RDBStorage(db_url).close()
    import alembic.command

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("migrations ran on an up-to-date database")

    monkeypatch.setattr(alembic.command, "upgrade", fail)
    storage = RDBStorage(db_url)
    assert storage.list_runs() == []
    storage.close()


def test_newer_schema_is_refused(db_url: str) -> None:
    RDBStorage(db_url).close()
    engine = create_engine(normalise_url(db_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(StorageError, match="9999_future"):
        RDBStorage(db_url)


def test_processes_opening_a_fresh_database_at_once(db_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    body = f"""
        import os, sys, time
        print("ready", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.001)
        from hyperagents.storages import RDBStorage, RunSpec
        storage = RDBStorage({db_url!r})
        storage.create_run(RunSpec(name="run-" + sys.argv[1], task="t", mode="m", seed=0,
                                   config={{}}, seed_program_id="x"))
        storage.close()
        print("done", flush=True)
    """
    procs = [
        subprocess.Popen(
            [*_script(body), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_subprocess_env(),
        )
        for i in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    storage = RDBStorage(db_url)
    assert sorted(r.name for r in storage.list_runs()) == [f"run-{i}" for i in range(4)]
    storage.close()
    engine = create_engine(normalise_url(db_url))
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert [v[0] for v in versions] == [HEAD_REVISION]


# -- durability ---------------------------------------------------------------------------------
def test_data_survives_closing_and_reopening(db_url: str) -> None:
    program = Program({"task_agent.py": "X = 1\n", "data.bin": b"\x00\x01"})
    storage = RDBStorage(db_url)
    storage.put_program(program)
    run_id = storage.create_run(
        RunSpec(name="r", task="t", mode="m", seed=1, config={"a": [1]}, seed_program_id=program.id)
    )
    storage.set_run_status(run_id, RunStatus.RUNNING)
    v = storage.create_variant(run_id=run_id, generation=0, parent_id=None, program_id=program.id)
    storage.add_evaluation(
        variant_id=v, stage="val", split="val", score=0.5, n=1, results=[{"id": 1}], metrics={}
    )
    storage.add_event(run_id, "note", data={"x": 1})
    storage.close()

    reopened = RDBStorage(db_url)
    run = reopened.get_run_by_name("r")
    assert run.status is RunStatus.RUNNING and run.config == {"a": [1]}
    assert reopened.get_program(program.id) == program
    assert reopened.get_variant(v).scores == {"val": 0.5}
    assert [e.kind for e in reopened.list_events(run_id)] == ["note"]
    reopened.close()


def test_writes_survive_sigkill(db_url: str) -> None:
    body = f"""
        import time
        from hyperagents.program import Program
        from hyperagents.storages import EventSpec, RDBStorage, RunSpec, VariantState
        storage = RDBStorage({db_url!r})
        program = Program({{"task_agent.py": "X = 2\\n"}})
        storage.put_program(program)
        run_id = storage.create_run(RunSpec(name="killed", task="t", mode="m", seed=0,
                                            config={{}}, seed_program_id=program.id))
        v = storage.create_variant(run_id=run_id, generation=0, parent_id=None,
                                   owner="me", program_id=program.id, event=EventSpec("asked"))
        storage.add_evaluation(variant_id=v, stage="train", split="train", score=0.25, n=1,
                               results=[{{"id": 1}}], metrics={{"wall": 1}})
        storage.set_variant_state(v, VariantState.COMPLETE, expected=VariantState.RUNNING,
                                  release=True)
        print(v, flush=True)
        while True:  # keep the engine and its connections open until killed
            time.sleep(1)
    """
    proc = subprocess.Popen(
        _script(body),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_subprocess_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.isdigit(), proc.stderr.read() if proc.stderr else line
        variant_id = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    storage = RDBStorage(db_url)
    variant = storage.get_variant(variant_id)
    assert variant.state is VariantState.COMPLETE
    assert variant.scores == {"train": 0.25}
    assert variant.owner is None
    assert [e.kind for e in storage.list_events(variant.run_id)] == ["asked"]
    assert len(storage.list_evaluations(variant_id)) == 1
    storage.close()


def test_storage_can_be_pickled(storage: RDBStorage) -> None:
    storage.create_run(
        RunSpec(name="r", task="t", mode="m", seed=0, config={}, seed_program_id="x")
    )
    clone = pickle.loads(pickle.dumps(storage))
    try:
        assert isinstance(clone, RDBStorage)
        assert clone.url == storage.url
        assert [r.name for r in clone.list_runs()] == ["r"]
    finally:
        clone.close()


# -- SQLite settings ----------------------------------------------------------------------------
def test_sqlite_connection_settings(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    with storage._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    storage.close()


def test_sqlite_ids_are_not_reused_after_delete(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    first = storage.create_run(
        RunSpec(name="a", task="t", mode="m", seed=0, config={}, seed_program_id="x")
    )
    event = storage.add_event(first, "e")
    storage.delete_run(first)
    second = storage.create_run(
        RunSpec(name="a", task="t", mode="m", seed=0, config={}, seed_program_id="x")
    )
    assert second > first
    assert storage.add_event(second, "e") > event
    storage.close()


def test_naive_sqlite_times_are_read_as_utc(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    run_id = storage.create_run(
        RunSpec(name="a", task="t", mode="m", seed=0, config={}, seed_program_id="x")
    )
    with storage._engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT created_at FROM runs").scalar()
    assert isinstance(raw, str) and "+" not in raw  # stored naive (UTC)
    created = storage.get_run(run_id).created_at
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0
    assert created.replace(tzinfo=None).isoformat(sep=" ") == raw
    storage.close()


# -- URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("foo://x", "foo"),
        ("notaurl", "malformed"),
        ("", "empty"),
        ("sqlite:////nonexistent-hyperagents-dir/sub/x.db", "does not exist"),
        ("postgresql+pg8000://user@localhost/db", "not installed"),
        ("postgresql://user:secret@127.0.0.1:1/db", "cannot open"),
    ],
)
def test_bad_urls_raise_one_line_storage_url_errors(url: str, fragment: str) -> None:
    with pytest.raises(StorageURLError) as info:
        get_storage(url)
    message = str(info.value)
    assert "\n" not in message
    assert fragment in message
    assert "secret" not in message
    assert len(message) < 300


def test_missing_postgres_driver_is_a_url_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StorageURLError, match="hyperagents\\[postgres\\]") as info:
        get_storage("postgresql://u@localhost/db")
    assert "\n" not in str(info.value)


def test_sqlite_path_that_is_a_directory_is_a_url_error(tmp_path: Path) -> None:
    with pytest.raises(StorageURLError) as info:
        get_storage(f"sqlite:///{tmp_path}")
    assert "\n" not in str(info.value)


def test_postgres_urls_use_psycopg() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_get_storage_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("memory", "memory://", ":memory:", " MEMORY "):
        assert isinstance(get_storage(name), InMemoryStorage)
    existing = InMemoryStorage()
    assert get_storage(existing) is existing

    monkeypatch.setenv("HYPERAGENTS_STORAGE", f"sqlite:///{tmp_path / 'env.db'}")
    from_env = get_storage()
    assert isinstance(from_env, RDBStorage)
    assert from_env.url.endswith("env.db")
    from_env.close()
    assert (tmp_path / "env.db").exists()

    monkeypatch.delenv("HYPERAGENTS_STORAGE")
    monkeypatch.chdir(tmp_path)
    default = get_storage()
    assert isinstance(default, RDBStorage)
    assert default.url == DEFAULT_STORAGE_URL
    default.close()
    assert (tmp_path / "hyperagents.db").exists()


def test_sqlite_memory_url() -> None:
    storage = get_storage("sqlite://")
    run_id = storage.create_run(
        RunSpec(name="m", task="t", mode="m", seed=0, config={}, seed_program_id="x")
    )
    assert storage.get_run(run_id).name == "m"
    storage.close()


def test_a_local_folder_is_beside_a_sqlite_file_and_none_in_memory(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")
    try:
        assert storage.local_folder("cache") == tmp_path.resolve() / "run.db.cache"
    finally:
        storage.close()
    memory = RDBStorage("sqlite:///:memory:")
    try:
        assert memory.local_folder("cache") is None
    finally:
        memory.close()
    assert InMemoryStorage().local_folder("cache") is None


def test_repr_masks_the_password() -> None:
    url = "sqlite:///relative.db"
    assert repr(normalise_url(url)) != ""
    masked = normalise_url("postgresql://user:secret@h/db").render_as_string(hide_password=True)
    assert "secret" not in masked


@pytest.mark.postgres
def test_postgres_repr_masks_the_password(fresh_postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(fresh_postgres_url).set(password="s3cret").render_as_string(hide_password=False)
    storage = RDBStorage(url)  # the test server trusts local connections: any password works
    try:
        assert "s3cret" not in repr(storage) and "s3cret" not in str(storage)
        assert "***" in repr(storage)
        assert storage.url == url  # the real URL stays available (for worker processes)
    finally:
        storage.close()


def test_opening_an_up_to_date_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    RDBStorage(url).close()
    code = (
        "import sys; from hyperagents.storages import RDBStorage; "
        f"s = RDBStorage({url!r}); s.list_runs(); s.close(); "
        "assert 'alembic' not in sys.modules, 'alembic imported'; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_rdb_storage_is_importable_lazily() -> None:
    import hyperagents.storages as storages

    assert storages.RDBStorage is RDBStorage
    with pytest.raises(AttributeError):
        _ = storages.NoSuchThing  # type: ignore[attr-defined]


def test_opening_an_up_to_date_database_loads_no_migration_machinery(tmp_path: Path) -> None:
    """The fast path: a database at the newest revision is opened without importing Alembic
    (what made opening slow), in a fresh interpreter where nothing imported it before."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    RDBStorage(url).close()
    body = f"""
        import sys
        from hyperagents.storages import RDBStorage
        RDBStorage({url!r}).close()
        print(sorted(name for name in sys.modules if name.split(".")[0] == "alembic"))
    """
    done = subprocess.run(
        _script(body), capture_output=True, text=True, env=_subprocess_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_database_at_an_older_revision_is_upgraded_in_place(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(ALEMBIC_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO runs (name, task, mode, seed, config, seed_program_id, status, "
                "attrs, created_at, updated_at) VALUES ('old', 'review', 'hyperagent', 0, '{}', "
                "'x', 0, '{}', '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
            )
        )
    engine.dispose()
    storage = RDBStorage(url)
    try:
        run = storage.get_run_by_name("old")
        storage.add_llm_call(run.id, LLMCallSpec(key="k", provider="p", model="m", request={}))
        assert len(storage.list_llm_calls(run.id)) == 1
    finally:
        storage.close()
    engine = create_engine(normalise_url(url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            HEAD_REVISION
        )
    engine.dispose()

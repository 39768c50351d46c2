"""RDBStorage and a database that blips: transient errors are retried (a change applied once,
a COMMIT cut off included), others are not; the engine slot moved out of ``attrs`` by
migration 0003."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from hyperagents.exceptions import StorageError, StorageURLError
from hyperagents.storages import RDBStorage, RunSpec, RunStatus
from hyperagents.storages._rdb import _transactions as rdb_transactions
from hyperagents.storages._rdb import normalise_url
from hyperagents.storages._rdb.storage import ALEMBIC_DIR, RETRY_ENV_VAR
from hyperagents.testing.storage import make_program
from postgres_helpers import blip_database, postgres_databases


def _new_run(storage: RDBStorage, name: str = "r") -> int:
    program = make_program()
    storage.put_program(program)
    return storage.create_run(
        RunSpec(name=name, task="t", mode="m", seed=0, config={}, seed_program_id=program.id)
    )


def _fail_statements(
    storage: RDBStorage, starts: str, times: int, message: str = "database is locked"
) -> list[str]:
    """Make the next ``times`` statements starting with ``starts`` fail as SQLite does; return
    the list the failures are logged in."""
    failed: list[str] = []

    @event.listens_for(storage._engine, "before_cursor_execute")
    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(starts) and len(failed) < times:
            failed.append(statement)
            raise sqlite3.OperationalError(message)

    return failed


class FakeClock:
    """Stands in for the ``time`` module of the storage: ``sleep`` advances ``monotonic`` at
    once, and every pause is kept, so the retry schedule is checked without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(rdb_transactions, "time", fake)
    return fake


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[RDBStorage]:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'blips.db'}", retry_seconds=10)
    yield storage
    storage.close()


def test_a_locked_database_is_retried_and_the_write_applied_once(
    sqlite_storage: RDBStorage,
) -> None:
    run_id = _new_run(sqlite_storage)
    failed = _fail_statements(sqlite_storage, "INSERT INTO EVENTS", 3)
    sqlite_storage.add_event(run_id, "note", "once")
    assert len(failed) == 3
    assert [e.message for e in sqlite_storage.list_events(run_id)] == ["once"]
    # A failure in the middle of a transaction rolls all of it back before the retry.
    failed = _fail_statements(sqlite_storage, "UPDATE RUNS", 2)
    assert sqlite_storage.set_run_status(run_id, RunStatus.RUNNING, expected=RunStatus.CREATED)
    assert len(failed) == 2 and sqlite_storage.get_run(run_id).status is RunStatus.RUNNING
    failed = _fail_statements(sqlite_storage, "SELECT", 2)
    assert sqlite_storage.get_run(run_id).name == "r"
    assert len(failed) == 2


def test_the_engine_claim_is_retried_safely(sqlite_storage: RDBStorage) -> None:
    run_id = _new_run(sqlite_storage)
    failed = _fail_statements(sqlite_storage, "UPDATE RUNS", 2)
    assert sqlite_storage.claim_run_engine(run_id, "a", expected=None)
    assert len(failed) == 2 and sqlite_storage.get_run(run_id).engine == "a"
    failed = _fail_statements(sqlite_storage, "UPDATE RUNS", 1)
    assert sqlite_storage.release_run_engine(run_id, "a", status=RunStatus.COMPLETE)
    assert len(failed) == 1
    run = sqlite_storage.get_run(run_id)
    assert (run.engine, run.status) == (None, RunStatus.COMPLETE)


def test_retrying_is_bounded(tmp_path: Path, clock: FakeClock) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'busy.db'}", retry_seconds=0.4)
    try:
        run_id = _new_run(storage)
        failed = _fail_statements(storage, "INSERT INTO EVENTS", 10_000)
        with pytest.raises(StorageError, match=r"database is locked.*after 0\.4 s of retries"):
            storage.add_event(run_id, "never")
        assert sum(clock.sleeps) == pytest.approx(0.4)  # it waited out its budget, no more
        assert 2 <= len(failed) < 20 and len(failed) == len(clock.sleeps) + 1
        # Exponential backoff, not a busy loop: each pause doubles (the last one is cut short).
        assert all(b == pytest.approx(2 * a) for a, b in pairwise(clock.sleeps[:-1]))
        assert storage.list_events(run_id) == []
    finally:
        storage.close()


def test_mistakes_are_not_retried(sqlite_storage: RDBStorage, clock: FakeClock) -> None:
    run_id = _new_run(sqlite_storage)
    failed = _fail_statements(sqlite_storage, "INSERT INTO EVENTS", 5, "no such table: events")
    with pytest.raises(StorageError, match="no such table"):
        sqlite_storage.add_event(run_id, "x")
    assert len(failed) == 1 and clock.sleeps == []  # raised at once, without a pause


def test_the_retry_time_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'conf.db'}"
    monkeypatch.setenv(RETRY_ENV_VAR, "0")
    storage = RDBStorage(url)
    try:
        run_id = _new_run(storage)
        failed = _fail_statements(storage, "INSERT INTO EVENTS", 5)
        with pytest.raises(StorageError, match="locked"):
            storage.add_event(run_id, "x")
        assert len(failed) == 1  # no retries
    finally:
        storage.close()
    monkeypatch.setenv(RETRY_ENV_VAR, "-1")
    with pytest.raises(StorageURLError, match="retry"):
        RDBStorage(url)
    with pytest.raises(StorageURLError, match="retry"):
        RDBStorage(url, retry_seconds=float("nan"))


# -- PostgreSQL: connections dropped, a database refusing connections, a COMMIT cut off --------
@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_databases() as make:
        yield make()


@pytest.mark.postgres
def test_dropped_connections_and_a_refusing_database_are_waited_out(pg_url: str) -> None:
    storage = RDBStorage(pg_url, retry_seconds=20)
    try:
        run_id = _new_run(storage)
        blip_database(pg_url, 0.0)  # pooled connections die: the next call reconnects
        assert storage.get_run(run_id).name == "r"
        refusing, reopening = threading.Event(), threading.Event()
        blipper = threading.Thread(
            target=blip_database,
            args=(pg_url, 1.5),
            kwargs={"refusing": refusing, "reopening": reopening},
        )
        blipper.start()
        assert refusing.wait(timeout=120)
        # A call made while the database refuses connections waits for it: it can only
        # succeed once the database is being reopened.
        storage.add_event(run_id, "during")
        assert reopening.is_set()
        assert storage.claim_run_engine(run_id, "a", expected=None)
        blipper.join(timeout=120)
        assert [e.kind for e in storage.list_events(run_id)] == ["during"]
        assert storage.get_run(run_id).engine == "a"
    finally:
        storage.close()


def _cut_commits(monkeypatch: pytest.MonkeyPatch, storage: RDBStorage) -> list[int]:
    """Make the next COMMIT apply but lose its reply (a dropped connection); return the list
    each cut is logged in (clear it to cut the next COMMIT again)."""
    import psycopg

    dialect = storage._engine.dialect
    real_commit = dialect.do_commit
    cut: list[int] = []

    def commit_then_lose_the_reply(dbapi_connection: Any) -> None:
        real_commit(dbapi_connection)  # applied, but the client never hears of it
        if not cut:
            cut.append(1)
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dialect, "do_commit", commit_then_lose_the_reply)
    return cut


@pytest.mark.postgres
def test_a_commit_cut_off_is_applied_once_and_answers_as_it_committed(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hyperagents.storages import VariantState

    storage = RDBStorage(pg_url, retry_seconds=10)
    try:
        program = make_program()
        storage.put_program(program)
        cut = _cut_commits(monkeypatch, storage)
        run_id = storage.create_run(
            RunSpec(  # an insert with a unique name: not a DuplicateError
                name="once", task="t", mode="m", seed=0, config={}, seed_program_id=program.id
            )
        )
        assert cut and [r.name for r in storage.list_runs()] == ["once"]
        cut.clear()
        storage.update_run_attrs(run_id, {"a": 1})  # a merge: applying it twice is harmless
        assert cut and storage.get_run(run_id).attrs == {"a": 1}
        cut.clear()
        event_id = storage.add_event(run_id, "once")  # an insert: the id of the one event
        assert cut and [(e.id, e.kind) for e in storage.list_events(run_id)] == [(event_id, "once")]
        cut.clear()
        variant = storage.create_variant(
            run_id=run_id, generation=0, parent_id=None, program_id=program.id
        )
        assert cut and [v.id for v in storage.list_variants(run_id)] == [variant]
        cut.clear()
        # A compare-and-set that committed answers True, though applying it again would not.
        assert storage.set_variant_state(
            variant, VariantState.COMPLETE, expected=VariantState.RUNNING
        )
        assert cut and storage.get_variant(variant).state is VariantState.COMPLETE
        cut.clear()
        assert storage.claim_run_engine(run_id, "me", expected=None)
        assert cut and storage.get_run(run_id).engine == "me"
    finally:
        storage.close()


@pytest.mark.postgres
def test_a_write_whose_receipt_exists_is_not_applied_again(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receipt is the last guard: an attempt that meets the receipt of one that committed
    (e.g. a COMMIT still finishing when the retry looked) returns that attempt's result."""
    storage = RDBStorage(pg_url, retry_seconds=10)
    try:
        run_id = _new_run(storage)
        first = storage.add_event(run_id, "first")
        token = "f" * 32
        monkeypatch.setattr(rdb_transactions.uuid, "uuid4", lambda: type("U", (), {"hex": token})())
        with storage._engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO write_receipts (token, result, created_at) VALUES (:t, :r, now())"
                ),
                {"t": token, "r": str(first)},
            )
        assert storage.add_event(run_id, "again") == first
        assert [e.kind for e in storage.list_events(run_id)] == ["first"]
    finally:
        storage.close()


def test_sqlite_writes_need_no_receipts(tmp_path: Path) -> None:
    """A failed SQLite COMMIT did not commit: its writes cost no receipt."""
    storage = RDBStorage(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        run_id = _new_run(storage)
        storage.add_event(run_id, "e")
        with storage._engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM write_receipts")).scalar_one() == 0
    finally:
        storage.close()


# -- migration 0003 -------------------------------------------------------------------------
def test_the_engine_slot_moves_out_of_attrs(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(ALEMBIC_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        for name, attrs in (
            ("held", '{"engine": "host|1|2|abc", "engine_heartbeat": 1700000000.5, "x": 1}'),
            ("let-go", '{"target_generations": 3}'),
        ):
            conn.execute(
                text(
                    "INSERT INTO runs (name, task, mode, seed, config, seed_program_id, status, "
                    "attrs, created_at, updated_at) VALUES (:name, 'toy', 'hyperagent', 0, '{}', "
                    "'x', 1, :attrs, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')"
                ),
                {"name": name, "attrs": attrs},
            )
    engine.dispose()
    storage = RDBStorage(url)
    try:
        held = storage.get_run_by_name("held")
        assert held.attrs == {"x": 1}
        assert held.engine == "host|1|2|abc"
        assert held.engine_heartbeat_at == datetime.fromtimestamp(1700000000.5, UTC)
        let_go = storage.get_run_by_name("let-go")
        assert let_go.attrs == {} and let_go.engine is None  # the target moved on (0005)
        assert let_go.target_generations == 3
        assert storage.claim_run_engine(held.id, "next", expected="host|1|2|abc")
    finally:
        storage.close()


# -- atomically: retried as a whole, one receipt for all its calls ----------------------------
def _a_step(storage: RDBStorage, run_id: int, calls: list[int]) -> int:
    """A transaction of several write-once calls; ``calls`` counts the attempts."""
    from hyperagents.storages import EventSpec, VariantState

    calls.append(1)
    variant = storage.create_variant(
        run_id=run_id, generation=0, parent_id=None, event=EventSpec("created")
    )
    assert storage.set_variant_state(
        variant, VariantState.EVALUATING, expected=VariantState.RUNNING
    )
    storage.add_event(run_id, "stepped", variant_id=variant)
    return variant


def test_a_transient_error_inside_atomically_retries_all_of_it(
    sqlite_storage: RDBStorage, clock: FakeClock
) -> None:
    run_id = _new_run(sqlite_storage)
    failed = _fail_statements(sqlite_storage, "INSERT INTO EVENTS", 3)
    calls: list[int] = []
    variant = sqlite_storage.atomically(lambda: _a_step(sqlite_storage, run_id, calls))
    # Each failure rolled back the attempt's earlier calls; the last attempt applied once.
    assert len(failed) == 3 and len(calls) == 4 and len(clock.sleeps) == 3
    assert [v.id for v in sqlite_storage.list_variants(run_id)] == [variant]
    assert [e.kind for e in sqlite_storage.list_events(run_id)] == ["created", "stepped"]


def test_a_transient_error_caught_inside_atomically_is_retried_too(
    sqlite_storage: RDBStorage, clock: FakeClock
) -> None:
    run_id = _new_run(sqlite_storage)
    failed = _fail_statements(sqlite_storage, "INSERT INTO EVENTS", 1)
    calls: list[int] = []

    def swallowing() -> None:
        calls.append(1)
        with contextlib.suppress(StorageError):
            sqlite_storage.add_event(run_id, "maybe")
        sqlite_storage.update_run_attrs(run_id, {"n": len(calls)})

    sqlite_storage.atomically(swallowing)
    assert len(failed) == 1 and len(calls) == 2
    assert [e.kind for e in sqlite_storage.list_events(run_id)] == ["maybe"]
    assert sqlite_storage.get_run(run_id).attrs == {"n": 2}


def test_a_nested_transient_error_retries_the_outermost(
    sqlite_storage: RDBStorage, clock: FakeClock
) -> None:
    run_id = _new_run(sqlite_storage)
    failed = _fail_statements(sqlite_storage, "INSERT INTO EVENTS", 1)
    calls: list[int] = []

    def outer() -> None:
        calls.append(1)
        sqlite_storage.update_run_attrs(run_id, {"n": len(calls)})
        with contextlib.suppress(StorageError):
            sqlite_storage.atomically(lambda: sqlite_storage.add_event(run_id, "inner"))

    sqlite_storage.atomically(outer)
    assert len(failed) == 1 and len(calls) == 2
    assert [e.kind for e in sqlite_storage.list_events(run_id)] == ["inner"]


def test_atomically_takes_the_sqlite_write_lock_once(sqlite_storage: RDBStorage) -> None:
    run_id = _new_run(sqlite_storage)
    statements: list[str] = []

    @event.listens_for(sqlite_storage._engine, "before_cursor_execute")
    def log(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    sqlite_storage.atomically(lambda: _a_step(sqlite_storage, run_id, []))
    assert statements.count("BEGIN") == 1 and "SAVEPOINT" not in statements


@pytest.mark.postgres
def test_a_commit_cut_off_in_atomically_is_applied_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = RDBStorage(pg_url, retry_seconds=10)
    try:
        run_id = _new_run(storage)
        with storage._engine.connect() as conn:
            receipts_before = conn.execute(text("SELECT count(*) FROM write_receipts")).scalar()
        cut = _cut_commits(monkeypatch, storage)
        calls: list[int] = []
        variant = storage.atomically(lambda: _a_step(storage, run_id, calls))
        # The COMMIT applied but its reply was lost: the transaction's receipt shows it, so it
        # is not applied again and the answer is the one of the attempt that committed.
        assert cut and calls == [1]
        assert [v.id for v in storage.list_variants(run_id)] == [variant]
        assert storage.get_variant(variant).state.name == "EVALUATING"
        assert [e.kind for e in storage.list_events(run_id)] == ["created", "stepped"]
        with storage._engine.connect() as conn:
            receipts = conn.execute(text("SELECT count(*) FROM write_receipts")).scalar()
        assert receipts == receipts_before + 1  # one for the transaction, none per call
    finally:
        storage.close()


@pytest.mark.postgres
def test_a_commit_lost_before_it_applied_in_atomically_is_retried(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    storage = RDBStorage(pg_url, retry_seconds=10)
    try:
        run_id = _new_run(storage)
        dialect = storage._engine.dialect
        real_commit = dialect.do_commit
        lost: list[int] = []

        def lose_the_commit(dbapi_connection: Any) -> None:
            if not lost:
                lost.append(1)
                dbapi_connection.rollback()  # never applied, and the client cannot tell
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            real_commit(dbapi_connection)

        monkeypatch.setattr(dialect, "do_commit", lose_the_commit)
        calls: list[int] = []
        variant = storage.atomically(lambda: _a_step(storage, run_id, calls))
        assert lost and calls == [1, 1]  # no receipt: the whole function ran again
        assert [v.id for v in storage.list_variants(run_id)] == [variant]
        assert [e.kind for e in storage.list_events(run_id)] == ["created", "stepped"]
    finally:
        storage.close()

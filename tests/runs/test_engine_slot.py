"""A killed or doubled engine never corrupts a run: the target is stored with the run, one engine
drives it (claimed by compare-and-set), and a database blip is waited out."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import (
    BaseStorage,
    InMemoryStorage,
    RDBStorage,
    RunRecord,
    RunSpec,
    RunStatus,
    get_storage,
)
from postgres_helpers import blip_database, fresh_database_url, postgres_databases

from toytask import ToyTask

GENERATIONS = 3
SEED = 4


def _create(storage: BaseStorage, *, name: str = "race", **config: Any) -> Run:
    return Run.create(
        task=ToyTask(),
        name=name,
        seed=SEED,
        storage=storage,
        config=RunConfig.parse({"subset_size": 10, **config}),
        generations=GENERATIONS,
    )


def _fingerprint(variants: list[Any]) -> list[tuple[Any, ...]]:
    generation_of = {v.id: v.generation for v in variants}
    return [
        (
            v.generation,
            generation_of.get(v.parent_id) if v.parent_id else None,
            v.state,
            v.program_id,
            tuple(sorted(v.scores.items())),
            v.reason,
        )
        for v in variants
    ]


@pytest.fixture(scope="module")
def reference() -> list[tuple[Any, ...]]:
    """The archive of an uninterrupted run with one engine."""
    run = _create(InMemoryStorage())
    assert run.optimize().status is RunStatus.COMPLETE
    return _fingerprint(run.variants())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a new database on the PostgreSQL test server."""
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


def _load(name: str, url: str) -> Run:
    """The run as another engine opens it: its own storage connection, its own owner token."""
    return Run.load(name, storage=get_storage(url), task=ToyTask())


def _run_kinds(record: RunRecord, storage: BaseStorage) -> list[str]:
    return [e.kind for e in storage.list_events(record.id) if e.kind.startswith("run.")]


# -- the target is stored with the run ---------------------------------------------------------
def test_a_run_created_with_a_target_resumes_to_it() -> None:
    store = InMemoryStorage()
    created = _create(store)
    assert created.record().target_generations == GENERATIONS
    assert created.record().status is RunStatus.CREATED  # never optimized: "killed"
    resumed = Run.load("race", storage=store, task=ToyTask())
    record = resumed.optimize()
    assert record.status is RunStatus.COMPLETE
    assert max(v.generation for v in resumed.variants()) == GENERATIONS
    # resume -g N still adds N to the stored target.
    assert resumed.target_after(2) == GENERATIONS + 2


def test_an_engine_killed_inside_create_resumes_to_the_target() -> None:
    class DiesAfterTheRun(InMemoryStorage):
        def create_variant(self, **kwargs: Any) -> int:
            raise KeyboardInterrupt  # the engine is killed right after the run is written

    store = DiesAfterTheRun()
    with pytest.raises(KeyboardInterrupt):
        _create(store)
    record = store.get_run_by_name("race")
    assert record.target_generations == GENERATIONS
    store.create_variant = InMemoryStorage.create_variant.__get__(store)  # type: ignore[method-assign]
    resumed = Run.load("race", storage=store, task=ToyTask())
    assert resumed.optimize().status is RunStatus.COMPLETE
    assert [v.generation for v in resumed.variants()] == list(range(GENERATIONS + 1))


def test_a_bad_target_is_refused() -> None:
    with pytest.raises(ConfigError, match="generations"):
        Run.create(task=ToyTask(), storage=InMemoryStorage(), generations=-1)


# -- one engine per run --------------------------------------------------------------------------
def _gate_first_claim(run: Run, barrier: threading.Barrier) -> None:
    """Hold ``run``'s first claim until the other engine has also read the run and judged it
    free: both then compare-and-set at once, the race that a read-then-write check loses."""
    storage = run.storage
    real = storage.claim_run_engine
    calls = []

    def gated(run_id: int, owner: str, *, expected: str | None) -> bool:
        if not calls:
            calls.append(owner)
            barrier.wait(timeout=60)
        return real(run_id, owner, expected=expected)

    storage.claim_run_engine = gated  # type: ignore[method-assign]


def test_racing_engines_exactly_one_drives(db_url: str, reference: list[tuple[Any, ...]]) -> None:
    setup = get_storage(db_url)
    _create(setup)
    engines = {"a": _load("race", db_url), "b": _load("race", db_url)}
    assert engines["a"].owner != engines["b"].owner
    barrier = threading.Barrier(2)
    for engine in engines.values():
        _gate_first_claim(engine, barrier)
    outcomes: dict[str, Any] = {}
    left_by_loser: dict[str, RunRecord] = {}

    def drive(key: str) -> None:
        try:
            outcomes[key] = engines[key].optimize()
        except RunStateError as exc:
            outcomes[key] = exc
            left_by_loser[key] = engines[key].record()

    threads = [threading.Thread(target=drive, args=(key,)) for key in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    refused = [k for k, v in outcomes.items() if isinstance(v, RunStateError)]
    assert len(refused) == 1, outcomes
    loser, winner = refused[0], next(k for k in engines if k not in refused)
    assert "claimed it first" in str(outcomes[loser])
    # The loser left the run as it found it: held by the winner, never marked failed.
    seen = left_by_loser[loser]
    assert seen.engine == engines[winner].owner
    assert seen.status in (RunStatus.CREATED, RunStatus.RUNNING)
    final = setup.get_run_by_name("race")
    assert outcomes[winner].status is RunStatus.COMPLETE
    assert (final.status, final.engine) == (RunStatus.COMPLETE, None)
    assert _run_kinds(final, setup) == ["run.created", "run.started", "run.completed"]
    variants = setup.list_variants(final.id)
    assert not any(v.owner == engines[loser].owner for v in variants)
    assert _fingerprint(variants) == reference


def test_a_second_engine_is_refused_while_the_first_drives(
    db_url: str, reference: list[tuple[Any, ...]]
) -> None:
    first = _create(get_storage(db_url))
    holding, release = threading.Event(), threading.Event()

    def hold(_run: Run, _variant: Any) -> None:  # the first engine pauses mid-run
        holding.set()
        release.wait(timeout=120)

    out: list[RunRecord] = []
    driver = threading.Thread(target=lambda: out.append(first.optimize(callbacks=[hold])))
    driver.start()
    try:
        assert holding.wait(timeout=120)
        before = first.record()
        assert (before.status, before.engine) == (RunStatus.RUNNING, first.owner)
        second = _load("race", db_url)  # the same process, another owner token
        with pytest.raises(RunStateError, match="another engine"):
            second.optimize()
        after = first.record()
        assert (after.status, after.engine) == (RunStatus.RUNNING, first.owner)
        assert _run_kinds(after, first.storage) == ["run.created", "run.started"]
    finally:
        release.set()
        driver.join(timeout=300)
    assert out and out[0].status is RunStatus.COMPLETE and out[0].engine is None
    assert _fingerprint(first.variants()) == reference


def test_an_engine_taken_over_lets_the_new_holder_be(caplog: pytest.LogCaptureFixture) -> None:
    run = _create(InMemoryStorage(), heartbeat_interval=0.05)
    holding, release = threading.Event(), threading.Event()

    def hold(_run: Run, _variant: Any) -> None:
        holding.set()
        release.wait(timeout=120)

    out: list[RunRecord] = []
    driver = threading.Thread(target=lambda: out.append(run.optimize(callbacks=[hold])))
    with caplog.at_level(logging.ERROR, logger="hyperagents"):
        driver.start()
        try:
            assert holding.wait(timeout=120)
            # Another engine judged this one dead (say, its heartbeat was late) and took over.
            assert run.storage.claim_run_engine(run.id, "elsewhere|1|1|x", expected=run.owner)
            deadline = time.monotonic() + 120  # the next heartbeat (0.05 s) notices it
            while "taken over" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            release.set()
            driver.join(timeout=300)
    assert "taken over" in caplog.text
    assert run.last_stop_reason == "taken over by another engine"
    record = run.record()
    # Its status and slot are the new holder's to write.
    assert (record.status, record.engine) == (RunStatus.RUNNING, "elsewhere|1|1|x")
    assert _run_kinds(record, run.storage) == ["run.created", "run.started"]


def test_one_run_object_drives_one_optimize_at_a_time() -> None:
    run = _create(InMemoryStorage())
    refused: list[RunStateError] = []

    def again(inner: Run, _variant: Any) -> None:
        try:
            inner.optimize()
        except RunStateError as exc:
            refused.append(exc)

    assert run.optimize(callbacks=[again]).status is RunStatus.COMPLETE
    assert refused and "driving" in str(refused[0])
    assert run.optimize().status is RunStatus.COMPLETE  # free again once it returned
    assert _run_kinds(run.record(), run.storage).count("run.started") == 2


def test_a_refused_engine_changes_nothing_even_before_the_seed_exists() -> None:
    store = InMemoryStorage()
    task = ToyTask()
    program_id = store.put_program(task.seed_program())
    run_id = store.create_run(
        RunSpec(
            name="bare",
            task="toy",
            mode="hyperagent",
            seed=0,
            config={},
            seed_program_id=program_id,
        )
    )
    assert store.claim_run_engine(run_id, "elsewhere|1|1|x", expected=None)
    before = store.get_run(run_id)
    with pytest.raises(RunStateError, match="another engine"):
        Run.load("bare", storage=store, task=task).optimize(generations=1)
    assert store.get_run(run_id) == before
    assert store.list_variants(run_id) == []  # the seed is healed by the engine only
    assert store.list_events(run_id) == []


def test_the_status_label_says_whether_an_engine_drives_the_run() -> None:
    import dataclasses
    from datetime import UTC, datetime, timedelta

    from hyperagents.runs import EngineState, engine_state, status_label
    from hyperagents.runs._owner import new_owner_token

    store = InMemoryStorage()
    base = _create(store).record()
    now = datetime.now(UTC)
    live, stale = now, now - timedelta(seconds=120)  # the default grace is 60 s
    me, gone = new_owner_token(), "elsewhere|1|1|x"
    cases = [
        (RunStatus.RUNNING, me, live, EngineState.LIVE, "running"),
        (RunStatus.RUNNING, gone, live, EngineState.LIVE, "running"),
        (RunStatus.RUNNING, gone, stale, EngineState.DEAD, "running (engine dead)"),
        (RunStatus.RUNNING, None, None, EngineState.NONE, "running (no engine)"),
        (RunStatus.STOPPED, me, live, EngineState.LIVE, "stopping"),
        (RunStatus.STOPPED, None, None, EngineState.NONE, "stopped"),
        (RunStatus.COMPLETE, gone, stale, EngineState.DEAD, "complete"),
    ]
    for status, engine, beat, state, label in cases:
        record = dataclasses.replace(base, status=status, engine=engine, engine_heartbeat_at=beat)
        assert (engine_state(record), status_label(record)) == (state, label), (status, engine)


# -- database blips --------------------------------------------------------------------------------
def test_a_run_survives_a_locked_database(tmp_path: Path, reference: list[tuple[Any, ...]]) -> None:
    url = f"sqlite:///{tmp_path / 'blips.db'}"
    storage = RDBStorage(url, retry_seconds=30)
    run = _create(storage)
    count = {"statements": 0, "failed": 0}

    @event.listens_for(storage._engine, "before_cursor_execute")
    def now_and_then(*_args: Any) -> None:
        count["statements"] += 1
        # Every 13th statement meets a busy database: more than the longest transaction has
        # (9, the improvement's), so that a transaction tried again can get through.
        if count["statements"] % 13 == 0:
            count["failed"] += 1
            raise sqlite3.OperationalError("database is locked")

    assert run.optimize().status is RunStatus.COMPLETE
    assert count["failed"] > 10
    assert _fingerprint(run.variants()) == reference


def _blip_while_running(url: str, run_id: int, generations: tuple[int, ...]) -> list[RunStatus]:
    """Blip the database once generation ``g`` was asked, for each of ``generations``; return
    the run's status seen just before each blip."""
    storage = RDBStorage(url)
    seen: list[RunStatus] = []
    try:
        for generation in generations:
            deadline = time.monotonic() + 120
            while storage.get_variant_by_generation(run_id, generation) is None:
                if time.monotonic() > deadline:
                    return seen
                time.sleep(0.02)
            seen.append(storage.get_run(run_id).status)
            blip_database(url, 1.0)
    finally:
        storage.close()
    return seen


@pytest.mark.postgres
def test_a_run_survives_postgresql_going_away(reference: list[tuple[Any, ...]]) -> None:
    with postgres_databases() as make:
        url = make()
        run = _create(RDBStorage(url, retry_seconds=30))
        seen: list[RunStatus] = []
        blipper = threading.Thread(
            target=lambda: seen.extend(_blip_while_running(url, run.id, (1, 2)))
        )
        blipper.start()
        record = run.optimize()
        blipper.join(timeout=120)
        archive = _fingerprint(run.variants())
        run.storage.close()
    assert seen == [RunStatus.RUNNING, RunStatus.RUNNING]  # both blips hit the running engine
    assert record.status is RunStatus.COMPLETE, run.last_stop_reason
    assert archive == reference

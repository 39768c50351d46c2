"""Several engines on one run, in one process (in-memory or PostgreSQL storage): they share the
run's target, each generation is done once, the lead's place is taken over when it is gone,
and a SQLite storage refuses a join."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.runs import ResumeRequest, Run, RunConfig, engine_command
from hyperagents.storages import (
    BaseStorage,
    EngineStatus,
    InMemoryStorage,
    RDBStorage,
    RunStatus,
    VariantState,
)
from postgres_helpers import postgres_databases

from toytask import ToyTask

GENERATIONS = 12


@pytest.fixture(params=["memory", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest) -> Iterator[BaseStorage]:
    if request.param == "memory":
        yield InMemoryStorage()
        return
    with postgres_databases() as make:
        store = RDBStorage(make())
        try:
            yield store
        finally:
            store.close()


def _create(storage: BaseStorage, **config: object) -> Run:
    settings = {"subset_size": 10, "parallel_generations": 4, **config}
    return Run.create(
        task=ToyTask(),
        name="crew",
        storage=storage,
        config=RunConfig.parse(settings),
        generations=GENERATIONS,
    )


def _load(storage: BaseStorage) -> Run:
    return Run.load("crew", storage=storage, task=ToyTask())


def _drive_all(runs: list[Run], **kwargs: object) -> list[BaseException]:
    errors: list[BaseException] = []

    def drive(run: Run) -> None:
        try:
            run.optimize(join=True, workers=2, **kwargs)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(r,)) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    return errors


def _assert_done_once(storage: BaseStorage, run: Run) -> None:
    variants = storage.list_variants(run.id)
    assert [v.generation for v in variants] == list(range(GENERATIONS + 1))
    assert all(v.state.is_terminal for v in variants)
    for v in variants:
        stages = [e.stage for e in storage.list_evaluations(v.id)]
        assert len(stages) == len(set(stages))  # no stage evaluated twice
    evaluated = [v for v in variants if v.state is VariantState.COMPLETE]
    assert evaluated and all("train_subset" in v.scores for v in evaluated)


def test_three_engines_share_one_target(storage: BaseStorage) -> None:
    lead = _create(storage)
    runs = [lead, _load(storage), _load(storage)]
    assert _drive_all(runs) == []
    _assert_done_once(storage, lead)
    record = storage.get_run(lead.id)
    assert record.status is RunStatus.COMPLETE and record.engine is None
    ended = storage.list_events(lead.id, kinds=["run.completed", "run.stopped", "run.failed"])
    assert [e.kind for e in ended] == ["run.completed"]  # recorded once, by the lead
    engines = storage.list_engines(lead.id)
    assert sorted(e.owner for e in engines) == sorted(r.owner for r in runs)
    assert all(e.status is EngineStatus.LEFT and e.workers == 2 for e in engines)
    # Who ran what is recorded: an engine of the crew and one of its worker slots.
    children = [v for v in storage.list_variants(lead.id) if v.generation and v.program_id]
    assert children and all(v.engine in {r.owner for r in runs} for v in children)
    assert all(v.worker in (0, 1) for v in children)
    assert len(Counter(v.engine for v in children)) >= 2  # the work was shared
    for v in children:
        for evaluation in storage.list_evaluations(v.id):
            assert evaluation.engine in {r.owner for r in runs} and evaluation.worker in (0, 1)


def test_a_joining_member_goes_on_to_the_stored_target(storage: BaseStorage) -> None:
    lead = _create(storage)
    member = _load(storage)
    assert lead._engine._lease.try_lead(empty=True)  # a live lead holds the run
    with pytest.raises(ConfigError, match="joining engine goes on to the run's target"):
        member.optimize(3, join=True)
    assert storage.list_engines(lead.id) == []  # nothing recorded
    storage.release_run_engine(lead.id, lead.owner)


def test_a_member_takes_over_when_the_lead_is_gone(storage: BaseStorage) -> None:
    lead = _create(storage)
    gone = "some-host|1|1|deadbeef"  # another host's engine that stopped beating long ago
    assert storage.claim_run_engine(lead.id, gone, expected=None)
    storage.register_engine(lead.id, gone, host="some-host", pid=1, workers=1)
    member = _load(storage)
    config = member.config.model_copy(update={"heartbeat_grace": 0.01})
    member._engine._ctx.config = config  # the dead lead's heartbeat is stale at once
    time.sleep(0.05)
    member.optimize(join=True, workers=2)
    _assert_done_once(storage, lead)
    assert storage.get_run(lead.id).status is RunStatus.COMPLETE
    lost = [e for e in storage.list_engines(lead.id) if e.owner == gone]
    assert lost[0].status is EngineStatus.LOST


def test_sqlite_refuses_a_join(tmp_path: Path) -> None:
    store = RDBStorage(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        run = _create(store)
        before = store.get_run(run.id)
        with pytest.raises(RunStateError, match="SQLite"):
            run.optimize(join=True)
        after = store.get_run(run.id)
        assert (after.status, after.engine, after.target_generations) == (
            before.status,
            None,
            GENERATIONS,
        )
        assert store.list_engines(run.id) == []
    finally:
        store.close()


def test_a_plain_engine_and_members_share_a_run(storage: BaseStorage) -> None:
    """An engine started without join=True finds others' generations in the archive and
    goes on with them (it reads the archive again)."""
    lead = _create(storage)
    member = _load(storage)
    errors: list[BaseException] = []
    started = threading.Event()

    def drive(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    def plain() -> None:
        started.set()
        lead.optimize(workers=2)

    first = threading.Thread(target=drive, args=(plain,))
    first.start()
    started.wait()
    # The plain engine must hold the run before the member joins: a plain engine that finds
    # the run already claimed refuses it ("claimed it first"), which is right but not this test.
    deadline = time.monotonic() + 60
    while storage.get_run(lead.id).engine is None and time.monotonic() < deadline and not errors:
        time.sleep(0.01)
    second = threading.Thread(target=drive, args=(lambda: member.optimize(join=True, workers=2),))
    second.start()
    first.join(300)
    second.join(300)
    assert errors == []
    _assert_done_once(storage, lead)


def test_an_engine_marked_lost_that_still_beats_is_active_again(storage: BaseStorage) -> None:
    run = _create(storage)
    crew = run._engine._lease.crew
    crew.register(3)
    assert storage.leave_engine(run.id, run.owner, status=EngineStatus.LOST)
    crew.beat()
    (row,) = storage.list_engines(run.id)
    assert (row.status, row.workers) == (EngineStatus.ACTIVE, 3)
    crew.leave()
    assert storage.list_engines(run.id)[0].status is EngineStatus.LEFT


def test_a_background_engine_joins_with_resume_join(storage: BaseStorage) -> None:
    run = _create(storage)
    command = engine_command(run.record(), ResumeRequest(run=run.id, workers=2, join=True))
    assert command[-5:] == ["--workers", "2", "--join", "--", "crew"]
    plain = engine_command(run.record(), ResumeRequest(run=run.id))
    assert "--join" not in plain

"""The arena's work within a round is stored step by step: a round cut short (a sandbox failure,
an interrupt) goes on from its stored steps on resume, none done twice and none lost, and ends
as an arena never stopped; the agents' work runs on several workers without changing a result."""

from __future__ import annotations

import _thread
import json
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arena_helpers import RecordingSandbox, arena_outcome, step_keys
from hyperagents.arena import ArenaConfig, ArenaResult, run_arena
from hyperagents.arena._steps import StepLog, Workers
from hyperagents.exceptions import SandboxError, StorageError
from hyperagents.program import Program
from hyperagents.storages import BaseStorage, InMemoryStorage, RDBStorage, RunSpec, RunStatus
from postgres_helpers import fresh_database_url

SMALL = {"rounds": 3, "proposals": 12, "children": 2, "heldout_size": 40, "sandbox": "process"}
TOURNAMENT = SMALL | {"rounds": 2, "code_agents": 2, "test_agents": 2, "replace_every": 1}


def _play(store: BaseStorage, sandbox: Any, workers: int = 1, **values: Any) -> ArenaResult:
    config = ArenaConfig(**(SMALL | values))
    return run_arena(config, storage=store, sandbox=sandbox, workers=workers, name="a")


@pytest.fixture(scope="module")
def whole() -> tuple[dict[str, Any], int]:
    """The arena played through, never stopped, and the sandbox calls it made."""
    store, sandbox = InMemoryStorage(), RecordingSandbox(kind="process")
    result = _play(store, sandbox)
    return arena_outcome(store, result.run_id), sandbox.done


def _interrupt_at(call: int) -> Any:
    def at_call(n: int) -> None:
        if n == call:
            _thread.interrupt_main()  # as Ctrl-C does

    return at_call


def _only_round_in_flight(store: BaseStorage, run_id: int, going: int) -> None:
    """The steps stored are those of the round in flight, each once: the finished rounds'
    were deleted with their records."""
    keys = step_keys(store, run_id)
    assert keys and max(Counter(keys).values()) == 1
    assert {key.split("/")[0] for key in keys} == {str(going)}


def _no_steps_left(store: BaseStorage, run_id: int) -> None:
    """Every round is recorded: none of its steps is kept."""
    assert step_keys(store, run_id) == []


def test_a_round_cut_by_a_sandbox_failure_goes_on_from_its_stored_steps(
    whole: tuple[dict[str, Any], int],
) -> None:
    outcome, calls = whole
    store = InMemoryStorage()
    cut = RecordingSandbox(fail_at=10, kind="process")  # in round 2
    with pytest.raises(SandboxError):
        _play(store, cut)
    assert [e.data["round"] for e in store.list_events(1, kinds=["arena.round"])] == [1]
    _only_round_in_flight(store, 1, 2)  # the work of round 2 done before the failure is kept
    again = RecordingSandbox(kind="process")
    result = _play(store, again)
    assert arena_outcome(store, result.run_id) == outcome
    assert cut.done + again.done == calls  # nothing done twice, nothing lost
    _no_steps_left(store, result.run_id)


def test_an_interrupt_finishes_the_step_in_flight_and_resume_does_the_rest(
    whole: tuple[dict[str, Any], int],
) -> None:
    outcome, calls = whole
    store = InMemoryStorage()
    # As the 10th sandbox call starts (round 2), the main thread is interrupted (Ctrl-C).
    interrupted = RecordingSandbox(kind="process", at_call=_interrupt_at(10))
    with pytest.raises(KeyboardInterrupt):
        _play(store, interrupted)
    record = store.get_run(1)
    assert record.status is RunStatus.STOPPED and not record.engine
    assert [e.data["round"] for e in store.list_events(1, kinds=["arena.round"])] == [1]
    _only_round_in_flight(store, 1, 2)
    # The step in flight finished, and none started after it (the signal came in call 10).
    assert interrupted.done == interrupted.calls == 10
    resumed = RecordingSandbox(kind="process")
    result = _play(store, resumed)
    assert arena_outcome(store, result.run_id) == outcome
    assert interrupted.done + resumed.done == calls  # ...and was stored: none done again
    _no_steps_left(store, result.run_id)


def test_a_round_and_the_deletion_of_its_steps_are_one_transaction(
    whole: tuple[dict[str, Any], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, calls = whole
    store = InMemoryStorage()
    delete = store.delete_events

    def killed(run_id: int, **kinds: Any) -> int:
        delete(run_id, **kinds)
        raise StorageError("killed while round 1 is recorded (test)")

    monkeypatch.setattr(store, "delete_events", killed)
    cut = RecordingSandbox(kind="process")
    with pytest.raises(StorageError):
        _play(store, cut)
    monkeypatch.undo()
    # Neither the round's record nor the deletion of its steps was committed.
    assert store.list_events(1, kinds=["arena.round"]) == []
    _only_round_in_flight(store, 1, 1)
    again = RecordingSandbox(kind="process")
    result = _play(store, again)
    assert arena_outcome(store, result.run_id) == outcome
    assert cut.done + again.done == calls  # round 1's steps were taken, none done twice
    _no_steps_left(store, result.run_id)


def test_steps_an_earlier_version_stored_as_blobs_are_taken_and_deleted(
    whole: tuple[dict[str, Any], int],
) -> None:
    outcome, calls = whole
    store = InMemoryStorage()
    cut = RecordingSandbox(fail_at=10, kind="process")
    with pytest.raises(SandboxError):
        _play(store, cut)
    steps = store.list_events(1, kinds=["arena.step"])
    assert steps and store.delete_events(1, kinds=["arena.step"]) == len(steps)
    for event in steps:  # as an earlier version stored them: the result in a blob
        text = json.dumps(event.data["value"], sort_keys=True, ensure_ascii=False)
        blob = store.put_program(Program({"step.json": text}))
        data = {"round": event.data["round"], "key": event.data["key"], "result": blob}
        store.add_event(1, "arena.step", event.message, data=data)
    again = RecordingSandbox(kind="process")
    result = _play(store, again)
    assert arena_outcome(store, result.run_id) == outcome
    assert cut.done + again.done == calls
    _no_steps_left(store, result.run_id)


def _chain(log: StepLog, name: str, started: list[str], signal_at: str | None) -> str:
    """An agent's chain of two steps; the first sends SIGINT to its own thread (a worker's,
    as the kernel may do) where ``signal_at`` names it."""

    def work(step: str) -> Any:
        def run() -> tuple[dict[str, Any], list[Any]]:
            started.append(step)
            if step == signal_at:
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            return {"step": step}, []

        return run

    for k in (1, 2):
        log.step(f"{name}/{k}", work(f"{name}/{k}"))
    return name


@pytest.mark.parametrize("workers", [1, 2])
def test_after_an_interrupt_no_step_starts_and_the_steps_done_are_stored(workers: int) -> None:
    store = InMemoryStorage()
    run_id = store.create_run(
        RunSpec(
            name="s", task="t", mode="arena", seed=0, config={},
            seed_program_id=store.put_program(Program({"a.py": ""})),
        )
    )  # fmt: skip
    log = StepLog(store, run_id)
    pool = Workers(log, workers)
    log.open(1, 0)
    started: list[str] = []
    agents = ["a", "b"][:workers]
    with pytest.raises(KeyboardInterrupt), pool.running():
        pool.map(lambda name: _chain(log, name, started, "a/1"), agents)
    # The signal came in a/1: its own next step never started, nor did b's after b/1.
    assert "a/2" not in started and "b/2" not in started
    assert step_keys(store, run_id) == [f"1/{step}" for step in started]  # all done, stored


def test_workers_run_agents_side_by_side_and_never_change_a_result() -> None:
    outcomes, calls = [], []
    for workers in (1, 3):
        store, sandbox = InMemoryStorage(), RecordingSandbox(kind="process")
        result = run_arena(
            ArenaConfig(**TOURNAMENT), storage=store, sandbox=sandbox, workers=workers
        )
        outcomes.append(arena_outcome(store, result.run_id))
        calls.append(sandbox.done)
        (engine,) = store.list_engines(result.run_id)
        assert engine.workers == workers
        _no_steps_left(store, result.run_id)
        assert (sandbox.most > 1) is (workers > 1)
    assert outcomes[0] == outcomes[1] and calls[0] == calls[1]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL database."""
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


def test_the_steps_are_stored_in_a_database_and_taken_from_it_after_a_failure(
    database: str, whole: tuple[dict[str, Any], int]
) -> None:
    outcome, calls = whole
    store = RDBStorage(database)
    try:
        cut = RecordingSandbox(fail_at=10, kind="process")
        with pytest.raises(SandboxError):
            _play(store, cut, workers=2)
        _only_round_in_flight(store, 1, 2)
    finally:
        store.close()
    store = RDBStorage(database)  # another process's view: what was committed
    try:
        again = RecordingSandbox(kind="process")
        result = _play(store, again, workers=2)
        assert arena_outcome(store, result.run_id) == outcome
        assert cut.done + again.done == calls
        _no_steps_left(store, result.run_id)
    finally:
        store.close()

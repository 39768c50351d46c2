"""``hold_run``: a run that a level's own loop drives holds its engine slot with the engine's
lease — it beats while held, a live holder elsewhere is refused and a silent one (its heartbeat
older than the grace period) is taken over, a stop request is seen between steps, and how the
drive ended is recorded with the slot given back."""

from __future__ import annotations

import time

import pytest

from hyperagents.exceptions import RunStateError
from hyperagents.program import Program
from hyperagents.runs import hold_run, request_stop
from hyperagents.storages import InMemoryStorage, RunSpec, RunStatus

ELSEWHERE = "another-host|4242|-|abcd1234"  # an engine on another host: only its beats count


def _run(store: InMemoryStorage) -> int:
    seed = store.put_program(Program({"loop.py": "pass\n"}))
    return store.create_run(
        RunSpec(name="held", task="t", mode="loop", seed=0, config={}, seed_program_id=seed)
    )


def _end_events(store: InMemoryStorage, run_id: int) -> list[tuple[str, str]]:
    return [
        (e.kind, e.message)
        for e in store.list_events(run_id)
        if e.kind in ("run.started", "run.completed", "run.stopped", "run.failed")
    ]


def test_the_holder_beats_and_gives_the_slot_back_saying_how_it_ended() -> None:
    store = InMemoryStorage()
    run_id = _run(store)
    with hold_run(store, run_id, started="loop", interval=0.05) as held:
        first = store.get_run(run_id).engine_heartbeat_at
        assert store.get_run(run_id).engine == held.owner
        time.sleep(0.3)
        record = store.get_run(run_id)
        assert record.status is RunStatus.RUNNING and record.engine_heartbeat_at > first
        assert held.stop_reason() is None
        held.end(RunStatus.COMPLETE, "done after step 3")
    record = store.get_run(run_id)
    assert record.status is RunStatus.COMPLETE and not record.engine
    assert record.elapsed_seconds >= 0.3
    assert _end_events(store, run_id) == [
        ("run.started", "loop"),
        ("run.completed", "done after step 3"),
    ]


def test_a_live_holder_is_refused_and_a_silent_one_is_taken_over() -> None:
    store = InMemoryStorage()
    run_id = _run(store)
    assert store.claim_run_engine(run_id, ELSEWHERE, expected=None)
    refused = pytest.raises(RunStateError, match="being driven by another engine")
    with refused, hold_run(store, run_id, started="loop", grace=60):
        pytest.fail("held a run another live engine holds")
    assert store.get_run(run_id).engine == ELSEWHERE and _end_events(store, run_id) == []
    time.sleep(0.2)  # its last beat is now older than a grace of 0.1 s
    with hold_run(store, run_id, started="loop", grace=0.1) as held:
        assert store.get_run(run_id).engine == held.owner
    assert store.get_run(run_id).status is RunStatus.COMPLETE


def test_a_stop_request_is_seen_between_steps_and_an_error_fails_the_drive() -> None:
    store = InMemoryStorage()
    run_id = _run(store)
    with hold_run(store, run_id, started="loop") as held:
        request_stop(store, store.get_run(run_id), who="test")
        reason = held.stop_reason()
        assert reason == "stopped by request"
        held.end(RunStatus.STOPPED, reason)
    record = store.get_run(run_id)
    assert record.status is RunStatus.STOPPED and not record.engine
    failing = pytest.raises(ValueError, match="broken step")
    with failing, hold_run(store, run_id, started="loop again"):
        raise ValueError("broken step")
    record = store.get_run(run_id)
    assert record.status is RunStatus.FAILED and not record.engine
    assert _end_events(store, run_id)[-1] == ("run.failed", "ValueError: broken step")

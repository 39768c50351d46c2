"""An arena holds its run's engine slot as the run engine does: one driver at a time (a second
is refused and changes nothing), a stop request (``hyperagents stop``, the dashboard's Stop)
ends it between rounds, recorded as stopped, and the common resume
(:meth:`RunService.resume <hyperagents.runs.RunService.resume>`) finishes it as one never
stopped, for a run of the level and for a ``hyperagents arena`` one alike."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from arena_helpers import level_variants, played_rounds
from hyperagents.arena import ArenaConfig, ArenaLevel, arena_series, run_arena
from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.runs import LevelDrive, ResumeRequest, RunService, run_engines
from hyperagents.storages import BaseStorage, InMemoryStorage, RunStatus, VariantRecord
from hyperagents.tasks import load_task

CONFIG = {"sandbox": "process"}
ROUNDS = 3
SMALL = {"rounds": ROUNDS, "proposals": 12, "children": 1, "heldout_size": 40, "sandbox": "process"}


def _drive(store: BaseStorage, **kwargs: Any) -> int:
    task = load_task("email_validation", {})
    record = ArenaLevel().drive(
        task=task, name="lv", seed=0, storage=store, config=CONFIG, generations=ROUNDS, **kwargs
    )
    return record.id


def _series(store: BaseStorage, run_id: int) -> list[dict[str, Any]]:
    """Each round's record without its duration."""
    return [{k: v for k, v in s.items() if k != "seconds"} for s in arena_series(store, run_id)]


def _kinds(store: BaseStorage, run_id: int) -> list[str]:
    return [e.kind for e in store.list_events(run_id) if e.kind.startswith("run.")]


def test_an_arena_run_holds_its_engine_slot_and_a_second_driver_is_refused() -> None:
    store = InMemoryStorage()
    reached, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def pause_after_round_one(variant: VariantRecord) -> None:
        if variant.generation == 1:
            reached.set()
            release.wait(120)

    def first() -> None:
        try:
            _drive(store, on_variant=pause_after_round_one)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=first, daemon=True)
    thread.start()
    try:
        assert reached.wait(300), failures
        run = store.get_run_by_name("lv")
        assert run.status is RunStatus.RUNNING and run.engine  # its slot is held
        engines = [(row["status"], row["lead"]) for row in run_engines(store, run)]
        assert engines == [("active", True)]  # shown as its engine, as the run engine's are
        events = len(store.list_events(run.id))
        with pytest.raises(RunStateError, match="being driven by another engine"):
            _drive(store)
        job = RunService(store).resume(ResumeRequest(run="lv"))
        assert isinstance(job, LevelDrive)
        with pytest.raises(RunStateError, match="being driven by another engine"):
            job.optimize()
        # The refused drivers changed nothing.
        assert len(store.list_events(run.id)) == events
        assert store.get_run(run.id).engine == run.engine
    finally:
        release.set()
        thread.join(300)
    assert not failures
    done = store.get_run(run.id)
    assert done.status is RunStatus.COMPLETE and not done.engine  # the slot given back
    assert _kinds(store, run.id) == ["run.started", "run.completed"]
    assert played_rounds(store, run.id) == list(range(1, ROUNDS + 1))


def test_a_stop_request_ends_a_level_run_between_rounds_and_resume_finishes_it() -> None:
    whole = InMemoryStorage()
    whole_id = _drive(whole)
    store = InMemoryStorage()
    service = RunService(store)

    def stop_after_round_one(variant: VariantRecord) -> None:
        if variant.generation == 1:
            said = service.stop("lv", who="test").message
            assert said.startswith("stop requested")  # its engine (this process) is live

    run_id = _drive(store, on_variant=stop_after_round_one)
    stopped = store.get_run(run_id)
    assert stopped.status is RunStatus.STOPPED and not stopped.engine
    assert played_rounds(store, run_id) == [1]  # the round in flight finished, no other started
    assert store.list_events(run_id, kinds=["run.stopped"])[-1].message == "stopped by request"
    # A change the arena does not take is refused before anything is driven.
    with pytest.raises(ConfigError, match="does not take --max-cost"):
        service.resume(ResumeRequest(run="lv", max_cost=1.0))
    with pytest.raises(ConfigError, match="in a process of your own"):  # the dashboard's
        service.resume_detached(ResumeRequest(run="lv", max_evaluations=50))
    assert store.get_run(run_id).config == stopped.config  # nothing changed
    record = service.resume(ResumeRequest(run="lv")).optimize()
    assert record.status is RunStatus.COMPLETE
    assert played_rounds(store, run_id) == list(range(1, ROUNDS + 1))  # none lost, none twice
    assert level_variants(store, run_id) == level_variants(whole, whole_id)
    assert _kinds(store, run_id) == [
        "run.started", "run.stop_requested", "run.stopped", "run.started", "run.completed",
    ]  # fmt: skip


def test_a_stopped_hyperagents_arena_resumes_by_the_common_resume_as_never_stopped() -> None:
    config = ArenaConfig(**SMALL)
    whole = InMemoryStorage()
    reference = run_arena(config, storage=whole, name="a")
    store = InMemoryStorage()
    service = RunService(store)

    def stop_after_round_one(summary: dict[str, Any]) -> None:
        if summary["round"] == 1:
            service.stop("a", who="test")

    stopped = run_arena(config, storage=store, name="a", on_round=stop_after_round_one)
    assert stopped.rounds == 1 and stopped.heldout == {}  # scored only once it has played
    assert store.get_run(stopped.run_id).status is RunStatus.STOPPED
    job = service.resume(ResumeRequest(run="a", generations=1))
    record = job.optimize()
    assert record.status is RunStatus.COMPLETE and record.target_generations == ROUNDS + 1
    series = _series(store, stopped.run_id)
    assert [s["round"] for s in series] == list(range(1, ROUNDS + 2))
    assert series[:ROUNDS] == _series(whole, reference.run_id)
    heldout = store.list_events(stopped.run_id, kinds=["arena.heldout"])
    assert [e.data["round"] for e in heldout] == [ROUNDS + 1]

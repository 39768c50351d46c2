"""The engine's seams: only the engine finishes unfinished work; the lease and its heartbeat;
the first reason to stop a drive wins."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from hyperagents.exceptions import RunStateError
from hyperagents.runs import Run, RunConfig
from hyperagents.runs._context import RunContext
from hyperagents.runs._engine import _Drive
from hyperagents.runs._jobs import Jobs
from hyperagents.runs._lease import Heartbeat, Lease
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState

from toytask import ToyTask


def _run(**config: object) -> Run:
    return Run.create(
        task=ToyTask(),
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10, **config}),
    )


def _context(run: Run) -> RunContext:
    return RunContext(storage=run.storage, record=run.record(), task=run.task)


def test_the_ask_side_never_evaluates_unfinished_work() -> None:
    run = _run()
    jobs = Jobs(_context(run))
    with pytest.raises(RunStateError, match="must wait for generations <= 0"):
        jobs.ask(run.variants())  # the seed is not evaluated yet
    assert run.variants()[0].state is VariantState.RUNNING


def test_the_engine_finishes_what_the_next_generation_depends_on() -> None:
    run = _run()
    variants = run._engine.finish_unfinished()
    assert [v.state for v in variants] == [VariantState.COMPLETE]
    job = run.ask()  # nothing is left to finish: asking only asks
    assert job.generation == 1 and job.parent_id == variants[0].id


def test_public_ask_finishes_the_seed_first() -> None:
    run = _run()
    job = run.ask()
    seed = run.variants()[0]
    assert seed.state is VariantState.COMPLETE and job.parent_id == seed.id
    assert run.storage.list_events(run.id, kinds=["variant.claimed"], variant_id=seed.id)


def test_a_lease_renews_only_while_it_holds_the_run() -> None:
    run = _run()
    lease = Lease(_context(run))
    lease.claim_engine()
    assert lease.renew([])
    with pytest.raises(RunStateError, match="being driven by another engine"):
        Lease(_context(run)).claim_engine()
    assert run.storage.claim_run_engine(run.id, "thief|1|1|x", expected=run.record().engine)
    assert not lease.renew([])


def test_the_heartbeat_reports_a_lost_run_and_stops() -> None:
    run = _run(heartbeat_interval=0.01)
    ctx = _context(run)
    lease = Lease(ctx)
    lease.claim_engine()
    lost = threading.Event()
    beat = Heartbeat(lease, ctx, in_flight=list, spent=lambda: 1.5, on_lost=lost.set)
    beat.start()
    try:
        assert run.storage.claim_run_engine(run.id, "thief|1|1|x", expected=ctx.owner)
        assert lost.wait(60)
    finally:
        beat.stop()
    assert run.record().engine == "thief|1|1|x"


def test_the_first_reason_to_stop_wins() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        drive = _Drive(
            target=3, workers=1, timeout=None, elapsed_before=2.0, pool=pool, notify=(), mirror={}
        )
        assert drive.status is RunStatus.COMPLETE and drive.message == "target reached"
        drive.halt(RunStatus.STOPPED, "timeout")
        drive.halt(RunStatus.STOPPED, "budget")
        assert drive.stop.is_set() and drive.message == "timeout"
        assert drive.spent() >= 2.0
        drive.lost()
        assert drive.taken_over.is_set()

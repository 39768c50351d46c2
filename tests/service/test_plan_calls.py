"""The planning calls are durable as they are made: each is in the service's log before its
improvement run exists, a normal plan writes them into the run exactly once (budget and replay
exact), and calls whose run never started (the process died, the improvement failed) still
count: in the trigger's budget, after a restart too, and in the service's planning cost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plan_calls_helpers import (
    BACKENDS,
    CHILD,
    Killed,
    KillOnRequest,
    assert_replays,
    autopilot,
    logged,
    make_site,
    plan_once,
    planning_calls,
    step_until,
)
from typer.testing import CliRunner

from hyperagents.cli import app
from hyperagents.runs import RunLLM
from hyperagents.service import (
    PLAN_ABANDONED_EVENT,
    PLAN_CALL_EVENT,
    PLAN_RUN_EVENT,
    Stage,
    planning_usage,
    post_override,
)
from hyperagents.storages import RDBStorage
from hyperagents.testing import FakeOpenAIServer

from planning_site import SIZES, Site, model_plan


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(request.param, tmp_path)


def test_a_plans_calls_are_logged_as_made_and_written_into_its_run_exactly_once(
    site: Site,
) -> None:
    with FakeOpenAIServer(handler=site.model(model_plan(site)), model="m") as server:
        (step,) = plan_once(site, server)
        asked = len(server.requests)
    journal = logged(site.store, site, PLAN_CALL_EVENT)
    (run_entry,) = logged(site.store, site, PLAN_RUN_EVENT)
    assert asked == len(journal) == 1 + 3 + 4  # plan, self, teacher: each logged once
    assert run_entry["run_id"] == step.run_id and run_entry["calls"] == [c["id"] for c in journal]
    # The run holds each call once (none twice, none lost), the served run none.
    calls = site.store.list_llm_calls(step.run_id)
    planning = [c for c in calls if c.purpose.split("/")[0] in ("plan", "teacher", "self")]
    assert len(planning) == asked
    assert [c.purpose for c in planning] == [c["purpose"] for c in journal]
    assert [c.reply for c in planning] == [c["reply"] for c in journal]
    assert site.store.list_llm_calls(site.service.find_run("served").id) == []
    usage = planning_usage(site.store, site.record.id)
    cost = sum(c.cost for c in planning)
    assert cost > 0 and usage["cost"] == pytest.approx(cost)
    assert (usage["calls"], usage["attached"], usage["orphaned"]) == (asked, asked, 0)
    # Replay still answers the planner's call from the run's record, calling no model.
    first = next(c for c in planning if c.purpose.startswith("plan"))
    replay = RunLLM(site.store, None, spec=None, replay_of=step.run_id)
    answer = replay.handler(variant_id=None, purpose="plan", scope="plan/0")(
        {"messages": first.request["messages"], "params": first.request["params"]}
    )
    assert answer == {"text": first.reply}


def test_a_process_dying_after_planning_leaves_the_calls_durable_with_their_cost(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies(*args: Any, **kwargs: Any) -> int:
        raise Killed

    monkeypatch.setattr("hyperagents.service._planning.start_improvement", dies)
    with FakeOpenAIServer(handler=site.model(model_plan(site)), model="m") as server:
        with pytest.raises(Killed):
            plan_once(site, server)
        asked = len(server.requests)
    fresh = RDBStorage(site.url)  # what another process reads
    journal = logged(fresh, site, PLAN_CALL_EVENT)
    assert asked == len(journal) > 0 and logged(fresh, site, PLAN_RUN_EVENT) == []
    assert {c["purpose"].split("/")[0] for c in journal} == {"plan", "self", "teacher"}
    assert all(c["prompt_tokens"] > 0 and c["cost"] > 0 for c in journal)
    assert [r.name for r in fresh.list_runs()] == ["served"]  # no improvement run exists
    usage = planning_usage(fresh, site.record.id)
    assert usage["orphaned"] == usage["calls"] == asked
    assert usage["orphaned_cost"] == usage["cost"] == pytest.approx(sum(c["cost"] for c in journal))
    shown = CliRunner().invoke(app, ["autopilot", "served", "--storage", site.url])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert f"planning: {asked} model calls, ${usage['cost']:.4f}; {asked} orphaned" in text


def test_a_failed_improvements_orphaned_calls_count_against_the_triggers_budget(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the improvement run could not start")

    monkeypatch.setattr("hyperagents.service._planning.start_improvement", fails)
    with FakeOpenAIServer(handler=site.model(model_plan(site)), model="m") as server:
        pilot = autopilot(site.store, site, f"{server.base_url}#m")
        post_override(site.store, site.record.id, "force", who="test")
        step_until(pilot, Stage.IMPROVING)
        step_until(pilot, Stage.WATCHING)
    orphaned = planning_usage(site.store, site.record.id)["orphaned_cost"]
    assert orphaned > 0 and pilot.trigger.spent_usd == pytest.approx(orphaned)
    kinds = [e.kind for e in site.store.list_service_events(site.record.id)]
    assert "autopilot.failed" in kinds


def test_a_cut_off_improvement_is_resumed_once_from_its_calls_and_counted_once(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned, release = threading.Semaphore(0), threading.Event()

    def stuck(*args: Any, **kwargs: Any) -> int:
        planned.release()  # every planning call is made: the process dies here
        release.wait(120)
        raise Killed

    monkeypatch.setattr("hyperagents.service._planning.start_improvement", stuck)
    try:
        with FakeOpenAIServer(handler=site.model(model_plan(site)), model="m") as server:
            first = autopilot(site.store, site, f"{server.base_url}#m")
            post_override(site.store, site.record.id, "force", who="test")
            step_until(first, Stage.IMPROVING)
            assert planned.acquire(timeout=120)
            asked = len(server.requests)
            usage = planning_usage(site.store, site.record.id)
            orphaned = usage["orphaned_cost"]
            assert orphaned > 0 and usage["waiting"] == asked and first.trigger.spent_usd == 0.0
            # A new process takes the service up: the improvement starts again with the same
            # live examples, its plan's requests answered from the calls already made.
            second = autopilot(RDBStorage(site.url), site, f"{server.base_url}#m")
            assert second.state.stage is Stage.IMPROVING
            assert second.state.resumed == first.state.improving_from
            assert planned.acquire(timeout=120)
            assert len(server.requests) == asked  # nothing asked (or paid for) twice
            assert planning_usage(site.store, site.record.id)["calls"] == asked
            # Cut off again: not resumed twice; interrupted, its calls given up and counted
            # once, and a further restart counts nothing again.
            third = autopilot(RDBStorage(site.url), site, f"{server.base_url}#m")
            assert third.state.stage is Stage.WATCHING
            assert third.trigger.spent_usd == pytest.approx(orphaned)
            fourth = autopilot(RDBStorage(site.url), site, f"{server.base_url}#m")
            assert fourth.trigger.spent_usd == pytest.approx(orphaned)
    finally:
        release.set()
    (interrupted,) = site.store.list_service_events(site.record.id, kinds=["autopilot.interrupted"])
    assert interrupted.data["spent"]["orphaned_cost"] == pytest.approx(orphaned)
    assert interrupted.data["reason"] == "it was resumed once already and cut off again"
    usage = planning_usage(site.store, site.record.id)
    assert (usage["orphaned"], usage["abandoned"], usage["waiting"]) == (asked, asked, 0)
    (abandoned,) = logged(site.store, site, PLAN_ABANDONED_EVENT)
    assert abandoned["reason"].startswith("the improvement was interrupted")


@pytest.mark.slow
def test_a_serving_process_killed_mid_planning_resumes_and_its_run_holds_each_call_once(
    site: Site,
) -> None:
    kill_at = 3  # the planner's call and a teacher's answered; killed on the next one
    handler = KillOnRequest(site.model(model_plan(site)), kill_at)
    with FakeOpenAIServer(handler=handler, model="m") as server:
        url = f"{server.base_url}#m"
        handler.run(CHILD, site.url, url, str(site.record.id), repr(SIZES))
        assert len(server.requests) == kill_at
        store = RDBStorage(site.url)
        usage = planning_usage(store, site.record.id)
        assert usage["calls"] == usage["waiting"] == kill_at - 1  # each call answered is there
        assert usage["cost"] > 0 and [r.name for r in store.list_runs()] == ["served"]
        orphans = [c["id"] for c in logged(store, site, PLAN_CALL_EVENT)]
        # The restart carries the plan out: its requests answered already are not asked again.
        restarted = autopilot(store, site, url)
        assert restarted.state.stage is Stage.IMPROVING and restarted.state.resumed > 0
        deadline = time.monotonic() + 240
        while restarted.step() is Stage.IMPROVING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        asked_again = len(server.requests) - kill_at
    (plan_run,) = logged(store, site, PLAN_RUN_EVENT)
    journal = logged(store, site, PLAN_CALL_EVENT)
    ids = [c["id"] for c in journal]
    assert plan_run["calls"][: len(orphans)] == orphans  # the dead process's calls, attached
    assert sorted(plan_run["calls"]) == sorted(ids) and len(set(ids)) == len(ids)
    assert asked_again == len(ids) - len(orphans)
    run_id = plan_run["run_id"]
    recorded = planning_calls(store, run_id)
    assert len(recorded) == len(ids)  # each call in the run's record once
    assert sorted(c.reply or "" for c in recorded) == sorted(c["reply"] or "" for c in journal)
    assert_replays(store, run_id)
    usage = planning_usage(store, site.record.id)
    assert (usage["orphaned"], usage["attached"]) == (0, len(ids))
    assert usage["cost"] == pytest.approx(sum(c.cost for c in recorded))
    # The trigger counted the improvement's models once: the run's record, orphans in it.
    assert restarted.trigger.spent_usd == pytest.approx(store.llm_usage(run_id)["cost"])
    (resumed,) = store.list_service_events(site.record.id, kinds=["autopilot.resumed"])
    assert resumed.data["improving_from"] == restarted.state.improving_from
    assert store.list_service_events(site.record.id, kinds=["autopilot.interrupted"]) == []

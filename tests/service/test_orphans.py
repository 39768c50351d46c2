"""Orphaned planning calls get the run that carries their plan out, exactly once: the run a
dead process created before writing them into it, or the run of the same plan made again
(its requests answered from them, not asked twice); orphans no plan repeats are given up with
a reason and still counted. Without a service (the Python API alone) the calls are journaled
in the served run's event log, so a kill loses none there either."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plan_calls_helpers import (
    BACKENDS,
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

from hyperagents.service import (
    PLAN_ABANDONED_EVENT,
    PLAN_CALL_EVENT,
    PLAN_ID_ATTR,
    PLAN_RUN_EVENT,
    PlanLog,
    Stage,
    planning_usage,
    post_override,
    reattach_orphans,
    start_improvement,
)
from hyperagents.storages import BaseStorage, RDBStorage
from hyperagents.testing import FakeOpenAIServer

from planning_site import Site, model_plan


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(request.param, tmp_path)


def run_log(store: BaseStorage, site: Site, kind: str) -> list[dict[str, Any]]:
    served = store.get_run_by_name("served").id
    return [dict(e.data) for e in store.list_events(served, kinds=[kind])]


def dying_plan(site: Site, *, create: bool) -> list[dict[str, Any]]:
    """Plan once, the process dying as the plan's run starts (after creating it, with
    ``create``); the calls the log holds."""

    def dies(*args: Any, **kwargs: Any) -> int:
        if create:
            start_improvement(*args, **kwargs)
        raise Killed

    server = FakeOpenAIServer(handler=site.model(model_plan(site)), model="m")
    with pytest.MonkeyPatch.context() as patched, server, pytest.raises(Killed):
        patched.setattr("hyperagents.service._planning.start_improvement", dies)
        plan_once(site, server)
    return logged(site.store, site, PLAN_CALL_EVENT)


def test_a_run_created_before_its_calls_were_written_gets_them_once(site: Site) -> None:
    journal = dying_plan(site, create=True)
    assert journal and logged(site.store, site, PLAN_RUN_EVENT) == []
    (run,) = [r for r in site.store.list_runs() if r.name != "served"]
    assert (
        run.attrs[PLAN_ID_ATTR] == journal[0]["plan"] and planning_calls(site.store, run.id) == []
    )
    log = PlanLog(RDBStorage(site.url), service_id=site.record.id)  # another process
    ids = [c["id"] for c in journal]
    assert reattach_orphans(log) == {run.id: ids}
    assert reattach_orphans(log) == {}  # done once: a second restart changes nothing
    assert [c.reply for c in planning_calls(site.store, run.id)] == [c["reply"] for c in journal]
    assert_replays(site.store, run.id)
    usage = planning_usage(site.store, site.record.id)
    assert (usage["attached"], usage["orphaned"]) == (len(ids), 0)


def test_orphans_no_new_plan_repeats_are_abandoned_with_the_reason_and_still_counted(
    site: Site,
) -> None:
    orphans = dying_plan(site, create=False)
    harness_only = {"summary": "Retune.", "actions": [{"kind": "harness_edit"}]}
    with FakeOpenAIServer(handler=site.model(harness_only), model="m") as server:
        (step,) = plan_once(site, server, live=site.live[:-3])  # other examples: another plan
        asked = len(server.requests)
    assert asked == 1  # the new plan's own call, asked of the model
    (gave_up,) = logged(site.store, site, PLAN_ABANDONED_EVENT)
    assert gave_up["calls"] == [c["id"] for c in orphans]
    assert gave_up["reason"] == f"superseded: the plans of run(s) {step.run_id} asked otherwise"
    usage = planning_usage(site.store, site.record.id)
    assert (usage["calls"], usage["attached"]) == (len(orphans) + 1, 1)
    assert (usage["orphaned"], usage["abandoned"], usage["waiting"]) == (
        len(orphans),
        len(orphans),
        0,
    )
    assert usage["orphaned_cost"] == pytest.approx(sum(c["cost"] for c in orphans))
    assert usage["orphaned_cost"] > 0
    assert len(planning_calls(site.store, step.run_id)) == 1


def test_a_failed_improvements_calls_are_taken_over_by_the_next_and_counted_once(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the improvement run could not start")

    with FakeOpenAIServer(handler=site.model(model_plan(site)), model="m") as server:
        pilot = autopilot(site.store, site, f"{server.base_url}#m")
        with monkeypatch.context() as patched:
            patched.setattr("hyperagents.service._planning.start_improvement", fails)
            post_override(site.store, site.record.id, "force", who="test")
            step_until(pilot, Stage.IMPROVING)
            step_until(pilot, Stage.WATCHING)
        asked = len(server.requests)
        orphaned = planning_usage(site.store, site.record.id)["orphaned_cost"]
        assert orphaned > 0 and pilot.trigger.spent_usd == pytest.approx(orphaned)
        # The next improvement makes the same plan: every request is answered from the
        # failed one's calls, which its run takes over.
        post_override(site.store, site.record.id, "force", who="test")
        step_until(pilot, Stage.IMPROVING)
        while pilot.step() is Stage.IMPROVING:
            pass
        assert len(server.requests) == asked
    (plan_run,) = logged(site.store, site, PLAN_RUN_EVENT)
    assert plan_run["calls"] == [c["id"] for c in logged(site.store, site, PLAN_CALL_EVENT)]
    assert len(planning_calls(site.store, plan_run["run_id"])) == asked
    assert_replays(site.store, plan_run["run_id"])
    usage = planning_usage(site.store, site.record.id)
    assert (usage["calls"], usage["attached"], usage["orphaned"]) == (asked, asked, 0)
    # Counted once: by the failed improvement, not again by the one whose run took them.
    run_cost = site.store.llm_usage(plan_run["run_id"])["cost"]
    assert pilot.trigger.spent_usd == pytest.approx(run_cost)


CHILD_API = """
import json, sys
from hyperagents.runs import RunService
from hyperagents.service import ImprovementBudget, LiveExample, PlanSettings, improve_with_plans
from hyperagents.storages import RDBStorage

url, model, live = sys.argv[1], sys.argv[2], [LiveExample(**e) for e in json.loads(sys.argv[3])]
improve_with_plans(
    RunService(RDBStorage(url)),
    run="served",
    live=live,
    budget=ImprovementBudget(generations=1),
    settings=PlanSettings(max_replans=0, model=model),
)
"""


@pytest.mark.slow
def test_without_a_service_a_killed_process_loses_no_call_and_the_next_plan_takes_them(
    site: Site,
) -> None:
    kill_at = 3
    handler = KillOnRequest(site.model(model_plan(site)), kill_at)
    live = json.dumps([dataclasses.asdict(e) for e in site.live])
    with FakeOpenAIServer(handler=handler, model="m") as server:
        handler.run(CHILD_API, site.url, f"{server.base_url}#m", live)
        store = RDBStorage(site.url)
        served = store.get_run_by_name("served").id
        orphans = run_log(store, site, PLAN_CALL_EVENT)
        assert len(orphans) == kill_at - 1 and all(c["cost"] > 0 for c in orphans)
        usage = planning_usage(store, run_id=served)
        assert usage["calls"] == usage["waiting"] == kill_at - 1
        assert logged(store, site, PLAN_CALL_EVENT) == []  # the service's log is not used
        # The same improvement made again through the API takes them over.
        (step,) = plan_once(site, server, service=False)
        asked_again = len(server.requests) - kill_at
    (plan_run,) = run_log(store, site, PLAN_RUN_EVENT)
    ids = [c["id"] for c in run_log(store, site, PLAN_CALL_EVENT)]
    assert plan_run["run_id"] == step.run_id and sorted(plan_run["calls"]) == sorted(ids)
    assert plan_run["calls"][: len(orphans)] == [c["id"] for c in orphans]
    assert asked_again == len(ids) - len(orphans)
    assert len(planning_calls(store, step.run_id)) == len(ids)
    assert_replays(store, step.run_id)
    assert store.list_llm_calls(served) == []  # the served run's own record is untouched
    usage = planning_usage(store, run_id=served)
    assert (usage["attached"], usage["orphaned"]) == (len(ids), 0)

"""The planning calls are durable as they are made: each is in the service's log before its
improvement run exists, a normal plan writes them into the run exactly once (budget and replay
exact), and calls whose run never started (the process died, the improvement failed) still
count: in the trigger's budget, after a restart too, and in the service's planning cost."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import hyperagents
from hyperagents.cli import app
from hyperagents.runs import RunLLM, RunService
from hyperagents.service import (
    PLAN_CALL_EVENT,
    PLAN_RUN_EVENT,
    Autopilot,
    AutopilotSettings,
    Improvement,
    ImprovementBudget,
    PlanSettings,
    PlanStep,
    Stage,
    improve_with_plans,
    parse_settings,
    plan_improver,
    planning_usage,
    post_override,
)
from hyperagents.storages import BaseStorage, RDBStorage
from hyperagents.tasks import load_task
from hyperagents.testing import FakeOpenAIServer

from planning_site import SIZES, Site, model_plan

#: Dollars per million tokens of the fake model: every call costs something.
PRICES = {"m": [100.0, 200.0]}


class Killed(BaseException):
    """The process dying (nothing catches it as an error)."""


@pytest.fixture
def site(tmp_path: Any) -> Site:
    return Site(f"sqlite:///{tmp_path / 'plancalls.db'}", llm_prices=PRICES)


def logged(store: BaseStorage, site: Site, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in store.list_service_events(site.record.id, kinds=[kind])]


def autopilot(store: BaseStorage, site: Site, url: str) -> Autopilot:
    settings = parse_settings(
        AutopilotSettings,
        {"feedback_wait_s": 0, "generations": 1, "max_replans": 0, "planner_llm": url},
    )
    improver = plan_improver(RunService(store), settings)
    return Autopilot(
        store,
        site.record.id,
        task=load_task("support", SIZES),
        improver=improver,
        settings=settings,
    )


def plan_once(site: Site, server: FakeOpenAIServer) -> list[PlanStep]:
    return improve_with_plans(
        site.service,
        run="served",
        live=site.live,
        budget=ImprovementBudget(generations=1),
        settings=PlanSettings(max_replans=0, model=f"{server.base_url}#m"),
        service_id=site.record.id,
    )


def step_until(pilot: Autopilot, stage: Stage, *, also: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + 120
    while pilot.step() is not stage or not also():
        assert time.monotonic() < deadline
        time.sleep(0.05)


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


def test_after_a_restart_the_cut_off_improvements_calls_count_once(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned, release = threading.Event(), threading.Event()

    def stuck(*args: Any, **kwargs: Any) -> int:
        planned.set()  # every planning call is made: the process dies here
        release.wait(120)
        raise Killed

    monkeypatch.setattr("hyperagents.service._planning.start_improvement", stuck)
    try:
        with FakeOpenAIServer(handler=site.model(model_plan(site)), model="m") as server:
            first = autopilot(site.store, site, f"{server.base_url}#m")
            post_override(site.store, site.record.id, "force", who="test")
            step_until(first, Stage.IMPROVING, also=planned.is_set)
            orphaned = planning_usage(site.store, site.record.id)["orphaned_cost"]
            assert orphaned > 0 and first.trigger.spent_usd == 0.0
            # A new process takes the service up: the improvement is interrupted, its
            # orphaned planning calls counted; a second restart does not count them again.
            second = autopilot(RDBStorage(site.url), site, f"{server.base_url}#m")
            assert second.state.stage is Stage.WATCHING
            assert second.trigger.spent_usd == pytest.approx(orphaned)
            third = autopilot(RDBStorage(site.url), site, f"{server.base_url}#m")
            assert third.trigger.spent_usd == pytest.approx(orphaned)
    finally:
        release.set()
    interrupted = [
        e for e in site.store.list_service_events(site.record.id) if e.kind.endswith("interrupted")
    ]
    assert len(interrupted) == 1
    assert interrupted[0].data["spent"]["orphaned_cost"] == pytest.approx(orphaned)
    assert (
        interrupted[0].data["spent"]["orphaned"]
        == planning_usage(site.store, site.record.id)["orphaned"]
    )


CHILD = """
import sys, time
from hyperagents.runs import RunService
from hyperagents.service import Autopilot, AutopilotSettings, parse_settings, plan_improver
from hyperagents.service import post_override
from hyperagents.storages import RDBStorage
from hyperagents.tasks import load_task

url, model, service_id, sizes = sys.argv[1], sys.argv[2], int(sys.argv[3]), eval(sys.argv[4])
store = RDBStorage(url)
settings = parse_settings(
    AutopilotSettings,
    {"feedback_wait_s": 0, "generations": 1, "max_replans": 0, "planner_llm": model},
)
pilot = Autopilot(
    store,
    service_id,
    task=load_task("support", sizes),
    improver=plan_improver(RunService(store), settings),
    settings=settings,
)
post_override(store, service_id, "force", who="test")
while True:
    pilot.step()
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_a_serving_process_killed_mid_planning_loses_no_call_and_its_restart_counts_them(
    site: Site,
) -> None:
    answer = site.model(model_plan(site))
    child: list[subprocess.Popen[bytes]] = []
    kill_at = 3  # the planner's call and a teacher's answered; killed on the next one

    def handler(body: dict[str, Any]) -> str:
        if len(server.requests) >= kill_at and child:
            os.killpg(child[0].pid, signal.SIGKILL)  # the process and its sandboxes
        return answer(body)

    src = str(Path(hyperagents.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
    }
    with FakeOpenAIServer(handler=handler, model="m") as server:
        args = [site.url, f"{server.base_url}#m", str(site.record.id), repr(SIZES)]
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        child.append(proc)
        try:
            _, err = proc.communicate(timeout=240)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        assert len(server.requests) == kill_at
    store = RDBStorage(site.url)
    usage = planning_usage(store, site.record.id)
    assert usage["calls"] == usage["orphaned"] == kill_at - 1  # each call answered is there
    assert usage["cost"] > 0 and [r.name for r in store.list_runs()] == ["served"]
    restarted = Autopilot(
        store,
        site.record.id,
        task=load_task("support", SIZES),
        improver=lambda live, service: Improvement(None, []),
    )
    assert restarted.state.stage is Stage.WATCHING
    assert restarted.trigger.spent_usd == pytest.approx(usage["orphaned_cost"])
    (interrupted,) = store.list_service_events(site.record.id, kinds=["autopilot.interrupted"])
    assert interrupted.data["spent"]["orphaned"] == kill_at - 1

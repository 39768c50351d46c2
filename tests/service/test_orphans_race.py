"""Two processes attaching the same orphaned planning calls at once (two autopilots of one
service, two ``improve_with_plans`` on one served run): each call ends up in exactly one run,
exactly once, and is counted once, whether both reattach the orphans to the run of their plan
or both adopt them into runs of their own; on SQLite and PostgreSQL, many times over."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperagents.runs import RunLLM
from hyperagents.service import (
    PLAN_CALL_EVENT,
    PLAN_ID_ATTR,
    PLAN_RUN_EVENT,
    PlanJournal,
    PlanLog,
    offer_orphans,
    planning_usage,
    reattach_orphans,
)
from hyperagents.storages import BaseStorage, RDBStorage, RunSpec, ServiceSpec
from postgres_helpers import postgres_databases

#: Repetitions of each race.
RACES = 12
#: Orphaned calls per race.
CALLS = 3
#: Dollars per million tokens of the scripted model: every call costs something.
PRICES = {"scripted": (100.0, 200.0)}
QUESTIONS = [{"messages": [{"role": "user", "content": f"question {i}"}]} for i in range(CALLS)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    with postgres_databases() as make:
        yield make()


def _spec(tmp_path: Path) -> str:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps({"replies": [f"answer {i}" for i in range(CALLS)]}))
    return f"scripted:{path}"


def _new_run(store: BaseStorage, name: str, *, plan: bool = False) -> int:
    """A new run (``plan``: the run of the plan ``name``)."""
    attrs = {PLAN_ID_ATTR: name} if plan else {}
    spec = RunSpec(name=name, task="t", mode="hyperagent", seed=1, config={}, seed_program_id="x")
    return store.create_run(dataclasses.replace(spec, attrs=attrs))


def _log(store: BaseStorage, race: int, *, service: bool) -> PlanLog:
    """A fresh log of race ``race``: a service's or (no service) its served run's."""
    run_id = _new_run(store, f"served{race}")
    if not service:
        return PlanLog(store, run_id=run_id)
    champion = store.create_variant(run_id=run_id, generation=0, parent_id=None)
    spec = ServiceSpec(name=f"svc{race}", run_id=run_id, champion_id=champion)
    return PlanLog(store, service_id=store.create_service(spec))


def _orphans(log: PlanLog, spec: str, plan_id: str) -> list[dict[str, Any]]:
    """Plan calls journaled and never attached (the process died): their entries."""
    model = RunLLM(
        log.storage, None, spec=spec, prices=PRICES, journal=PlanJournal(log, plan_id=plan_id)
    )
    ask = model.handler(variant_id=None, purpose="plan", scope="plan/0")
    for question in QUESTIONS:
        assert "text" in ask(question)
    return [d for _, kind, d in log.entries([PLAN_CALL_EVENT]) if kind == PLAN_CALL_EVENT]


def _same_log(url: str, log: PlanLog) -> PlanLog:
    """The log as another process sees it: its own storage object."""
    return PlanLog(RDBStorage(url), service_id=log.service_id, run_id=log.run_id)


def _reattach(url: str, log: PlanLog, go: Any) -> None:
    mine = _same_log(url, log)
    go.wait(timeout=60)
    reattach_orphans(mine)


def _adopt(url: str, log: PlanLog, spec: str, name: str, out: Path, go: Any) -> None:
    """Do the orphans' plan again in a run of its own, the orphans offered, then attach;
    write the run's id and the model's in-memory spend once attached to ``out``."""
    mine = _same_log(url, log)
    offered = offer_orphans(mine)
    answered = [w.call for w in offered.unclaimed() if w.call is not None]
    journal = PlanJournal(mine, plan_id=name, waiting=offered)
    model = RunLLM(mine.storage, None, spec=spec, prices=PRICES, journal=journal, answered=answered)
    ask = model.handler(variant_id=None, purpose="plan", scope="plan/0")
    for question in QUESTIONS:
        assert "text" in ask(question)
    assert len(offered.claimed()) == CALLS  # every request answered from an orphan
    run_id = _new_run(mine.storage, name, plan=True)
    go.wait(timeout=60)
    model.attach(run_id)
    spent = model.gateway.usage()
    out.write_text(json.dumps({"run_id": run_id, "cost": spent.cost, "cached": spent.cached}))


def _race(targets: list[tuple[Any, tuple[Any, ...]]]) -> None:
    """Run the targets in processes of their own, released together; all must succeed."""
    context = multiprocessing.get_context("fork")  # each makes its own storage object
    go = context.Barrier(len(targets))
    processes = [context.Process(target=t, args=(*args, go)) for t, args in targets]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def _check_once(log: PlanLog, orphans: list[dict[str, Any]]) -> dict[int, int]:
    """Each orphan is attached in one ``plan.run`` entry, its run holds it once, and its cost
    is counted once; the number of calls in each run."""
    store, ids = log.storage, [o["id"] for o in orphans]
    runs = [d for _, _, d in log.entries([PLAN_RUN_EVENT])]
    named = Counter(c for d in runs for c in d["calls"])
    assert all(named[i] == 1 for i in ids), named
    by_run = {d["run_id"]: len(store.list_llm_calls(d["run_id"])) for d in runs}
    paid = sum(float(store.llm_usage(run_id)["cost"]) for run_id in by_run)
    cost = sum(o["cost"] for o in orphans)
    assert cost > 0 and paid == pytest.approx(cost)  # each orphan's cost once, in its run
    usage = planning_usage(store, log.service_id, run_id=log.run_id)
    assert usage["cost"] == pytest.approx(cost) and usage["orphaned"] == 0
    return by_run


def _reattached(url: str, log: PlanLog, orphans: list[dict[str, Any]], plan_id: str) -> None:
    """Both processes reattach the orphans to their plan's run, made before the death."""
    run_id = _new_run(log.storage, plan_id, plan=True)
    _race([(_reattach, (url, log)), (_reattach, (url, log))])
    assert _check_once(log, orphans) == {run_id: CALLS}
    replies = [c.reply for c in log.storage.list_llm_calls(run_id)]
    assert replies == [o["reply"] for o in orphans]


def _adopted(
    url: str, log: PlanLog, orphans: list[dict[str, Any]], spec: str, tmp_path: Path
) -> None:
    """Both processes make the plan again and adopt the orphans into runs of their own; each
    one's model counts in memory what it attached (the loser: nothing paid)."""
    names = [f"a-{orphans[0]['id']}", f"b-{orphans[0]['id']}"]
    outs = [tmp_path / f"{name}.json" for name in names]
    _race([(_adopt, (url, log, spec, name, out)) for name, out in zip(names, outs, strict=True)])
    by_run = _check_once(log, orphans)
    assert sorted(by_run.values()) == [CALLS, CALLS]  # both runs hold the whole plan
    usage = [log.storage.llm_usage(run_id) for run_id in by_run]
    loser = [u for u in usage if u["cost"] == 0]
    assert len(loser) == 1  # its calls answered from the winner's: cached, free
    assert loser[0]["cached"] == CALLS
    for out in outs:  # each process's in-memory spend is what its run holds
        spent = json.loads(out.read_text())
        stored = log.storage.llm_usage(spent["run_id"])
        assert spent["cost"] == pytest.approx(float(stored["cost"]))
        assert spent["cached"] == stored["cached"]


@pytest.mark.parametrize("how", ["reattach", "adopt"])
@pytest.mark.parametrize("service", [True, False], ids=["service", "served-run"])
def test_two_processes_attaching_the_same_orphans_attach_each_once(
    url: str, tmp_path: Path, service: bool, how: str
) -> None:
    store, spec = RDBStorage(url), _spec(tmp_path)
    for race in range(RACES):
        log = _log(store, race, service=service)
        orphans = _orphans(log, spec, f"plan{race}")
        if how == "reattach":
            _reattached(url, log, orphans, f"plan{race}")
        else:
            _adopted(url, log, orphans, spec, tmp_path)

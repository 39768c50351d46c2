"""An improvement run starts from the serving champion's program, on the served task with the
live examples added, linked to the served run; killed at any moment it resumes with the same
data; its outcome compares its champion with the served one."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.runs import ResumeRequest, Run, RunService, StartRequest
from hyperagents.service import (
    IMPROVEMENT_ATTR,
    ImprovementBudget,
    LiveExample,
    LiveTask,
    PlanRecord,
    base_task_of,
    improvement_outcome,
    plan_levers,
    start_improvement,
)
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState
from hyperagents.tasks import Split, load_task, stored_task_options

SIZES = {"n_train": 12, "n_val": 8, "n_test": 4}


def served_run(service: RunService, name: str = "served") -> int:
    """A finished support run (offline: keyword routing), to be served."""
    request = StartRequest(
        task="support",
        task_options=SIZES,
        generations=1,
        name=name,
        sandbox="process",
        workers=1,
        seed=1,
        max_seconds=600.0,
    )
    service.start(request).optimize()
    return service.find_run(name).id


def live_batch(n: int = 15) -> list[LiveExample]:
    """Fresh support requests: most labelled with the right team, every third with feedback."""
    batch = []
    instances = load_task("support", {"seed": 7, "n_train": n}).instances(Split.TRAIN)
    for k, inst in enumerate(instances):
        if k % 3 == 2:
            batch.append(LiveExample(f"r{k}", inst.inputs, "billing", feedback=0.0))
        else:
            batch.append(LiveExample(f"r{k}", inst.inputs, "billing", label=inst.target))
    return batch


def task_of(service: RunService, run_id: int) -> LiveTask:
    record = service.find_run(run_id)
    task = load_task(record.task, stored_task_options(record.config))
    assert isinstance(task, LiveTask)
    return task


def test_the_improvement_run_starts_from_the_champion_with_live_examples() -> None:
    service = RunService(InMemoryStorage())
    served = served_run(service)
    champion = service.find_variant(f"{served}/champion")
    run_id = start_improvement(
        service,
        run=served,
        live=live_batch(),
        budget=ImprovementBudget(generations=1, max_evaluations=50),
        holdout_fraction=0.2,
        plan=PlanRecord(0, {"diagnosis": {"summary": "s"}, "actions": []}, "planner"),
        drive="none",
    )
    record = service.find_run(run_id)
    assert record.seed_program_id == champion.program_id  # the champion's program, as it is
    assert record.attrs["seed_from_program"] == champion.program_id
    link = record.attrs[IMPROVEMENT_ATTR]
    assert (link["run"], link["run_id"], link["variant"]) == ("served", served, champion.id)
    assert record.attrs["plan"]["plan"] == {"diagnosis": {"summary": "s"}, "actions": []}
    assert record.name == "served-improve" and record.task == "live"
    assert record.config["max_evaluations"] == 50 and record.config["max_seconds"] is None
    assert base_task_of(record) == ("support", SIZES)  # the served task, under the live one
    task = task_of(service, run_id)
    assert len(task.held_back_instances()) == 2  # of 10 labelled inputs
    assert len([i for i in task.instances(Split.TRAIN) if i.id.startswith("live:")]) == 8
    # Improving the improvement run does not nest live tasks.
    assert base_task_of(service.find_run(run_id)) == base_task_of(service.find_run(served))
    service.resume(ResumeRequest(run=run_id, workers=1)).optimize()
    assert service.find_run(run_id).status is RunStatus.COMPLETE
    seed = service.find_variant(f"{run_id}/seed")
    scored = _ids(service, seed.id, "train_subset") | _ids(service, seed.id, "train")
    live_train = {i.id for i in task.instances(Split.TRAIN) if i.id.startswith("live:")}
    assert live_train <= scored  # scored against their labels
    held = {i.id for i in task.held_back_instances()}
    assert not held & scored  # never trained on
    val = _ids(service, seed.id, "val")
    live_val = {i for i in val if i.startswith("live:")}
    assert live_val == held  # val: the task's own instances and the held-back slice
    assert val - live_val == {i.id for i in load_task("support", SIZES).instances(Split.VAL)}


def _ids(service: RunService, variant_id: int, stage: str) -> set[str]:
    found = {e.stage: e for e in service.storage.list_evaluations(variant_id)}
    return {r["id"] for r in found[stage].results} if stage in found else set()


def test_the_outcome_compares_the_candidate_with_the_served_champion() -> None:
    service = RunService(InMemoryStorage())
    served = served_run(service)
    run_id = start_improvement(
        service,
        run=served,
        live=live_batch(),
        budget=ImprovementBudget(generations=1),
        holdout_fraction=0.3,
        drive="none",
    )
    service.resume(ResumeRequest(run=run_id, workers=1)).optimize()
    outcome = improvement_outcome(service, run_id)
    champion = service.find_variant(f"{served}/champion")
    assert outcome.served_variant == champion.id and outcome.status == "complete"
    assert outcome.scores["val"]["served"] == champion.scores["val"]  # the same val
    candidate = service.storage.get_variant(int(outcome.candidate_variant or 0))
    # Like for like: the candidate on the task's own val too, not on its run's val (which
    # holds the held-back slice as well); its recorded results there agree.
    own = [
        r["score"]
        for e in service.storage.list_evaluations(candidate.id)
        if e.stage == "val"
        for r in e.results
        if not str(r["id"]).startswith("live:")
    ]
    assert len(own) == SIZES["n_val"]
    assert outcome.scores["val"]["candidate"] == pytest.approx(sum(own) / len(own))
    recorded = improvement_outcome(service, run_id, evaluate_live=False)
    assert recorded.scores == {
        "val": {"served": champion.scores["val"], "candidate": candidate.scores["val"]}
    }
    assert outcome.improved == (candidate.program_id != champion.program_id)
    for name in ("live_train", "held_back"):
        assert 0.0 <= float(outcome.scores[name]["served"] or -1) <= 1.0
    assert outcome.held_back == 3
    as_json = outcome.as_json()
    assert as_json["scores"] == outcome.scores and as_json["run_id"] == run_id
    with pytest.raises(ConfigError, match="not an improvement run"):
        improvement_outcome(service, served)


def test_nothing_to_improve_and_misuse_are_refused() -> None:
    service = RunService(InMemoryStorage())
    service.start(StartRequest(task="support", task_options=SIZES, generations=0, name="new"))
    with pytest.raises(RunStateError, match="no champion"):
        start_improvement(service, run="new", live=live_batch(), drive="none")
    served = served_run(service)
    with pytest.raises(ConfigError, match="drive"):
        start_improvement(service, run=served, live=[], drive="later")  # type: ignore[arg-type]
    other = service.find_variant("new/seed")
    with pytest.raises(RunStateError, match="not a variant"):
        start_improvement(service, run=served, variant=other.id, live=[], drive="none")
    # A given program keeps its own meta agent: a built-in one beside it is refused.
    program = service.storage.get_program(
        str(service.find_variant(f"{served}/champion").program_id)
    )
    with pytest.raises(ConfigError, match="keeps its meta agent"):
        Run.create(
            task="support",
            storage=service.storage,
            config={"meta_agent": "offline"},
            seed_from=program,
        )


def _events(url: str, name: str) -> int:
    from hyperagents.storages import RDBStorage

    store = RDBStorage(url)
    try:
        return len(store.list_events(store.get_run_by_name(name).id))
    finally:
        store.close()


def _archive(service: RunService, run_id: int) -> list[tuple[Any, ...]]:
    return [
        (v.generation, v.state, v.program_id, tuple(sorted(v.scores.items())))
        for v in service.storage.list_variants(run_id)
    ]


def test_a_killed_improvement_run_resumes_with_the_same_live_data(tmp_path: Path) -> None:
    budget = ImprovementBudget(generations=3)
    reference = RunService(InMemoryStorage())
    ref_id = start_improvement(
        reference, run=served_run(reference), live=live_batch(), budget=budget, drive="none"
    )
    reference.resume(ResumeRequest(run=ref_id, workers=1)).optimize()
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    service = RunService(url, log_dir=tmp_path)
    run_id = start_improvement(service, run=served_run(service), live=live_batch(), budget=budget)
    [engine] = service.engines()
    stored = dict(service.find_run(run_id).config["task_options"])
    deadline = time.time() + 120
    while _events(url, "served-improve") < 6 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(engine["pid"], signal.SIGKILL)
    time.sleep(0.2)
    killed = service.find_run(run_id)
    assert killed.status is not RunStatus.COMPLETE  # killed mid-run
    assert killed.config["task_options"] == stored  # the live data is stored with the run
    service.resume(ResumeRequest(run=run_id, workers=1)).optimize()
    record = service.find_run(run_id)
    assert record.status is RunStatus.COMPLETE
    assert task_of(service, run_id).instances(Split.TRAIN) == task_of(reference, ref_id).instances(
        Split.TRAIN
    )
    assert _archive(service, run_id) == _archive(reference, ref_id)  # as if never killed
    done = service.storage.list_variants(run_id, states=[VariantState.COMPLETE])
    assert done and all("train" in v.scores for v in done)
    service.close()


def test_run_seed_from_on_the_command_line_starts_from_that_program(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hyperagents.cli import _app

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    service = RunService(url)
    served_run(service)
    champion = service.find_variant("served/champion")
    service.close()
    args = ["run", "-t", "support", "-g", "0", "-n", "again", "-q", "--storage", url]
    result = CliRunner().invoke(_app.app, [*args, "--seed-from", "served/champion"])
    assert result.exit_code == 0, result.output
    service = RunService(url)
    record = service.find_run("again")
    assert record.seed_program_id == champion.program_id
    assert record.attrs["seed_from"] == "served/champion"
    assert record.attrs["seed_from_variant"] == champion.id
    service.close()


def test_an_improvement_driven_in_a_thread_finishes_while_the_served_run_is_untouched() -> None:
    service = RunService(InMemoryStorage())
    served = served_run(service)
    before = _archive(service, served)
    run_id = start_improvement(
        service,
        run=served,
        live=live_batch(),
        budget=ImprovementBudget(generations=1),
        drive="thread",
    )
    deadline = time.time() + 120
    while service.find_run(run_id).status is not RunStatus.COMPLETE and time.time() < deadline:
        time.sleep(0.05)
    assert service.find_run(run_id).status is RunStatus.COMPLETE
    assert _archive(service, served) == before  # the served run is never touched


def test_a_plan_chooses_the_levers_of_a_program_that_carries_a_model() -> None:
    def plan(*kinds: str) -> dict[str, Any]:
        return {"actions": [{"kind": kind} for kind in kinds]}

    assert plan_levers(plan("harness_edit", "weight_update"), carries_model=True) == "both"
    assert plan_levers(plan("weight_update", "more_data"), carries_model=True) == "weights"
    assert plan_levers(plan("harness_edit"), carries_model=True) == "harness"
    assert plan_levers(plan("more_data"), carries_model=True) is None
    assert plan_levers(plan("harness_edit", "weight_update"), carries_model=False) is None

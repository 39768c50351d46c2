"""The training stage's other sources and faces: a teacher (the run's model, recorded and
replayed), labels posted through the command line and the HTTP API, the curve streamed live
as events, and the levers ablation of an experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperagents.dashboard import create_app
from hyperagents.exceptions import ConfigError
from hyperagents.reports import ExperimentRequest, ExperimentSpec, run_experiment
from hyperagents.runs import Run, RunConfig, training_summary
from hyperagents.storages import (
    InMemoryStorage,
    RDBStorage,
    RunStatus,
    VariantRecord,
    VariantState,
)
from hyperagents.tasks import Split
from hyperagents.weights import labels, post_label

from cli_helpers import invoke_wide
from dashboard_helpers import csrf
from weightstask import TRAINER, WeightsTask


def _child(run: Run, generation: int = 1) -> VariantRecord:
    return next(v for v in run.variants() if v.generation == generation)


def test_a_teacher_labels_train_inputs_its_answers_verified_and_replayable(
    tmp_path: Path,
) -> None:
    task = WeightsTask(sources=("teacher",))
    train = task.instances(Split.TRAIN)[:4]
    wrong = "lo" if train[3].target == "hi" else "hi"
    replies = [json.dumps(i.target) for i in train[:3]] + [wrong]
    script = tmp_path / "teacher.json"
    script.write_text(json.dumps({"replies": replies}))
    storage = InMemoryStorage()
    config = {"subset_size": 10, "llm": f"scripted:{script}", "training": {"teacher_instances": 4}}
    run = Run.create(task=task, storage=storage, name="taught", config=RunConfig.parse(config))
    assert run.optimize(1).status is RunStatus.COMPLETE
    child = _child(run)
    assert child.metrics["training"]["sources"] == {"teacher": 3}  # the wrong answer left out
    calls = storage.list_llm_calls(run.id)
    assert len(calls) == 4 and all(c.purpose.startswith("teacher") for c in calls)
    # replayed from the record: the same examples, the same child, no model called
    replay = Run.create(
        task=task,
        storage=storage,
        name="taught-again",
        config=RunConfig.parse({**config, "llm": None, "replay_of": "taught"}),
    )
    assert replay.optimize(1).status is RunStatus.COMPLETE
    assert _child(replay).program_id == child.program_id


TEACHER_PROGRAM = """def label(inputs):
    x = inputs["x"]
    return "hi" if x > 0.5 else "lo"  # wrong between 0.5 and 0.63
"""


def test_a_teacher_program_answers_train_inputs_its_answers_verified() -> None:
    task = WeightsTask(sources=("teacher",), extra={"teacher.py": TEACHER_PROGRAM})
    config = {"subset_size": 10, "training": {"teacher_instances": 12}}
    run = Run.create(task=task, storage=InMemoryStorage(), config=RunConfig.parse(config))
    run.optimize(1)
    first = task.instances(Split.TRAIN)[:12]
    right = [i.id for i in first if ("hi" if i.inputs["x"] > 0.5 else "lo") == i.target]
    assert len(right) < 12  # the teacher errs on some
    child = _child(run)
    assert child.metrics["training"]["sources"] == {"teacher-program": len(right)}
    (event,) = run.storage.list_events(run.id, kinds=["variant.trained"], variant_id=child.id)
    assert [e["id"] for e in event.data["examples"]] == right


def test_labels_only_for_train_instances() -> None:
    task = WeightsTask()
    storage = InMemoryStorage()
    run = Run.create(task=task, storage=storage, config=RunConfig.parse({"subset_size": 10}))
    val = task.instances(Split.VAL)[0]
    with pytest.raises(ConfigError, match="val or test instance"):
        post_label(storage, run.id, task, val.id, "hi", by="ann")
    with pytest.raises(ConfigError, match="not a train instance"):
        post_label(storage, run.id, task, "nowhere", "hi", by="ann")
    with pytest.raises(ConfigError, match="must be JSON"):
        post_label(storage, run.id, task, "train-0", float("nan"), by="ann")
    post_label(storage, run.id, task, "train-0", "hi", by="ann")
    post_label(storage, run.id, task, "train-0", "lo", by="bob")  # the latest counts
    assert labels(storage, run.id) == {"train-0": "lo"}


def test_labels_posted_from_the_command_line_and_the_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = RDBStorage(url)
    task_spec = f"{Path(__file__).resolve().parents[1] / 'weightstask.py'}:WeightsTask"
    run = Run.create(
        task=task_spec,
        name="labelled",
        storage=storage,
        config=RunConfig.parse({"subset_size": 10, "sandbox": "process"}),
    )
    code, out = invoke_wide("label", "labelled", "train-1", '"hi"', "--storage", url)
    assert code == 0 and "label for train-1" in out
    code, out = invoke_wide("label", "labelled", "val-0", '"hi"', "--storage", url)
    assert code != 0 and "val or test instance" in out
    app = create_app(storage, storage_url=url)
    with TestClient(app, base_url="http://localhost") as client:
        client.get("/")
        posted = client.post(
            "/api/runs/labelled/labels",
            json={"instance_id": "train-2", "output": "lo"},
            headers=csrf(client),
        )
        assert posted.status_code == 201 and posted.json()["instance_id"] == "train-2"
        refused = client.post(
            "/api/runs/labelled/labels",
            json={"instance_id": "test-0", "output": "lo"},
            headers=csrf(client),
        )
        assert refused.status_code == 400 and "val or test" in refused.json()["error"]
        shown = client.get("/api/runs/labelled/labels").json()["labels"]
        assert shown == {"train-1": "hi", "train-2": "lo"}
    assert labels(storage, run.id) == {"train-1": "hi", "train-2": "lo"}
    storage.close()


SLOW_PROGRESS = TRAINER.replace(
    "        if progress is not None and step % 20 == 0:",
    "        if progress is not None and step % 20 == 0:\n            time.sleep(0.3)",
)


def test_the_training_curve_is_recorded_as_it_goes_and_shown() -> None:
    task = WeightsTask(trainer=SLOW_PROGRESS, options={"epochs": 100})
    run = Run.create(
        task=task, storage=InMemoryStorage(), config=RunConfig.parse({"subset_size": 10})
    )
    run.optimize(1)
    child = _child(run)
    events = run.storage.list_events(run.id, kinds=["training.progress"], variant_id=child.id)
    assert len(events) >= 3  # several points, recorded before the training's outcome
    trained = run.storage.list_events(run.id, kinds=["variant.trained"], variant_id=child.id)
    assert all(e.id < trained[0].id for e in events)
    assert [e.data["step"] for e in events] == sorted(e.data["step"] for e in events)
    assert len({e.data["attempt"] for e in events}) == 1
    app = create_app(run.storage)
    with TestClient(app, base_url="http://localhost") as client:
        detail = client.get(f"/api/variants/{child.id}").json()
    training = detail["training"]
    assert training["lever"] == "weights" and training["state"] == "done"
    assert len(training["curve"]) == 100 and training["sources"]["task"] == 8
    assert [m["path"] for m in training["model"]] == [
        "model/config.json",
        "model/model.safetensors",
    ]


def test_an_experiment_compares_the_levers_as_arms() -> None:
    spec = ExperimentSpec.parse(
        name="lev",
        task="unused",
        modes="hyperagent",
        seeds=1,
        generations=1,
        config={"subset_size": 10},
        levers="harness,weights",
    )
    storage = InMemoryStorage()
    records = run_experiment(spec, storage=storage, task=WeightsTask(lever="both"))
    assert sorted(r.arm for r in records) == ["hyperagent+harness", "hyperagent+weights"]
    for record in records:
        child = storage.list_variants(record.id)[1]
        assert record.config["levers"] == record.arm.split("+")[1]
        assert child.metrics["training"]["lever"] == record.config["levers"]
    request = ExperimentRequest(task="toy", modes="hyperagent", seeds=1, levers="harness,both")
    assert request.spec(task_name="toy").levers == ("harness", "both")
    with pytest.raises(ConfigError, match="levers"):
        ExperimentSpec.parse(
            name="bad", task="t", modes="hyperagent", seeds=1, generations=1, levers="gears"
        )


def test_a_training_in_progress_shows_its_latest_attempts_points() -> None:
    storage = InMemoryStorage()
    run = Run.create(
        task=WeightsTask(), storage=storage, config=RunConfig.parse({"subset_size": 10})
    )
    run.optimize(0)
    seed = _child(run, 0)
    child_id = storage.create_variant(
        run_id=run.id, generation=1, parent_id=seed.id, state=VariantState.RUNNING
    )
    storage.update_variant_metrics(child_id, {"training": {"lever": "weights", "state": "due"}})
    for attempt, steps in (("first", (0, 10, 20)), ("again", (0, 10))):
        for step in steps:
            data = {"step": step, "loss": 1.0 / (step + 1), "attempt": attempt}
            storage.add_event(run.id, "training.progress", "", variant_id=child_id, data=data)
    child = storage.get_variant(child_id)
    summary = training_summary(child, None, storage)
    assert summary is not None
    assert summary["curve"] == [{"step": 0, "loss": 1.0}, {"step": 10, "loss": 1.0 / 11}]
    assert training_summary(child, None)["curve"] == []  # type: ignore[index]

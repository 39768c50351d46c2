"""Task options through a run's life: stored at creation, the same task rebuilt on resume,
replay and in every listing; a bad option refused before anything is stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.reports import ExperimentRequest, run_experiment
from hyperagents.reports._data import collect
from hyperagents.runs import (
    RemoteCaller,
    ReplayRequest,
    ResumeRequest,
    Run,
    RunConfig,
    RunService,
    StartRequest,
    check_remote_start,
)
from hyperagents.runs._export import run_identity
from hyperagents.storages import InMemoryStorage
from hyperagents.tasks import Split, Task

from toytask import ToyTask

TOY_FILE = Path(__file__).resolve().parents[1] / "toytask.py"
TOY = f"{TOY_FILE}:ToyTask"
OPTIONS = {"sizes": [12, 6, 6], "seed": 7}


def _instances(task: Task) -> list[tuple[str, object]]:
    return [(i.id, i.inputs) for split in Split for i in task.instances(split)]


def _start(**values: object) -> StartRequest:
    base: dict[str, object] = {
        "task": TOY,
        "workers": 1,
        "config": {"sandbox": "process"},
        "task_options": OPTIONS,
    }
    return StartRequest(**{**base, **values})  # type: ignore[arg-type]


def test_options_are_stored_and_reach_the_task() -> None:
    store = InMemoryStorage()
    run = Run.create(task=TOY, storage=store, config={"task_options": OPTIONS, "subset_size": 4})
    assert [len(run.task.instances(s)) for s in Split] == [12, 6, 6]
    assert run.record().config["task_options"] == OPTIONS
    assert run.config.task_options == OPTIONS
    assert _instances(run.task) == _instances(ToyTask(sizes=(12, 6, 6), seed=7))


def test_a_loaded_run_rebuilds_the_identical_task() -> None:
    store = InMemoryStorage()
    first = Run.create(task=TOY, storage=store, config={"task_options": OPTIONS}, name="r")
    again = Run.load("r", storage=store)
    assert again.task is not first.task
    assert _instances(again.task) == _instances(first.task)
    assert _instances(again.task) != _instances(ToyTask())  # not the class's defaults


def test_resume_and_replay_rebuild_the_same_task_and_go_on() -> None:
    service = RunService(InMemoryStorage())
    started = service.start(_start(name="opt", generations=2))
    started.optimize()
    created = _instances(started.run.task)
    resumed = service.resume(ResumeRequest(run="opt", generations=1, max_tokens=5))
    assert _instances(resumed.run.task) == created
    resumed.optimize()
    record = service.find_run("opt")
    assert record.config["task_options"] == OPTIONS and record.config["max_tokens"] == 5
    assert service.storage.count_variants(record.id) == 4
    replay = service.replay(ReplayRequest(run="opt", generations=2))
    assert _instances(replay.run.task) == created
    assert replay.run.config.task_options == OPTIONS


def test_a_moved_task_file_is_loaded_with_the_stored_options(tmp_path: Path) -> None:
    service = RunService(InMemoryStorage())
    service.start(_start(name="moved", generations=0)).optimize()
    copy = tmp_path / "moved_toy.py"
    shutil.copy(TOY_FILE, copy)
    resumed = service.resume(ResumeRequest(run="moved", task=f"{copy}:ToyTask", generations=1))
    assert [len(resumed.run.task.instances(s)) for s in Split] == [12, 6, 6]


def test_options_given_go_over_the_config_files() -> None:
    request = _start(config={"task_options": {"sizes": [8, 4, 4], "seed": 1}})
    assert request.run_config().task_options == {"sizes": [12, 6, 6], "seed": 7}
    partial = _start(config={"task_options": {"sizes": [8, 4, 4]}}, task_options={"seed": 2})
    assert partial.run_config().task_options == {"sizes": [8, 4, 4], "seed": 2}
    alone = _start(config={"task_options": {"seed": 3}}, task_options={})
    assert alone.run_config().task_options == {"seed": 3}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sizez": [4, 2, 2]}, "takes no option 'sizez' (did you mean 'sizes'?"),
        ({"sizes": [4, 2]}, "could not be created with sizes=[4,2]: ValueError"),
    ],
)
def test_a_bad_option_is_refused_at_creation_and_stores_nothing(
    options: dict[str, object], message: str
) -> None:
    service = RunService(InMemoryStorage())
    with pytest.raises(TaskError) as caught:
        service.start(_start(task_options=options))
    assert message in str(caught.value)
    assert service.storage.list_runs() == []


def test_options_for_a_task_object_are_refused() -> None:
    store = InMemoryStorage()
    with pytest.raises(TaskError, match="need a task spec, not a task object"):
        Run.create(task=ToyTask(), storage=store, config={"task_options": {"seed": 1}})
    assert store.list_runs() == []


def test_options_that_are_not_json_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"task_options: .*not a JSON value"):
        RunConfig.parse({"task_options": {"when": object()}})


def test_a_stored_option_that_no_longer_fits_fails_the_load_and_changes_nothing() -> None:
    store = InMemoryStorage()
    run = Run.create(task=TOY, storage=store, config={"task_options": OPTIONS}, name="old")
    config = {**run.record().config, "task_options": {"renamed": 1}}
    store.update_run_config(run.id, config)
    with pytest.raises(TaskError, match="takes no option 'renamed'"):
        RunService(store).resume(ResumeRequest(run="old", max_tokens=3))
    assert store.get_run(run.id).config["max_tokens"] is None  # the budget was not merged


def test_listings_show_the_options() -> None:
    store = InMemoryStorage()
    run = Run.create(task=TOY, storage=store, config={"task_options": OPTIONS})
    assert run.summary()["task_options"] == OPTIONS
    assert run_identity(run.record())["task_options"] == OPTIONS
    plain = Run.create(task=TOY, storage=store)
    assert plain.summary()["task_options"] == {}


def test_remote_callers_give_no_task_options() -> None:
    request = StartRequest(task="review", task_options={"n_train": 10})
    with pytest.raises(ConfigError, match="task options"):
        check_remote_start(request, RemoteCaller(token_protected=True))


def test_an_experiment_creates_every_run_with_the_options() -> None:
    store = InMemoryStorage()
    request = ExperimentRequest(
        task=TOY,
        task_options={"sizes": [8, 4, 4]},
        modes="hyperagent,no-archive",
        seeds=1,
        generations=1,
        config={"sandbox": "process"},
        name="grid",
    )
    records = run_experiment(request.spec(), storage=store, workers=1)
    assert len(records) == 2
    for record in records:
        assert record.config["task_options"] == {"sizes": [8, 4, 4]}
        assert len(Run.load(record.name, storage=store).task.instances(Split.TRAIN)) == 8
    rows = collect(store, "grid").rows
    assert {row["task"] for row in rows} == {"toy (sizes=[8,4,4])"}  # the report's task column
    other = request.model_copy(update={"task_options": {"sizes": [9, 4, 4]}})
    with pytest.raises(ConfigError, match=r"created with task options \(sizes=\[8,4,4\]\)"):
        run_experiment(other.spec(), storage=store, workers=1)

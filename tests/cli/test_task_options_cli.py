"""``--task-option KEY=VALUE`` on ``run`` and ``experiment``: stored with the run, shown where
the task is shown, rebuilt on ``resume``, refused by ``--replay``, and a bad one refused with
its name before anything is stored."""

from __future__ import annotations

import json
from pathlib import Path

from hyperagents.runs import Run
from hyperagents.storages import RDBStorage
from hyperagents.tasks import Split

from cli_helpers import invoke_wide

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"
SIZES = ("--task-option", "sizes=[12, 6, 6]", "--task-option", "seed=7")


def invoke(*args: str) -> tuple[int, str]:
    return invoke_wide(*args)


def _storage(tmp_path: Path) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    return url, ["--storage", url]


def test_run_stores_the_options_shows_them_and_resume_rebuilds_the_task(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    code, out = invoke("run", "-t", TOY, *SIZES, "-g", "1", "-w", "1", "-n", "opt", *storage)
    assert code == 0, out
    assert "task " + TOY + " (sizes=[12,6,6], seed=7)" in out  # the run's first line
    store = RDBStorage(url)
    try:
        record = store.get_run_by_name("opt")
        assert record.config["task_options"] == {"sizes": [12, 6, 6], "seed": 7}
        assert len(Run.load("opt", storage=store).task.instances(Split.TRAIN)) == 12
        code, out = invoke("status", "opt", *storage)
        assert code == 0 and "(sizes=[12,6,6], seed=7) / hyperagent / 0" in out
        code, out = invoke("runs", *storage)
        assert code == 0 and "toytask.py:ToyTask (sizes=[12,6,6], seed=7)" in out
        code, out = invoke("status", "opt", "--json", *storage)
        assert code == 0 and '"task_options": { "sizes": [ 12, 6, 6 ], "seed": 7 }' in out
        code, out = invoke("resume", "opt", "-g", "1", "-w", "1", "-q", *storage)
        assert code == 0, out
        assert store.count_variants(record.id) == 3
        assert store.get_run(record.id).config["task_options"] == record.config["task_options"]
    finally:
        store.close()


def test_options_go_over_the_config_files(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"task_options": {"sizes": [8, 4, 4], "seed": 1}}))
    args = ("run", "-t", TOY, "--config", str(config), "--task-option", "seed=2", "-g", "0")
    code, out = invoke(*args, "-q", "-w", "1", "-n", "merged", *storage)
    assert code == 0, out
    store = RDBStorage(url)
    try:
        assert store.get_run_by_name("merged").config["task_options"] == {
            "sizes": [8, 4, 4],
            "seed": 2,
        }
    finally:
        store.close()


def test_a_bad_option_is_an_error_that_names_it_and_stores_nothing(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    code, out = invoke("run", "-t", "review", "--task-option", "n_trian=5", "-q", *storage)
    assert code == 1
    assert "error: task 'review' takes no option 'n_trian' (did you mean 'n_train'?" in out
    code, out = invoke("run", "-t", "review", "--task-option", "n_train=0", "-q", *storage)
    assert code == 1 and "could not be created with n_train=0" in out
    code, out = invoke("run", "-t", "review", "--task-option", "n_train", "-q", *storage)
    assert code == 1 and "task option 'n_train': expected KEY=VALUE" in out
    store = RDBStorage(url)
    try:
        assert store.list_runs() == []  # no run was stored
    finally:
        store.close()


def test_replay_takes_the_options_from_the_record(tmp_path: Path) -> None:
    _, storage = _storage(tmp_path)
    code, out = invoke("run", "-t", TOY, *SIZES, "-g", "0", "-q", "-w", "1", "-n", "r", *storage)
    assert code == 0, out
    code, out = invoke("run", "--replay", "r", "--task-option", "seed=1", *storage)
    assert code == 1 and "drop --task-option" in out


def test_experiment_creates_its_runs_with_the_options(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    args = ("experiment", "-t", TOY, "--task-option", "sizes=[8, 4, 4]", "--modes", "hyperagent")
    code, out = invoke(*args, "--seeds", "1", "-g", "1", "-w", "1", "-n", "grid", "-q", *storage)
    assert code == 0, out
    store = RDBStorage(url)
    try:
        (record,) = store.list_runs()
        assert record.config["task_options"] == {"sizes": [8, 4, 4]}
    finally:
        store.close()

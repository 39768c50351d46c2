"""A start that fails leaves no run behind: everything is checked before anything is stored,
and a SQLite file it would have made is not left behind either."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents import Run
from hyperagents.cli import app
from hyperagents.exceptions import ConfigError, HyperagentsError, TaskError
from hyperagents.reports import ExperimentSpec, run_experiment
from hyperagents.runs import RunService, StartRequest
from hyperagents.storages import get_storage, storage_for_creation

TOY = str(Path(__file__).resolve().parents[1] / "toytask.py") + ":ToyTask"


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--sandbox", "bogus"], "unknown sandbox 'bogus'"),
        (["--llm", "bogus"], "invalid LLM spec 'bogus'"),
        (["--llm", "scripted:no-such-script.json"], "cannot read the LLM script"),
        (["--llm", "openai:gpt-4o-mini"], "OPENAI_API_KEY"),
    ],
)
def test_a_refused_run_command_stores_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], said: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    result = CliRunner().invoke(
        app, ["run", "--task", TOY, "-g", "1", "--storage", url, "-q", *options]
    )
    assert result.exit_code == 1, result.output
    assert said in result.output
    assert get_storage(url).list_runs() == []


def test_the_next_default_name_is_not_suffixed_after_a_refused_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with pytest.raises(ConfigError):
        Run.create(task=TOY, storage=url, config={"sandbox": "bogus"})
    with pytest.raises(HyperagentsError):
        Run.create(task=TOY, storage=url, config={"llm": "bogus"})
    run = Run.create(task=TOY, storage=url)
    assert run.name == "toy-hyperagent-s0"
    assert [r.name for r in get_storage(url).list_runs()] == ["toy-hyperagent-s0"]


def _db_content(path: Path) -> str:
    """A SQLite file's contents as SQL (schema and rows): what a write would change. Compared
    as content, not bytes: SQLite's header counters move when a connection merely checkpoints."""
    with closing(sqlite3.connect(path)) as conn:
        return "\n".join(conn.iterdump())


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["run", "--task", "review", "--task-option", "nosuch=1"], "takes no option 'nosuch'"),
        (["run", "--task", "review", "--task-option", "n_train=0"], "n_train must be"),
        (["run", "--task", TOY, "--meta-from", "99"], "variant 99 not found"),
        (["run", "--replay", "nosuch"], "run 'nosuch' not found"),
        (
            ["experiment", "--task", "review", "--task-option", "nosuch=1", "--seeds", "1"],
            "no option 'nosuch'",
        ),
        (["experiment", "--task", TOY, "--meta-from", "gone/1", "--modes", "hyperagent"], "gone"),
    ],
)
def test_a_refused_start_makes_no_database_and_keeps_one_that_existed(
    tmp_path: Path, command: list[str], said: str
) -> None:
    """Whatever refuses a start (the task, its options, a missing donor or record), a SQLite
    file named for the first time is not left behind, and an existing one is left as it was."""
    path = tmp_path / "new.db"
    storage = ["--storage", f"sqlite:///{path}", "-g", "1", "-q"]
    result = CliRunner().invoke(app, [*command, *storage])
    assert result.exit_code == 1, result.output
    assert said in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    old = tmp_path / "old.db"
    Run.create(task=TOY, storage=f"sqlite:///{old}", name="kept")
    before = _db_content(old)
    storage[1] = f"sqlite:///{old}"
    assert CliRunner().invoke(app, [*command, *storage]).exit_code == 1
    assert _db_content(old) == before
    assert [r.name for r in get_storage(f"sqlite:///{old}").list_runs()] == ["kept"]


def test_the_python_api_and_the_service_make_no_database_for_a_refused_start(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    with pytest.raises(TaskError, match="nosuch"):
        Run.create(task="review", storage=url, config={"task_options": {"nosuch": 1}})
    service = RunService(url)
    with pytest.raises(HyperagentsError):
        service.start(StartRequest(task=TOY, meta_from="99"))
    spec = ExperimentSpec.parse(
        name="e", task=TOY, modes="hyperagent", seeds=1, generations=1, meta_from="gone/1"
    )
    with pytest.raises(HyperagentsError, match="gone"):
        run_experiment(spec, storage=url)
    assert list(tmp_path.iterdir()) == []
    service.start(StartRequest(task=TOY, name="made"))  # the same service, once it is right
    assert [r.name for r in service.storage.list_runs()] == ["made"]
    service.close()


def test_a_new_file_that_holds_a_run_is_kept_when_a_later_step_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    with pytest.raises(KeyboardInterrupt), storage_for_creation(url) as store:
        Run.create(task=TOY, storage=store, name="first")
        raise KeyboardInterrupt
    assert [r.name for r in get_storage(url).list_runs()] == ["first"]
    memory = get_storage("memory")
    with pytest.raises(ConfigError), storage_for_creation(memory) as given:
        raise ConfigError("refused")
    assert given is memory

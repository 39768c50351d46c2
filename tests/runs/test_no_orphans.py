"""A start that fails leaves no run behind: everything is checked before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents import Run
from hyperagents.cli import app
from hyperagents.exceptions import ConfigError, HyperagentsError
from hyperagents.storages import get_storage

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

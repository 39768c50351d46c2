"""``--timeout`` and ``--max-seconds``: seconds must be positive and finite; ``run --timeout`` is
a hidden old name of ``--max-seconds`` (the stored time budget); ``resume --timeout`` bounds one
resume and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperagents.cli import _app
from hyperagents.storages import RDBStorage

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app.app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("value", ["-1", "0", "inf", "nan", "-inf"])
@pytest.mark.parametrize(
    "command",
    [
        ("run", "-t", TOY, "-g", "1", "--timeout"),
        ("run", "-t", TOY, "-g", "1", "--max-seconds"),
        ("resume", "x", "--timeout"),
        ("resume", "x", "--max-seconds"),
    ],
)
def test_seconds_must_be_positive_and_finite(
    tmp_path: Path, command: tuple[str, ...], value: str
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    code, out = invoke(*command, value, "--storage", url)
    assert code == 2, out
    assert "must be a positive number of seconds" in out
    assert not (tmp_path / "runs.db").exists()  # refused before anything was stored


def test_run_timeout_is_the_stored_time_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    args = ("run", "-t", TOY, "-g", "1", "-w", "1", "--subset-size", "10", "-q", "--storage", url)
    code, out = invoke(*args, "-n", "old", "--timeout", "600")
    assert code == 0, out
    storage = RDBStorage(url)
    assert storage.get_run_by_name("old").config["max_seconds"] == 600
    code, out = invoke(*args, "-n", "both", "--timeout", "600", "--max-seconds", "60")
    assert code == 1 and "--timeout is the old name of --max-seconds" in out
    assert [r.name for r in storage.list_runs()] == ["old"]
    storage.close()


def test_help_shows_max_seconds_on_run_and_timeout_on_resume() -> None:
    _, shown = invoke("run", "--help")
    assert "--max-seconds" in shown and "--timeout" not in shown
    _, shown = invoke("resume", "--help")
    assert "--timeout" in shown and "this resume" in shown and "not stored" in shown

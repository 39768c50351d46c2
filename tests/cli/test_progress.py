"""Progress of a run: a bar with the time remaining on a terminal, plain lines elsewhere; and
what the end of a run says (warnings, what to do next)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from hyperagents.cli._progress import GenerationProgress, plain_every

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    proc = subprocess.run(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "200"},
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


class Clock:
    """A clock that moves 61 seconds per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 61.0
        return self.now


def test_plain_lines_when_the_console_is_not_a_terminal() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=False, width=80)
    with GenerationProgress(console, "r", total=40, done=0, clock=Clock()) as progress:
        for generation in range(40):
            progress.best(generation / 100)
            progress.advance()
    lines = sink.getvalue().splitlines()
    assert len(lines) == 20  # every second generation
    assert lines[0] == "r: generation 2/40, best val 0.0100, elapsed 0:01:01"
    assert lines[-1] == "r: generation 40/40, best val 0.3900, elapsed 0:20:20"


def test_quiet_prints_nothing_and_the_last_generation_always_shows() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=False)
    with GenerationProgress(console, "r", total=5, quiet=True) as progress:
        progress.advance()
    assert sink.getvalue() == ""
    with GenerationProgress(console, "r", total=25, done=22, show_best=False) as progress:
        for _ in range(3):
            progress.advance()
    assert [line.split(",")[0] for line in sink.getvalue().splitlines()] == [
        "r: generation 23/25",
        "r: generation 24/25",
        "r: generation 25/25",
    ]


def test_evaluations_advance_by_many_and_lines_name_the_unit() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=False)
    with GenerationProgress(
        console, "x", total=60, show_best=False, unit="evaluation", clock=Clock()
    ) as progress:
        for count in (3, 1, 3, 3):
            progress.advance(count)
    lines = [line.split(",")[0] for line in sink.getvalue().splitlines()]
    # A line whenever a multiple of the step (3 for 60) is passed, not only hit.
    assert lines == ["x: evaluation 3/60", "x: evaluation 7/60", "x: evaluation 10/60"]


def test_the_cli_default_arms_are_the_experiments() -> None:
    import inspect

    from hyperagents.cli._experiment_cmd import _ModesOpt, experiment
    from hyperagents.reports import DEFAULT_MODES, ExperimentRequest

    # The command leaves --modes unset: the request's default arms apply (none with --levels).
    parameter = inspect.signature(experiment).parameters["modes"]
    assert parameter.default is None and "random" in DEFAULT_MODES.split(",")
    assert f"[default: {DEFAULT_MODES};" in _ModesOpt.__metadata__[0].help
    spec = ExperimentRequest(task="shipping").spec(task_name="shipping")
    assert ",".join(mode.value for mode in spec.modes) == DEFAULT_MODES


def test_plain_every() -> None:
    assert [plain_every(n) for n in (1, 20, 30, 60, 1000)] == [1, 1, 2, 3, 50]


def test_a_terminal_gets_a_bar_with_the_time_remaining() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, width=150)
    with GenerationProgress(console, "r", total=10) as progress:
        progress.best(0.5)
        progress.advance()
    shown = sink.getvalue()
    assert "ETA" in shown and "1/10" in shown and "best val 0.5000" in shown
    assert "generation 1/10" not in shown  # no plain lines on a terminal


def test_a_run_logs_progress_warnings_and_next_steps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    args = ["-t", TOY, "-g", "3", "-w", "1", "--subset-size", "10", "--storage", url]
    proc = cli("run", *args, "-n", "p", "--selector", "program", cwd=tmp_path)
    err = proc.stderr
    assert "p: generation 3/3, best val" in err  # stderr is a pipe here: plain lines
    warning = "warning: --selector program: the champion has no select_parent.py"
    assert warning in err and err.index(warning) < err.index("generation 1/3")  # at the start
    assert f"next: hyperagents show p/champion --storage {url}" in err
    assert f"hyperagents dashboard --storage {url}" in err
    shown = cli("status", "p", "--storage", url, cwd=tmp_path).stdout
    assert "warning" in shown and "select_parent.py" in shown
    info = json.loads(cli("status", "p", "--storage", url, "--json", cwd=tmp_path).stdout)
    assert len(info["warnings"]) == 1 and "score_child" in info["warnings"][0]
    quiet = cli("run", *args, "-n", "q", "-q", cwd=tmp_path).stderr
    assert "next:" not in quiet and "generation" not in quiet

"""Running ``hyperagents`` as a user would: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_env() -> dict[str, str]:
    """The test process's environment without a default storage, and a wide terminal."""
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    env["COLUMNS"] = "200"
    return env


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hyperagents ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env=cli_env(),
        text=True,
        capture_output=True,
        timeout=600,
    )


def spawn_cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start ``python -m hyperagents ARGS`` in ``cwd`` (to kill it, or wait for it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env=cli_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def invoke_wide(*args: str, width: int = 200) -> tuple[int, str]:
    """Run the command in this process (Typer's runner) with ``width`` columns, and return its
    exit code and output with whitespace collapsed.

    The command's consoles are made when the CLI is imported, so ``COLUMNS`` given to the
    runner would not reach them: their width is set for the call instead, and a table whose
    cells hold long temporary paths does not wrap in the middle of what a test looks for.
    """
    from typer.testing import CliRunner

    from hyperagents.cli import _app, _shared

    consoles = (_shared.console, _shared.err_console)
    before = [c._width for c in consoles]  # what the console was given (None: measured)
    for console in consoles:
        console.width = width
    try:
        result = CliRunner().invoke(_app.app, list(args), env={"COLUMNS": str(width)})
    finally:
        for console, old in zip(consoles, before, strict=True):
            console._width = old
    return result.exit_code, " ".join(result.output.split())


def wrapped_task(folder: Path, task: str) -> str:
    """A task spec (``FILE.py:Wrapped``) of built-in ``task`` inside a plain
    :class:`~hyperagents.tasks.TaskWrapper` (its options handed on), as a plug-in that wraps
    a task (live data, feedback) is: the commands must look through it."""
    path = folder / f"wrapped_{Path(task).name}.py"
    path.write_text(
        "from hyperagents.tasks import TaskWrapper, load_task\n\n\n"
        "class Wrapped(TaskWrapper):\n"
        "    def __init__(self, **options):\n"
        f"        super().__init__(load_task({task!r}, options))\n",
        encoding="utf-8",
    )
    return f"{path}:Wrapped"

"""The ``hyperagents`` Typer application.

Defined here: ``dashboard``, ``tasks`` and ``init-task``. The other commands live in modules of
this package by group (``_run_cmd``: run, resume; ``_experiment_cmd``: experiment, report;
``_task_cmd``: test-task; ``_arena_cmd``: arena;
``_status``: runs, status; ``_inspect``: show, diff, lineage, export; ``_steer``: approve,
reject, pin, ban, stop, delete; ``_audit_cmd``: audit; ``_service_cmd``: serve, feedback,
promote, rollback, autopilot, wanted; ``_play_cmd``: play; ``_rubric_cmd``: rubric draft;
``_weights_cmd``: weights export-gguf) and are
registered here, in the order ``--help`` lists them. Commands that create, drive or steer runs
call the application service (:class:`hyperagents.runs.RunService`).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hyperagents.cli import _inspect, _run_cmd, _status, _steer
from hyperagents.cli._arena_cmd import arena
from hyperagents.cli._audit_cmd import audit
from hyperagents.cli._experiment_cmd import experiment, report
from hyperagents.cli._play_cmd import play
from hyperagents.cli._rubric_cmd import rubric_app
from hyperagents.cli._service_cmd import autopilot, feedback, promote, rollback, serve, wanted
from hyperagents.cli._shared import (
    HostOpt,
    StorageOpt,
    app,
    console,
    err_console,
    errors,
    existing_storage,
    shown_url,
)
from hyperagents.cli._task_cmd import test_task
from hyperagents.cli._weights_cmd import weights_app

__all__ = ["app", "console", "err_console", "main"]


# -- commands defined in their own modules, in the order --help lists them ------------------
app.command()(_run_cmd.run)
app.command()(experiment)
app.command()(arena)
app.command()(report)
app.command()(_run_cmd.resume)
app.command("runs")(_status.list_runs)
app.command()(_status.status)
app.command()(_inspect.show)
app.command()(_inspect.diff)
app.command()(_inspect.lineage)
app.command()(_inspect.export)
app.command()(_steer.approve)
app.command()(_steer.reject)
app.command()(_steer.pin)
app.command()(_steer.ban)
app.command()(_steer.label)
app.command()(audit)
app.command()(_steer.stop)
app.command()(_steer.delete)
app.command("test-task")(test_task)
app.command()(serve)
app.command()(feedback)
app.command()(wanted)
app.command()(play)
app.add_typer(rubric_app, name="rubric")
app.command()(promote)
app.command()(rollback)
app.command()(autopilot)
app.add_typer(weights_app, name="weights")


# -- dashboard ------------------------------------------------------------------------------
@app.command()
def dashboard(
    storage: StorageOpt = None,
    host: HostOpt = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            help="Required by every request when given [default: $HYPERAGENTS_DASHBOARD_TOKEN].",
            show_default=False,
        ),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option(help="Where engines started from the dashboard write their output."),
    ] = None,
) -> None:
    """Watch and steer runs in the browser (reads the storage; engines run on their own)."""
    from hyperagents.dashboard import TOKEN_ENV_VAR, check_binding, serve
    from hyperagents.storages import DEFAULT_STORAGE_URL, STORAGE_ENV_VAR

    with errors():
        url = storage or os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL
        secret = token or os.environ.get(TOKEN_ENV_VAR) or None
        check_binding(host, secret)
        existing_storage(url).close()
        shown = f"[{host}]" if ":" in host else host
        link = f"http://{shown}:{port}/"
        err_console.print(f"dashboard of {escape(shown_url(url))} at [bold]{link}[/]")
        if secret is not None:
            err_console.print(f"open {link}?token=… once (the token you gave) to sign in")
        serve(url, host=host, port=port, token=secret, log_dir=log_dir)


# -- tasks ----------------------------------------------------------------------------------
@app.command()
def tasks() -> None:
    """List the tasks that can be run (built-in and installed plugins)."""
    from hyperagents.tasks import list_tasks

    with errors():
        table = Table(title="tasks")
        for column in ("name", "source", "target", "description", "options"):
            table.add_column(column, overflow="fold")
        for info in list_tasks():
            table.add_row(info.name, info.source, info.target, info.description, info.options)
        console.print(table)
        console.print(
            "Any task can also be given as [bold]path/to/file.py:ClassName[/], or as a task "
            "folder in the seed format ([bold]path/to/folder[/] with config.py, "
            "initial_solution.py, benchmark.py)."
        )
        console.print("Give a task option with [bold]--task-option KEY=VALUE[/] (run, experiment).")


@app.command("init-task")
def init_task(
    name: Annotated[str, typer.Argument(help="Task name (a Python identifier).")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to create the folder (default: ./NAME).")
    ] = None,
    copy_meta: Annotated[
        bool,
        typer.Option(
            "--copy-meta",
            help="Copy the offline meta agent into seed/ to edit it there "
            "(default: the task uses the installed one).",
        ),
    ] = False,
) -> None:
    """Scaffold a new task folder with a seed hyperagent and a test (standard library only)."""
    from hyperagents.tasks import scaffold_task, task_class_name

    with errors():
        target = scaffold_task(name, directory or Path(name), copy_meta=copy_meta)
        spec = shlex.quote(f"{target / 'task.py'}:{task_class_name(name)}")
        test = shlex.quote(str(target / f"test_{name}.py"))
        console.print(f"created task [bold]{name}[/] in {escape(str(target))}", highlight=False)
        console.print(f"  test it: {escape(_python())} {escape(test)}", highlight=False)
        console.print(f"  run it:  hyperagents run --task {escape(spec)} -g 5", highlight=False)


def _python() -> str:
    """How a shell calls this interpreter: ``python`` (or ``python3``) when that name finds
    this very executable (an activated virtual environment), else its full path."""
    here = os.path.abspath(sys.executable)
    for command in ("python", "python3"):
        found = shutil.which(command)
        if found is not None and os.path.abspath(found) == here:
            return command
    return shlex.quote(here)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # A run's warnings are printed by the commands themselves (Run.warnings), not logged twice.
    logging.getLogger("hyperagents.run_warnings").propagate = False
    app()

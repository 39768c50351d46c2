"""The ``hyperagents`` Typer application.

Defined here: the commands that create and drive a run (``run``, ``resume``), the listings
(``runs``, ``status``), ``dashboard``, ``tasks`` and ``init-task``. The others live in small
modules of this package (``_experiment_cmd``: experiment, report; ``_inspect``: show, diff,
lineage, export; ``_steer``: approve, reject, pin, ban, stop, delete; ``_audit_cmd``: audit) and
are registered here, in the order ``--help`` lists them.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hyperagents.cli import _inspect, _steer
from hyperagents.cli._audit_cmd import audit
from hyperagents.cli._drive import drive
from hyperagents.cli._experiment_cmd import experiment, report
from hyperagents.cli._shared import (
    ConfigFileError,
    StorageOpt,
    UnsafeSandboxOpt,
    allow_unsafe_sandbox,
    app,
    console,
    err_console,
    errors,
    existing_storage,
    fmt_value,
    positive_seconds,
    read_config,
    shown_url,
    storage_label,
)
from hyperagents.cli._status import print_status
from hyperagents.constitution import load_constitution
from hyperagents.runs import SELECTORS, Mode, Run, RunConfig
from hyperagents.runs._owner import engine_state, status_label
from hyperagents.runs._resolve import find_run, meta_donor
from hyperagents.storages import (
    BaseStorage,
    RunStatus,
    VariantState,
    get_storage,
)

__all__ = ["app", "console", "err_console", "main"]


#: ``run`` options that ``--replay`` takes from the recorded run instead.
_REPLAY_FIXED = (  # (--sandbox and --workers apply: they do not change results)
    "meta_from",
    "task",
    "mode",
    "seed",
    "selector",
    "subset_size",
    "config",
    "meta",
    "llm",
    "max_cost",
    "max_tokens",
    "max_seconds",
    "timeout",
    "max_evaluations",
    "constitution",
    "approval",
    "approval_threshold",
    "quarantine",
)


def _on_command_line(ctx: typer.Context, option: str) -> bool:
    """Whether the user gave ``option`` (not its default or an environment variable)."""
    # Compared by name: click has moved ParameterSource between modules across versions.
    source = ctx.get_parameter_source(option)
    return getattr(source, "name", None) == "COMMANDLINE"


def _replay_name(store: BaseStorage, original: str) -> str:
    """``ORIGINAL-replay``, or ``ORIGINAL-replay-N`` for the first N >= 2 not taken."""
    taken = {r.name for r in store.list_runs()}
    name = f"{original}-replay"
    n = 2
    while name in taken:
        name = f"{original}-replay-{n}"
        n += 1
    return name


@app.command()
def run(
    ctx: typer.Context,
    task: Annotated[
        str, typer.Option("--task", "-t", help="Task name or path/file.py:Class.")
    ] = "review",
    mode: Annotated[
        Mode, typer.Option("--mode", "-m", help="How children are made.")
    ] = Mode.HYPERAGENT,
    generations: Annotated[
        int, typer.Option("--generations", "-g", min=0, help="Generations to run.")
    ] = 30,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed of the run.")] = 0,
    storage: StorageOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Parallel sandboxed workers [default: the number of CPUs]; also how many "
            "generations may overlap, which is stored with the run (give it explicitly to "
            "reproduce a run on a machine of another size).",
            show_default=False,
        ),
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option(help="Where agent code runs: auto (bwrap if available), bwrap, process."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Run name (unique).")] = None,
    selector: Annotated[
        str | None, typer.Option(help=f"Parent selector: {', '.join(SELECTORS)}.")
    ] = None,
    subset_size: Annotated[
        int | None, typer.Option(min=1, help="Train instances in the first evaluation stage.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(hidden=True, callback=positive_seconds, help="Old name of --max-seconds."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="JSON file with run config values.")] = None,
    meta: Annotated[
        str | None,
        typer.Option(
            help="Seed meta agent: task (the task's own), offline, or llm (edits any file "
            "with the --llm model)."
        ),
    ] = None,
    llm: Annotated[
        str | None,
        typer.Option(
            help="Language model for agents that call llm.complete: openai:MODEL, "
            "http://HOST/v1#MODEL, anthropic:MODEL, local[:FILE.gguf] (extra 'local'), "
            "scripted:FILE."
        ),
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option(min=0, help="LLM budget in US dollars (stops the run).")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=0, help="LLM budget in tokens (stops the run).")
    ] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option(
            callback=positive_seconds,
            help="Time budget: engine seconds over all resumes (no new generation starts after "
            "it; the work in flight finishes).",
        ),
    ] = None,
    max_evaluations: Annotated[
        int | None,
        typer.Option(min=0, help="Evaluation budget: evaluation stages run (stops the run)."),
    ] = None,
    quarantine: Annotated[
        bool,
        typer.Option(
            "--quarantine",
            help="Re-check a would-be champion on fresh held-out data; a suspicious gain "
            "(a gap between stages, or a jump far beyond the run's history) waits for review.",
        ),
    ] = False,
    approval: Annotated[
        str | None,
        typer.Option(
            help="auto (default), manual (a child that would become champion or changes the "
            "meta agent waits for `hyperagents approve`), or threshold."
        ),
    ] = None,
    approval_threshold: Annotated[
        float | None,
        typer.Option(min=0, help="threshold mode: the val gain over the champion that waits."),
    ] = None,
    constitution: Annotated[
        Path | None,
        typer.Option(
            help="Rules every child must keep (TOML or YAML): protected paths, forbidden "
            "imports and calls, size limits, custom rules; soft rules lower the objective."
        ),
    ] = None,
    meta_from: Annotated[
        str | None,
        typer.Option(
            metavar="VARIANT",
            help="Start with this variant's meta agent (e.g. evolved on another task: "
            "RUN/champion); the task agent is the task's own seed.",
        ),
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option(
            metavar="RUN",
            help="Re-run RUN (same task, mode, seed and config), answering every LLM request "
            "from its record: no model is called. -g replays only the first generations.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display, no suggestions.")
    ] = False,
    unsafe_process_sandbox: UnsafeSandboxOpt = False,
) -> None:
    """Create a run and improve the task's seed hyperagent for GENERATIONS generations."""
    allow_unsafe_sandbox(unsafe_process_sandbox)
    with errors():
        if timeout is not None:
            if max_seconds is not None:
                raise ConfigFileError(
                    "--timeout is the old name of --max-seconds: give --max-seconds only"
                )
            max_seconds = timeout
        if replay is not None:
            _replay(ctx, replay, generations, name, storage, sandbox, workers, quiet)
            return
        data = read_config(config)
        workers = workers or os.cpu_count() or 1
        cfg = RunConfig.parse(
            data,
            sandbox=sandbox,
            selector=selector,
            subset_size=subset_size,
            parallel_generations=workers if workers > 1 else None,
            llm=llm,
            max_cost=max_cost,
            max_tokens=max_tokens,
            max_seconds=max_seconds,
            max_evaluations=max_evaluations,
            meta_agent=meta,
            constitution=None
            if constitution is None
            else load_constitution(constitution).as_config(),
            approval=approval,
            approval_threshold=approval_threshold,
            quarantine=quarantine or None,
        )
        store = get_storage(storage)
        donor, attrs = meta_donor(store, meta_from) if meta_from is not None else (None, {})
        the_run = Run.create(
            task=task,
            name=name,
            mode=mode,
            seed=seed,
            storage=store,
            config=cfg,
            attrs=attrs,
            meta_from=donor,
            generations=generations,  # stored with the run: a resume goes on to it
        )
        if not quiet:
            err_console.print(
                f"run [bold]{escape(the_run.name)}[/]: task {escape(task)}, mode {mode.value}, "
                f"seed {seed}, storage {escape(storage_label(store))}",
                highlight=False,
                soft_wrap=True,
            )
        drive(the_run, None, None, workers, quiet, storage=storage)


def _replay(
    ctx: typer.Context,
    replay: str,
    generations: int,
    name: str | None,
    storage: str | None,
    sandbox: str | None,
    workers: int | None,
    quiet: bool,
) -> None:
    """``run --replay RUN``: re-run RUN from its record (no model is called).

    Raises:
        ConfigFileError: An option the record fixes was given, or more generations than the
            record holds.
    """
    given = [
        "--" + option.replace("_", "-") for option in _REPLAY_FIXED if _on_command_line(ctx, option)
    ]
    if given:
        raise ConfigFileError(
            f"--replay takes the task, mode, seed, model and config from {replay}'s "
            f"record: drop {', '.join(given)}"
        )
    store = get_storage(storage)
    original = find_run(store, replay)
    recorded = RunConfig.parse(dict(original.config), replay_of=original.name, sandbox=sandbox)
    target = original.target_generations
    if original.status is not RunStatus.COMPLETE:
        # Replay no further than the record goes: up to the last generation before the first
        # unfinished one (with overlapping generations, a later one may have finished while an
        # earlier one was cut off).
        target = 0
        for v in sorted(store.list_variants(original.id), key=lambda v: v.generation):
            if not v.state.is_terminal:
                break
            target = v.generation
    if _on_command_line(ctx, "generations"):
        if generations > int(target or 0):
            raise ConfigFileError(
                f"the record of {original.name} goes to generation {int(target or 0)}: "
                f"it cannot replay {generations}"
            )
        target = generations
    the_run = Run.create(
        task=original.task,
        name=name or _replay_name(store, original.name),
        mode=original.mode,
        seed=original.seed,
        storage=store,
        config=recorded,
        generations=int(target or 0),
    )
    if not quiet:
        err_console.print(f"replaying [bold]{escape(original.name)}[/] as {escape(the_run.name)}")
    drive(the_run, None, None, workers or recorded.parallel_generations, quiet, storage=storage)


app.command()(experiment)
app.command()(report)


@app.command()
def resume(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run name or id.")],
    storage: StorageOpt = None,
    generations: Annotated[
        int | None,
        typer.Option("--generations", "-g", min=0, help="Generations to add to the target."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Parallel sandboxed workers "
            "[default: the number of CPUs]; results do not depend on it.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            callback=positive_seconds,
            help="Seconds of this resume after which no new generation starts (not stored; "
            "--max-seconds sets the run's time budget over all resumes).",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display, no suggestions.")
    ] = False,
    task: Annotated[
        str | None,
        typer.Option("--task", "-t", help="Load the task from here instead (e.g. a moved file)."),
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option(min=0, help="New LLM budget in US dollars.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(min=0, help="New LLM budget in tokens.")] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option(
            callback=positive_seconds,
            help="New time budget: engine seconds over all resumes, this one included (stored).",
        ),
    ] = None,
    max_evaluations: Annotated[
        int | None, typer.Option(min=0, help="New evaluation budget (stages run).")
    ] = None,
    no_budget: Annotated[
        bool,
        typer.Option(
            "--no-budget",
            help="Lift the budgets (dollars, tokens, seconds, evaluations) not given again "
            "with their --max-* options.",
        ),
    ] = False,
    unsafe_process_sandbox: UnsafeSandboxOpt = False,
) -> None:
    """Continue a run where it stopped (after a crash, kill, timeout, interrupt or budget)."""
    allow_unsafe_sandbox(unsafe_process_sandbox)
    from hyperagents.tasks import load_task

    with errors():
        given = {
            "max_cost": max_cost,
            "max_tokens": max_tokens,
            "max_seconds": max_seconds,
            "max_evaluations": max_evaluations,
        }
        if no_budget or any(v is not None for v in given.values()):
            store = existing_storage(storage)
            record = find_run(store, run_name)
            changes: dict[str, Any] = dict.fromkeys(given) if no_budget else {}
            changes.update({k: v for k, v in given.items() if v is not None})
            merged = {**dict(record.config), **changes}
            store.update_run_config(record.id, RunConfig.parse(merged).model_dump(mode="json"))
        the_run = Run.load(
            run_name,
            storage=existing_storage(storage),
            task=load_task(task) if task is not None else None,
        )
        drive(the_run, generations, timeout, workers or os.cpu_count() or 1, quiet, storage=storage)


@app.command("runs")
def list_runs(storage: StorageOpt = None) -> None:
    """List all runs in the storage."""
    with errors():
        store = existing_storage(storage)
        table = Table(title=f"runs in {storage_label(store)}")
        for column in (
            "id",
            "name",
            "task",
            "mode",
            "seed",
            "status",
            "variants",
            "best val",
            "created",
        ):
            table.add_column(column, overflow="fold")
        for record in store.list_runs():
            variants = store.list_variants(record.id)
            vals = [
                v.scores["val"]
                for v in variants
                if v.state is VariantState.COMPLETE and "val" in v.scores
            ]
            table.add_row(
                str(record.id),
                record.name,
                record.task,
                record.mode,
                str(record.seed),
                status_label(record),
                str(len(variants)),
                fmt_value(max(vals) if vals else None),
                record.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)


@app.command()
def status(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Best scores per split, archive size, generations and time of a run, whether an engine
    drives it ("running (engine dead)": resume it), and its warnings."""
    with errors():
        the_run = Run.load(run_name, storage=existing_storage(storage))
        if as_json:
            engine = engine_state(the_run.record()).value
            shown = {**the_run.summary(), "engine": engine, "warnings": the_run.warnings()}
            console.print_json(json.dumps(shown))
        else:
            print_status(the_run)


# -- commands defined in their own modules, in the order --help lists them ------------------
app.command()(_inspect.show)
app.command()(_inspect.diff)
app.command()(_inspect.lineage)
app.command()(_inspect.export)
app.command()(_steer.approve)
app.command()(_steer.reject)
app.command()(_steer.pin)
app.command()(_steer.ban)
app.command()(audit)
app.command()(_steer.stop)
app.command()(_steer.delete)


# -- dashboard ------------------------------------------------------------------------------
@app.command()
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs a token.")
    ] = "127.0.0.1",
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
        for column in ("name", "source", "target", "description"):
            table.add_column(column, overflow="fold")
        for info in list_tasks():
            table.add_row(info.name, info.source, info.target, info.description)
        console.print(table)
        console.print("Any task can also be given as [bold]path/to/file.py:ClassName[/].")


@app.command("init-task")
def init_task(
    name: Annotated[str, typer.Argument(help="Task name (a Python identifier).")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to create the folder (default: ./NAME).")
    ] = None,
) -> None:
    """Scaffold a new task folder with a seed hyperagent and a test (standard library only)."""
    from hyperagents.tasks._scaffold import scaffold_task, task_class_name

    with errors():
        target = scaffold_task(name, directory or Path(name))
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

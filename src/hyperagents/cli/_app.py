"""Typer application: ``hyperagents run | resume | runs | status | show | diff | lineage | export |
experiment | report | stop | approve | reject | pin | ban | audit | dashboard | tasks |
init-task``."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from hyperagents._untrusted import printable
from hyperagents.constitution import load_constitution
from hyperagents.exceptions import (
    HyperagentsError,
    RunStateError,
    StorageURLError,
    VariantNotFoundError,
)
from hyperagents.runs import SELECTORS, Mode, Run, RunConfig, request_stop
from hyperagents.runs._audit import AUDIT_COLUMNS, audit_rows
from hyperagents.runs._diffs import DiffLimits, ProgramDiff, compare, unified_text
from hyperagents.runs._export import EXPORT_COLUMNS, champion_of, csv_text, run_export, variant_row
from hyperagents.runs._owner import engine_state, status_label
from hyperagents.runs._resolve import find_run, meta_donor, resolve_variant
from hyperagents.storages import (
    BaseStorage,
    RunRecord,
    RunStatus,
    VariantRecord,
    VariantState,
    get_storage,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="hyperagents",
    help="Self-referential self-improving agents: run, resume and inspect experiments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Storage URL (default: $HYPERAGENTS_STORAGE or sqlite:///hyperagents.db).",
        show_default=False,
    ),
]
UnsafeSandboxOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe-process-sandbox",
        help="Let the process sandbox run agent code as root without a private uid (also "
        "$HYPERAGENTS_UNSAFE_PROCESS_SANDBOX=1). Agent code can then read the engine's "
        "environment (API keys, database passwords) and files and signal its processes: only "
        "on a machine with nothing to protect.",
    ),
]


def _allow_unsafe_sandbox(allowed: bool) -> None:
    """Pass the opt-in on to every sandbox this process (and its children) creates."""
    if allowed:
        from hyperagents.sandbox import UNSAFE_PROCESS_SANDBOX_ENV

        os.environ[UNSAFE_PROCESS_SANDBOX_ENV] = "1"


class AuditFormat(StrEnum):
    """Formats of ``audit``."""

    table = "table"
    csv = "csv"
    json = "json"


class ExportFormat(StrEnum):
    """Formats of ``export``."""

    csv = "csv"
    json = "json"


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors into one-line messages and exit code 1."""
    try:
        yield
    except (HyperagentsError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err_console.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False)
        raise typer.Exit(1) from None


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- what agents wrote ----------------------------------------------------------------------
# Every text an agent wrote (files, diffs, reasons, meta info, feedback, event messages) goes
# through these: control characters shown as escapes, never obeyed by the terminal, and never
# read as Rich markup (see hyperagents._untrusted).
def _agent(value: object) -> Text:
    """Agent-written text as a Rich cell: escaped, never markup."""
    return Text(printable(value))


def _emit(text: str, out: Path | None) -> None:
    """Write an export to ``out`` as it is, or to the terminal (stdout) made printable."""
    if out is None:
        sys.stdout.write(printable(text))
    else:
        out.write_text(text, encoding="utf-8")


# -- run / resume ---------------------------------------------------------------------------
def _drive(
    run: Run, generations: int | None, timeout: float | None, workers: int, quiet: bool
) -> None:
    target = run.target_after(generations)
    best: dict[str, float | None] = {"val": None}
    for v in run.variants():
        if v.state is VariantState.COMPLETE and "val" in v.scores:
            best["val"] = max(best["val"] or v.scores["val"], v.scores["val"])
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("best val {task.fields[best]}"),
        console=err_console,
        disable=quiet,
        transient=False,
    )
    done_before = sum(1 for v in run.variants() if v.generation > 0 and v.state.is_terminal)
    with progress:
        bar = progress.add_task(
            run.name, total=max(target, 1), completed=done_before, best=_fmt(best["val"])
        )

        def on_variant(_: Run, variant: VariantRecord) -> None:
            if variant.state is VariantState.COMPLETE and "val" in variant.scores:
                best["val"] = max(best["val"] or variant.scores["val"], variant.scores["val"])
            if variant.generation > 0 and variant.state.is_terminal:
                progress.advance(bar)
            progress.update(bar, best=_fmt(best["val"]))

        run.optimize(generations, timeout=timeout, workers=workers, callbacks=[on_variant])
    _print_status(run)
    if run.record().status is RunStatus.STOPPED and run.last_stop_reason not in (
        None,
        "interrupted",
    ):
        err_console.print(f"stopped: {escape(str(run.last_stop_reason))}")
    if run.last_stop_reason == "interrupted":
        err_console.print(f"interrupted: continue with `hyperagents resume {run.name}`")
        raise typer.Exit(130)


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
        float | None, typer.Option(help="Stop starting generations after this many seconds.")
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
        typer.Option(min=0, help="Time budget: engine seconds over all resumes (stops the run)."),
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    unsafe_process_sandbox: UnsafeSandboxOpt = False,
) -> None:
    """Create a run and improve the task's seed hyperagent for GENERATIONS generations."""
    _allow_unsafe_sandbox(unsafe_process_sandbox)
    with _errors():
        if replay is not None:
            given = [
                "--" + option.replace("_", "-")
                for option in _REPLAY_FIXED
                if _on_command_line(ctx, option)
            ]
            if given:
                raise _ConfigFileError(
                    f"--replay takes the task, mode, seed, model and config from {replay}'s "
                    f"record: drop {', '.join(given)}"
                )
            store = get_storage(storage)
            original = _find_run(store, replay)
            recorded = RunConfig.parse(
                dict(original.config), replay_of=original.name, sandbox=sandbox
            )
            target = original.attrs.get("target_generations")
            if original.status is not RunStatus.COMPLETE:
                # Replay no further than the record goes: up to the last generation before
                # the first unfinished one (with overlapping generations, a later one may have
                # finished while an earlier one was cut off).
                target = 0
                for v in sorted(store.list_variants(original.id), key=lambda v: v.generation):
                    if not v.state.is_terminal:
                        break
                    target = v.generation
            if _on_command_line(ctx, "generations"):
                if generations > int(target or 0):
                    raise _ConfigFileError(
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
                err_console.print(f"replaying [bold]{original.name}[/] as {the_run.name}")
            _drive(the_run, None, timeout, workers or recorded.parallel_generations, quiet)
            return
        data = _read_config(config)
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
                f"run [bold]{the_run.name}[/]: task {task}, mode {mode.value}, "
                f"seed {seed}, storage {_storage_label(store)}"
            )
        _drive(the_run, None, timeout, workers, quiet)


class _ConfigFileError(HyperagentsError):
    pass


def _read_config(config: Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _ConfigFileError(f"cannot read config {config}: {exc}") from exc
    if not isinstance(data, dict):
        raise _ConfigFileError(f"config {config} must hold a JSON object")
    return data


@app.command()
def experiment(
    task: Annotated[
        str, typer.Option("--task", "-t", help="Task name or path/file.py:Class.")
    ] = "review",
    modes: Annotated[
        str, typer.Option(help="Comma-separated modes to compare.")
    ] = "hyperagent,frozen-meta,no-archive",
    seeds: Annotated[
        int, typer.Option(min=1, help="Independent replicates per mode (seeds 0..N-1).")
    ] = 5,
    generations: Annotated[
        int, typer.Option("--generations", "-g", min=0, help="Generations per run.")
    ] = 30,
    storage: StorageOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Runs driven at once [default: the number of CPUs]; results do not depend on it.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Experiment name [default: TASK-experiment]."),
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option(help="Where agent code runs: auto (bwrap if available), bwrap, process."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="JSON file with run config values (all runs).")
    ] = None,
    meta_from: Annotated[
        str | None,
        typer.Option(
            metavar="VARIANT",
            help="Transfer: also run each mode with this variant's meta agent (e.g. evolved "
            "on another task: RUN/champion), as the arm MODE+transfer.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    unsafe_process_sandbox: UnsafeSandboxOpt = False,
) -> None:
    """Run every mode × seed of a task in one storage (again: continue where it stopped)."""
    _allow_unsafe_sandbox(unsafe_process_sandbox)
    from hyperagents.reports import ExperimentSpec, experiment_runs, run_experiment
    from hyperagents.tasks import load_task

    with _errors():
        data = _read_config(config)
        if sandbox is not None:
            data["sandbox"] = sandbox
        task_name = load_task(task).name
        spec = ExperimentSpec.parse(
            name=name or f"{task_name}-experiment",
            task=task,
            modes=modes,
            seeds=seeds,
            generations=generations,
            config=data,
            meta_from=meta_from,
        )
        store = get_storage(storage)
        total = len(spec.arms()) * len(spec.seeds) * spec.generations
        done = sum(
            1
            for record in experiment_runs(store, spec.name)
            for v in store.list_variants(record.id)
            if v.generation > 0 and v.state.is_terminal
        )
        count = workers or os.cpu_count() or 1
        if not quiet:
            err_console.print(
                f"experiment [bold]{spec.name}[/]: task {task_name}, "
                f"{', '.join(m.value for m in spec.modes)} × {len(spec.seeds)} seeds × "
                f"{spec.generations} generations, {count} run(s) at once"
            )
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=quiet,
        )

        with progress:
            bar = progress.add_task(spec.name, total=max(total, done), completed=done)

            def on_variant(run: Run, variant: VariantRecord) -> None:
                if variant.generation > 0:
                    progress.advance(bar)

            try:
                records = run_experiment(spec, storage=store, workers=count, callbacks=[on_variant])
            except KeyboardInterrupt:
                err_console.print("interrupted: run the same command again to continue")
                raise typer.Exit(130) from None
        _print_experiment(store, records)


@app.command()
def report(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Experiment or run name (or id).")],
    storage: StorageOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output directory [default: report-NAME].")
    ] = None,
    k: Annotated[int, typer.Option(min=1, help="The k of imp@k.")] = 50,
) -> None:
    """Write tables, figures, statistics, Markdown and HTML for an experiment or a run."""
    from hyperagents.reports import build_report

    with _errors():
        written = build_report(name, storage=_existing_storage(storage), out=out, k=k)
        for kind, path in written.files.items():
            console.print(f"{kind}: {path}", highlight=False, soft_wrap=True)


def _print_experiment(store: BaseStorage, records: list[RunRecord]) -> None:
    table = Table(title="experiment runs")
    table.add_column("run (experiment-arm-seed)", no_wrap=True)
    for column in ("status", "generations", "best val", "its test"):
        table.add_column(column, no_wrap=True)
    for record in records:
        complete = [
            v
            for v in store.list_variants(record.id, states=[VariantState.COMPLETE])
            if "val" in v.scores
        ]
        best = min(complete, key=lambda v: (-v.scores["val"], v.generation), default=None)
        last = max((v.generation for v in store.list_variants(record.id)), default=0)
        table.add_row(
            record.name,
            record.status.name.lower(),
            str(last),
            _fmt(best.scores.get("val") if best else None),
            _fmt(best.scores.get("test") if best else None),
        )
    console.print(table)


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
    timeout: Annotated[float | None, typer.Option()] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    task: Annotated[
        str | None,
        typer.Option("--task", "-t", help="Load the task from here instead (e.g. a moved file)."),
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option(min=0, help="New LLM budget in US dollars.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(min=0, help="New LLM budget in tokens.")] = None,
    max_seconds: Annotated[
        float | None, typer.Option(min=0, help="New time budget in engine seconds.")
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
    _allow_unsafe_sandbox(unsafe_process_sandbox)
    from hyperagents.tasks import load_task

    with _errors():
        given = {
            "max_cost": max_cost,
            "max_tokens": max_tokens,
            "max_seconds": max_seconds,
            "max_evaluations": max_evaluations,
        }
        if no_budget or any(v is not None for v in given.values()):
            store = _existing_storage(storage)
            record = _find_run(store, run_name)
            changes: dict[str, Any] = dict.fromkeys(given) if no_budget else {}
            changes.update({k: v for k, v in given.items() if v is not None})
            merged = {**dict(record.config), **changes}
            store.update_run_config(record.id, RunConfig.parse(merged).model_dump(mode="json"))
        the_run = Run.load(
            run_name,
            storage=_existing_storage(storage),
            task=load_task(task) if task is not None else None,
        )
        _drive(the_run, generations, timeout, workers or os.cpu_count() or 1, quiet)


# -- inspection -----------------------------------------------------------------------------
def _existing_storage(url: str | None) -> BaseStorage:
    """Open a storage for reading: a SQLite file that does not exist is an error, not a new
    empty database."""
    from hyperagents.storages import DEFAULT_STORAGE_URL, STORAGE_ENV_VAR

    resolved = url or os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL
    if resolved.startswith("sqlite:///") and "?" not in resolved:
        path = resolved[len("sqlite:///") :]
        if path and path != ":memory:" and not os.path.exists(path):
            raise StorageURLError(
                f"no database at {path} (give --storage or set {STORAGE_ENV_VAR})"
            )
    return get_storage(resolved)


def _shown_url(url: str) -> str:
    """A storage URL fit to print: no password, no query."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True).split("?")[0]
    except Exception:  # not a database URL ("memory"): nothing secret in it
        return url.split("?")[0]


def _storage_label(store: BaseStorage) -> str:
    return str(getattr(store, "url", type(store).__name__))


@app.command("runs")
def list_runs(storage: StorageOpt = None) -> None:
    """List all runs in the storage."""
    with _errors():
        store = _existing_storage(storage)
        table = Table(title=f"runs in {_storage_label(store)}")
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
                _fmt(max(vals) if vals else None),
                record.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)


def _print_status(the_run: Run) -> None:
    info = the_run.summary()
    table = Table(title=f"run {info['run']}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("task / mode / seed", f"{info['task']} / {info['mode']} / {info['seed']}")
    table.add_row("status", status_label(the_run.record()))
    table.add_row("generations", f"{info['generations']} of {info['target_generations']}")
    table.add_row("archive (complete)", f"{info['archive_size']} of {info['variants']} variants")
    table.add_row("states", ", ".join(f"{k} {v}" for k, v in sorted(info["states"].items())))
    elapsed = f"{info['elapsed_seconds']:.1f} s"
    if info.get("max_seconds") is not None:
        elapsed += f" of {info['max_seconds']:g} s"
    table.add_row("elapsed", elapsed)
    evaluations = str(info.get("evaluations", 0))
    if info.get("max_evaluations") is not None:
        evaluations += f" of {info['max_evaluations']}"
    table.add_row("evaluations", evaluations)
    seed_scores, champ = info["seed_scores"], info["champion"]
    for split in ("train", "val", "test"):
        row = f"seed {_fmt(seed_scores.get(split))}"
        if champ is not None:
            row += f"  →  champion {_fmt(champ['scores'].get(split))}"
        table.add_row(f"{split} score", row)
    if champ is not None:
        table.add_row(
            "champion", f"variant {champ['variant_id']} (generation {champ['generation']})"
        )
    llm = info.get("llm")
    if llm is not None:
        source = f"replay of {llm['replay_of']}" if llm["replay_of"] else llm["model"]
        tokens = llm["prompt_tokens"] + llm["completion_tokens"]
        spent = f"{tokens} tokens"
        if llm["max_tokens"] is not None:
            spent += f" of {llm['max_tokens']}"
        spent += f", ${llm['cost']:.4f}"
        if llm["max_cost"] is not None:
            spent += f" of ${llm['max_cost']:.4f}"
        table.add_row(
            "LLM",
            f"{escape(str(source))}: {llm['calls']} calls ({llm['cached']} cached, "
            f"{llm['errors']} failed attempts); {spent}",
        )
    console.print(table)


@app.command()
def status(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Best scores per split, archive size, generations and time of a run, and whether an
    engine drives it ("running (engine dead)": resume it)."""
    with _errors():
        the_run = Run.load(run_name, storage=_existing_storage(storage))
        if as_json:
            engine = engine_state(the_run.record()).value
            console.print_json(json.dumps({**the_run.summary(), "engine": engine}))
        else:
            _print_status(the_run)


def _find_run(store: BaseStorage, name: str) -> RunRecord:
    """A run by name, or by id when no run has that (all-digit) name."""
    return find_run(store, name)


def _resolve_variant(spec: str, store: BaseStorage) -> VariantRecord:
    """``ID``, ``#ID``, ``RUN/GEN``, ``RUN/champion``, ``RUN/seed``."""
    return resolve_variant(store, spec)


@app.command()
def show(
    variant: Annotated[
        str, typer.Argument(metavar="VARIANT", help="ID, RUN/GENERATION or RUN/champion.")
    ],
    storage: StorageOpt = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="Print this file.")] = None,
    failures: Annotated[int, typer.Option(help="Failing instances to list per stage.")] = 5,
) -> None:
    """Files, scores, metrics and per-instance feedback of a variant."""
    with _errors():
        store = _existing_storage(storage)
        record = _resolve_variant(variant, store)
        run_record = store.get_run(record.run_id)
        program = store.get_program(record.program_id) if record.program_id else None
        if file is not None:
            if program is None or file not in program:
                raise VariantNotFoundError(f"variant {record.id} has no file {file!r}")
            console.print(Syntax(printable(program.text(file)), "python", line_numbers=True))
            return
        table = Table(
            title=f"variant {record.id}: run {run_record.name}, generation {record.generation}",
            show_header=False,
        )
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        table.add_row("state", record.state.name.lower())
        table.add_row("parent", "-" if record.parent_id is None else str(record.parent_id))
        if record.reason:
            table.add_row("reason", _agent(record.reason))
        for stage, value in record.scores.items():
            table.add_row(_agent(f"score {stage}"), _fmt(value))
        for stage, metrics in record.metrics.items():
            if isinstance(metrics, dict):
                shown = {k: v for k, v in metrics.items() if k != "log_tail"}
                table.add_row(
                    _agent(f"metrics {stage}"),
                    _agent(
                        ", ".join(
                            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in shown.items()
                        )
                    ),
                )
        if record.meta_info:
            info = {k: v for k, v in record.meta_info.items() if k not in ("params",)}
            table.add_row("meta info", _agent(json.dumps(info, sort_keys=True)[:1500]))
        if program is not None:
            files = ", ".join(f"{p} ({len(program[p])} B)" for p in program)
            table.add_row("files", _agent(files))
            table.add_row("program", program.id)
        console.print(table)
        for evaluation in store.list_evaluations(record.id):
            worst = sorted(evaluation.results, key=lambda r: r.get("score", 0))[:failures]
            worst = [r for r in worst if r.get("score", 0) < run_record_max(evaluation)]
            if not worst:
                continue
            sub = Table(title=_agent(f"{evaluation.stage}: lowest-scoring instances"))
            for column in ("instance", "score", "feedback"):
                sub.add_column(column, overflow="fold")
            for r in worst:
                sub.add_row(
                    _agent(r.get("id")),
                    _agent(_fmt(r.get("score"))),
                    _agent(str(r.get("feedback"))[:300]),
                )
            console.print(sub)


def run_record_max(evaluation: Any) -> float:
    """Highest per-instance score of an evaluation (instances below it are shown)."""
    return max((float(r.get("score", 0)) for r in evaluation.results), default=0.0)


@app.command()
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="Variant (ID, RUN/GEN, RUN/champion).")],
    b: Annotated[
        str | None,
        typer.Argument(
            metavar="B", help="Other variant (default: A's parent, diffed as parent → A)."
        ),
    ] = None,
    storage: StorageOpt = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Print the diff however large it is (no size limits)."),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the whole diff to this file, as it is (no size limits)."
        ),
    ] = None,
) -> None:
    """Unified diff between two variants' programs (or a variant and its parent).

    A diff larger than the limits (512 KiB or 10,000 lines per file, 4 MiB or 40,000 lines in
    all, 4 MiB printed) is not computed: a notice says why; --out FILE or --full asks for it.
    """
    with _errors():
        store = _existing_storage(storage)
        first = _resolve_variant(a, store)
        if b is None:
            if first.parent_id is None:
                raise RunStateError(f"variant {first.id} has no parent; give two variants")
            old, new = store.get_variant(first.parent_id), first
        else:
            old, new = first, _resolve_variant(b, store)
        for v in (old, new):
            if v.program_id is None:
                raise RunStateError(f"variant {v.id} has no program ({v.state.name.lower()})")
        assert old.program_id is not None and new.program_id is not None
        before, after = store.get_program(old.program_id), store.get_program(new.program_id)
        if out is not None:
            text = before.diff(after)
            out.write_text(text, encoding="utf-8")
            err_console.print(f"wrote the diff ({len(text)} characters) to {escape(str(out))}")
            return
        if full:
            text = before.diff(after)
        else:
            limits = DiffLimits()
            compared = compare(before, after, limits=limits)
            if not compared.complete:
                _too_large(compared, old.id, new.id, None)
            bounded = unified_text(compared, limit=limits.output_bytes)
            if bounded is None:
                _too_large(compared, old.id, new.id, f"over {limits.output_bytes // 2**20} MiB")
            text = bounded
        if not text:
            console.print(f"variants {old.id} and {new.id} have identical programs")
        elif sys.stdout.isatty():
            console.print(Syntax(printable(text), "diff"))
        else:
            sys.stdout.write(printable(text))


def _too_large(compared: ProgramDiff, old: int, new: int, why: str | None) -> NoReturn:
    """Say that a diff is too large to print (and which files it changes); exit 1.

    Raises:
        typer.Exit: Always.
    """
    why = why or compared.too_large or next(f.too_large for f in compared.files if f.too_large)
    err_console.print(
        f"the diff of variants {old} and {new} is too large to print: {escape(printable(why))}",
        highlight=False,
    )
    for file in compared.files[:20]:
        note = f": {file.too_large}" if file.too_large and not compared.too_large else ""
        err_console.print(
            f"  {file.status} {escape(printable(file.path))} "
            f"({file.old_size} → {file.new_size} bytes){escape(printable(note))}",
            highlight=False,
        )
    if len(compared.files) > 20:
        err_console.print(f"  … and {len(compared.files) - 20} more files")
    err_console.print("write it to a file with --out FILE, or print it anyway with --full")
    raise typer.Exit(1)


@app.command()
def lineage(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    storage: StorageOpt = None,
    all_variants: Annotated[
        bool, typer.Option("--all", help="Include failed, invalid and pruned children.")
    ] = False,
    max_depth: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """The archive as a tree in the terminal (champion path in bold)."""
    with _errors():
        store = _existing_storage(storage)
        record = _find_run(store, run_name)
        variants = store.list_variants(record.id)
        by_parent: dict[int | None, list[VariantRecord]] = {}
        for v in variants:
            if all_variants or v.state is VariantState.COMPLETE or v.generation == 0:
                by_parent.setdefault(v.parent_id, []).append(v)
        champ = champion_of(variants)
        path: set[int] = set()
        by_id = {v.id: v for v in variants}
        node = champ
        while node is not None:
            path.add(node.id)
            node = by_id.get(node.parent_id) if node.parent_id is not None else None

        def label(v: VariantRecord) -> str:
            score = v.scores.get("val")
            text = f"#{v.id} gen {v.generation} val {_fmt(score)}"
            if v.state is not VariantState.COMPLETE:
                text += f" [dim]{v.state.name.lower()}[/]"
            if champ is not None and v.id == champ.id:
                text += " [bold green]★ champion[/]"
            return f"[bold]{text}[/]" if v.id in path else text

        roots = by_parent.get(None, [])
        tree = Tree(f"run {record.name}")

        def add(parent_tree: Tree, v: VariantRecord, depth: int) -> None:
            branch = parent_tree.add(label(v))
            if max_depth is not None and depth >= max_depth:
                return
            for child in by_parent.get(v.id, []):
                add(branch, child, depth + 1)

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
        for root in roots:
            add(tree, root, 1)
        console.print(tree)


@app.command()
def export(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.csv,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Export a run's variants (scores, metrics, lineage) as CSV or JSON."""
    with _errors():
        store = _existing_storage(storage)
        record = _find_run(store, run_name)
        variants = store.list_variants(record.id)
        if fmt is ExportFormat.csv:
            text = csv_text((variant_row(v) for v in variants), EXPORT_COLUMNS)
        else:
            payload = run_export(record, variants)
            text = json.dumps(payload, indent=2, default=str) + "\n"
        _emit(text, out)
        if out is not None:
            err_console.print(f"wrote {len(variants)} variants to {escape(str(out))}")


def _decide(spec: str, storage: str | None, action: str, note: str | None) -> None:
    from hyperagents.runs import approve, ban, pin, reject

    store = _existing_storage(storage)
    variant = _resolve_variant(spec, store)
    who = f"{_whoami()} (command line)"
    if action == "approve":
        approve(store, variant, who=who, note=note)
        said = "approved: it may now be a parent and the champion"
    elif action == "reject":
        reject(store, variant, who=who, note=note)
        said = "rejected: it will never be a parent or the champion"
    elif action == "pin":
        pin(store, variant, who=who)
        said = "pinned: the run's next child is made from it"
    else:
        ban(store, variant, who=who, note=note)
        said = "banned: neither it nor its descendants will be parents"
    err_console.print(f"variant {variant.id}: {said}")


NoteOpt = Annotated[str | None, typer.Option("--note", "-m", help="Why (recorded).")]
VariantArg = Annotated[
    str, typer.Argument(metavar="VARIANT", help="ID, RUN/GENERATION or RUN/champion.")
]


@app.command()
def approve(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Approve a child waiting for approval (run with --approval manual or threshold)."""
    with _errors():
        _decide(variant, storage, "approve", note)


@app.command()
def reject(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Reject a child waiting for approval: it is never used as a parent."""
    with _errors():
        _decide(variant, storage, "reject", note)


@app.command()
def pin(variant: VariantArg, storage: StorageOpt = None) -> None:
    """Make a variant the parent of its run's next child."""
    with _errors():
        _decide(variant, storage, "pin", None)


@app.command()
def ban(variant: VariantArg, storage: StorageOpt = None, note: NoteOpt = None) -> None:
    """Ban a variant's lineage (it and its descendants) as parents."""
    with _errors():
        _decide(variant, storage, "ban", note)


@app.command()
def audit(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run name or id.")],
    storage: StorageOpt = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="Only these kinds (repeatable).")
    ] = None,
    variant: Annotated[
        str | None, typer.Option(help="Only this variant (ID, RUN/GEN, RUN/champion).")
    ] = None,
    fmt: Annotated[AuditFormat, typer.Option("--format", "-f")] = AuditFormat.table,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
) -> None:
    """Every state change of a run (created, validated, rejected, evaluated, promoted, stopped…)
    with who or what decided and why; as a table, CSV or JSON."""
    with _errors():
        store = _existing_storage(storage)
        record = _find_run(store, run_name)
        variant_id = _resolve_variant(variant, store).id if variant is not None else None
        rows = audit_rows(store, record, kinds=kind or None, variant_id=variant_id)
        if fmt is AuditFormat.table and out is None:
            table = Table(title=f"audit log of {record.name} ({len(rows)} entries)")
            for column in ("time", "kind", "variant", "by", "why"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(
                    row["time"][:19].replace("T", " "),
                    _agent(row["kind"]),
                    ""
                    if row["variant_id"] is None
                    else f"#{row['variant_id']} (g{row['generation']})",
                    _agent(row["by"]),
                    _agent(row["why"]),
                )
            console.print(table)
            return
        if fmt is AuditFormat.json:
            text = json.dumps({"run": record.name, "entries": rows}, indent=2) + "\n"
        else:
            text = csv_text(rows, AUDIT_COLUMNS)
        _emit(text, out)
        if out is not None:
            err_console.print(f"wrote {len(rows)} entries to {escape(str(out))}")


@app.command()
def stop(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run name or id.")],
    storage: StorageOpt = None,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Kill the engine and its sandboxed agents at once (the work in flight is "
            "redone on resume) instead of letting it finish.",
        ),
    ] = False,
) -> None:
    """Stop a run from any process (its engine finishes the work in flight; resumable)."""
    with _errors():
        store = _existing_storage(storage)
        record = _find_run(store, run_name)
        said = request_stop(store, record, who=f"the command line ({_whoami()})", now=now)
        err_console.print(f"{escape(record.name)}: {escape(said)}")


def _whoami() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no user name in this environment
        return f"uid {os.getuid()}"


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

    with _errors():
        url = storage or os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL
        secret = token or os.environ.get(TOKEN_ENV_VAR) or None
        check_binding(host, secret)
        _existing_storage(url).close()
        shown = f"[{host}]" if ":" in host else host
        link = f"http://{shown}:{port}/"
        err_console.print(f"dashboard of {escape(_shown_url(url))} at [bold]{link}[/]")
        if secret is not None:
            err_console.print(f"open {link}?token=… once (the token you gave) to sign in")
        serve(url, host=host, port=port, token=secret, log_dir=log_dir)


# -- tasks ----------------------------------------------------------------------------------
@app.command()
def tasks() -> None:
    """List the tasks that can be run (built-in and installed plugins)."""
    from hyperagents.tasks import list_tasks

    with _errors():
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
    """Scaffold a new task folder with a seed hyperagent and a test."""
    from hyperagents.tasks._scaffold import scaffold_task

    with _errors():
        target = scaffold_task(name, directory or Path(name))
        console.print(f"created task [bold]{name}[/] in {target}")
        console.print(
            f"  try it:  hyperagents run --task {target / 'task.py'}:{_class_name(name)} -g 5"
        )
        console.print(f"  test it: pytest {target}")


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Task"


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()

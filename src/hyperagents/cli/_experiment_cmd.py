"""``hyperagents experiment`` (a grid of runs: modes × seeds) and ``hyperagents report``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hyperagents.cli._drive import terminate_as_interrupt
from hyperagents.cli._progress import GenerationProgress
from hyperagents.cli._shared import (
    DeviceOpt,
    StorageOpt,
    TaskOptionOpt,
    UnsafeSandboxOpt,
    allow_unsafe_sandbox,
    console,
    err_console,
    errors,
    existing_storage,
    fmt_value,
    read_config,
    task_option_values,
)
from hyperagents.runs import Run
from hyperagents.storages import (
    BaseStorage,
    RunRecord,
    VariantRecord,
    VariantState,
    storage_for_creation,
)

if TYPE_CHECKING:
    from hyperagents.reports import ExperimentSpec

__all__ = ["experiment", "report"]


# -- the options of ``experiment`` ------------------------------------------------------
_TaskOpt = Annotated[
    str,
    typer.Option(
        "--task", "-t", help="Task name, path/file.py:Class or a seed-format task folder."
    ),
]
_ModesOpt = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated arms to compare: the modes hyperagent, frozen-meta, no-archive, "
        "and the baselines random, optuna-tpe, optuna-cmaes (extra 'optuna') [default: "
        "hyperagent,frozen-meta,no-archive,random; none with --levels].",
        show_default=False,
    ),
]
_LevelsOpt = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated levels to compare, each an arm: autoresearch, feedback, "
        "hyperagent, arena (same task, seeds and budgets; the report gives each one's cost "
        "per task).",
        show_default=False,
    ),
]
_SeedsOpt = Annotated[
    int, typer.Option(min=1, help="Independent replicates per mode (seeds 0..N-1).")
]
_GenerationsOpt = Annotated[
    int | None,
    typer.Option(
        "--generations",
        "-g",
        min=0,
        help="Generations per run [default: 30, or with --evaluations as many as evaluations].",
        show_default=False,
    ),
]
_EvaluationsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Stage evaluations per run (its evaluation budget): compare arms at equal "
        "evaluations, whatever each spends per generation.",
    ),
]
_WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        help="Runs driven at once [default: the number of CPUs]; results do not depend on it.",
        show_default=False,
    ),
]
_NameOpt = Annotated[
    str | None,
    typer.Option("--name", "-n", help="Experiment name [default: TASK-experiment]."),
]
_SandboxOpt = Annotated[
    str | None,
    typer.Option(help="Where agent code runs: auto (bwrap if available), bwrap, process."),
]
_ConfigOpt = Annotated[
    Path | None, typer.Option(help="JSON file with run config values (all runs).")
]
_MetaFromOpt = Annotated[
    str | None,
    typer.Option(
        metavar="VARIANT",
        help="Transfer: also run each mode with this variant's meta agent (e.g. evolved "
        "on another task: RUN/champion), as the arm MODE+transfer.",
    ),
]
_LeversOpt = Annotated[
    str | None,
    typer.Option(
        help="The levers ablation: comma-separated harness, weights, both (what a child may "
        "change: code, a weight update, or both); two or more give each mode an arm per "
        "lever (MODE+LEVER), one sets every run's [default: both].",
        show_default=False,
    ),
]
_QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def experiment(
    ctx: typer.Context,
    task: _TaskOpt = "review",
    task_options: TaskOptionOpt = None,
    modes: _ModesOpt = None,  # reports.DEFAULT_MODES
    levels: _LevelsOpt = None,
    seeds: _SeedsOpt = 5,
    generations: _GenerationsOpt = None,
    evaluations: _EvaluationsOpt = None,
    storage: StorageOpt = None,
    workers: _WorkersOpt = None,
    name: _NameOpt = None,
    sandbox: _SandboxOpt = None,
    config: _ConfigOpt = None,
    meta_from: _MetaFromOpt = None,
    levers: _LeversOpt = None,
    device: DeviceOpt = None,
    quiet: _QuietOpt = False,
    unsafe_process_sandbox: UnsafeSandboxOpt = False,
) -> None:
    """Run every mode (or level) × seed of a task in one storage (again: continue where it
    stopped)."""
    allow_unsafe_sandbox(unsafe_process_sandbox)
    from hyperagents.reports import (
        MIN_SEEDS,
        ExperimentRequest,
        experiment_progress,
        progress_unit,
    )
    from hyperagents.tasks import load_task, stored_task_options, task_label

    with errors():
        given = {k: v for k, v in ctx.params.items() if k in ExperimentRequest.model_fields}
        given |= {"config": read_config(config), "task_options": task_option_values(task_options)}
        request = ExperimentRequest(**given)  # every option gives the field of its name
        options = stored_task_options(request.run_config())
        task_name = load_task(task, options).name
        spec = request.spec(task_name=task_name)
        count = request.engine_workers
        if not quiet:
            _announce(spec, task_label(task_name, options), count)
        if len(spec.seeds) < MIN_SEEDS:
            err_console.print(
                f"[yellow]warning:[/] {len(spec.seeds)} seed(s) per mode: `hyperagents report` "
                f"needs at least {MIN_SEEDS} for confidence intervals (5 or more to compare modes)"
            )
        with storage_for_creation(storage) as store:  # refused before a run: no new file
            total, done = experiment_progress(store, spec)
            progress = GenerationProgress(
                err_console, spec.name, total=total, done=done, show_best=False, quiet=quiet,
                unit=progress_unit(spec),
            )  # fmt: skip
            records = _run_grid(spec, store, count, progress)
        _print_experiment(store, records)


def _announce(spec: ExperimentSpec, task_name: str, count: int) -> None:
    """Say what the experiment runs, on standard error."""
    arms = ", ".join(dict.fromkeys(arm.label for arm in spec.arms()))
    err_console.print(
        f"experiment [bold]{escape(spec.name)}[/]: task {escape(task_name)}, "
        f"{escape(arms)} × {len(spec.seeds)} seeds × "
        f"{spec.generations} generations{_budget(spec)}, {count} run(s) at once",
        highlight=False,
    )


def _budget(spec: ExperimentSpec) -> str:
    """`` (at most N evaluations each)`` when the runs have an evaluation budget."""
    budget = spec.config.get("max_evaluations")
    return f" (at most {budget} evaluations each)" if budget is not None else ""


def _run_grid(
    spec: ExperimentSpec, store: BaseStorage, count: int, progress: GenerationProgress
) -> list[RunRecord]:
    """Run the experiment, ``count`` runs at once, advancing ``progress`` per generation.

    Raises:
        typer.Exit: Interrupted (130) or terminated (143); the same command continues it.
    """
    from hyperagents.archive import search_evaluations
    from hyperagents.reports import progress_unit, run_experiment

    by_evaluations = progress_unit(spec) == "evaluation"

    def on_variant(run: Run, variant: VariantRecord) -> None:
        if by_evaluations:
            progress.advance(len(variant.scores))
        elif variant.generation > 0:
            progress.advance()

    def on_driven(variant: VariantRecord) -> None:  # a round of an arena arm
        if by_evaluations:
            progress.advance(search_evaluations(variant) + ("test" in variant.scores))
        elif variant.generation > 0:
            progress.advance()

    with progress, terminate_as_interrupt() as signals:  # SIGTERM stops the runs as Ctrl-C does
        try:
            return run_experiment(
                spec, storage=store, workers=count, callbacks=[on_variant], on_driven=on_driven
            )
        except KeyboardInterrupt:
            said = "terminated (SIGTERM)" if signals else "interrupted"
            err_console.print(f"{said}: run the same command again to continue")
            raise typer.Exit(143 if signals else 130) from None


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

    with errors():
        written = build_report(name, storage=existing_storage(storage), out=out, k=k)
        for kind, path in written.files.items():
            console.print(f"{kind}: {escape(str(path))}", highlight=False, soft_wrap=True)
        for warning in written.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


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
            fmt_value(best.scores.get("val") if best else None),
            fmt_value(best.scores.get("test") if best else None),
        )
    console.print(table)

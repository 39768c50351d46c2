"""The commands that create and drive a run: ``run`` (``--replay`` included) and ``resume``.

Each turns its options into one request of the application service
(:class:`~hyperagents.runs.RunService`) and drives the run it gets back (:func:`drive`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hyperagents.cli._drive import drive
from hyperagents.cli._level_cmd import drive_level, run_driven
from hyperagents.cli._shared import (
    ConfigFileError,
    DeviceOpt,
    StorageOpt,
    TaskOptionOpt,
    UnsafeSandboxOpt,
    allow_unsafe_sandbox,
    err_console,
    errors,
    existing_storage,
    positive_seconds,
    read_config,
    storage_label,
    task_option_values,
)
from hyperagents.runs import (
    LEVELS,
    SELECTORS,
    LevelDrive,
    Mode,
    ReplayRequest,
    ResumeRequest,
    RunService,
    StartRequest,
    level_preset,
)
from hyperagents.tasks import task_label

__all__ = ["resume", "run"]

#: ``run`` options that ``--replay`` takes from the recorded run instead.
_REPLAY_FIXED = (  # (--sandbox and --workers apply: they do not change results)
    "meta_from",
    "seed_from",
    "task",
    "task_options",
    "mode",
    "level",
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
    "levers",
)


# -- the options of ``run`` -------------------------------------------------------------
_TaskOpt = Annotated[
    str,
    typer.Option(
        "--task", "-t", help="Task name, path/file.py:Class or a seed-format task folder."
    ),
]
_ModeOpt = Annotated[
    Mode | None,
    typer.Option(
        "--mode",
        "-m",
        help="How children are made [default: the level's, else hyperagent].",
        show_default=False,
    ),
]
_LevelOpt = Annotated[
    str | None,
    typer.Option(
        "--level",
        help="A level preset of the engine (sets the mode and the settings that make it): "
        f"{', '.join(LEVELS)} (autoresearch: improve-and-keep; feedback: + a reviewer after "
        "each evaluation; hyperagent: self-rewriting meta agents; arena: code and test agents "
        "co-evolving, -g rounds, for tasks with a trusted oracle).",
        show_default=False,
    ),
]
_GenerationsOpt = Annotated[
    int, typer.Option("--generations", "-g", min=0, help="Generations to run.")
]
_SeedOpt = Annotated[int, typer.Option("--seed", "-s", help="Random seed of the run.")]
_WorkersOpt = Annotated[
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
]
_SandboxOpt = Annotated[
    str | None,
    typer.Option(
        help="Where agent code runs: auto (bwrap if available), bwrap, process, or ray (a Ray "
        "cluster, extra 'ray'; each job sandboxed with bwrap on its node)."
    ),
]
_RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        help="The Ray cluster of --sandbox ray (implies it): auto, ray://HOST:PORT or "
        "HOST:PORT [default: a local Ray instance].",
        show_default=False,
    ),
]
_NameOpt = Annotated[str | None, typer.Option("--name", "-n", help="Run name (unique).")]
_SelectorOpt = Annotated[str | None, typer.Option(help=f"Parent selector: {', '.join(SELECTORS)}.")]
_SubsetSizeOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Train instances in the first evaluation stage (default: auto, a quarter of "
        "train within 10 to 50, all of it up to 20; stored with the run).",
        show_default=False,
    ),
]
_TimeoutOpt = Annotated[
    float | None,
    typer.Option(hidden=True, callback=positive_seconds, help="Old name of --max-seconds."),
]
_ConfigOpt = Annotated[Path | None, typer.Option(help="JSON file with run config values.")]
_MetaOpt = Annotated[
    str | None,
    typer.Option(
        help="Seed meta agent: task (the task's own), offline, or llm (edits any file "
        "with the --llm model)."
    ),
]
_LlmOpt = Annotated[
    str | None,
    typer.Option(
        help="Language model for agents that call llm.complete: openai:MODEL, "
        "http://HOST/v1#MODEL, anthropic:MODEL, local[:FILE.gguf] (extra 'local'), "
        "scripted:FILE."
    ),
]
_MaxCostOpt = Annotated[
    float | None, typer.Option(min=0, help="LLM budget in US dollars (stops the run).")
]
_MaxTokensOpt = Annotated[
    int | None, typer.Option(min=0, help="LLM budget in tokens (stops the run).")
]
_MaxSecondsOpt = Annotated[
    float | None,
    typer.Option(
        callback=positive_seconds,
        help="Time budget: engine seconds over all resumes (no new generation starts after "
        "it; the work in flight finishes).",
    ),
]
_MaxEvaluationsOpt = Annotated[
    int | None,
    typer.Option(min=0, help="Evaluation budget: evaluation stages run (stops the run)."),
]
_QuarantineOpt = Annotated[
    bool,
    typer.Option(
        "--quarantine",
        help="Re-check a would-be champion on fresh held-out data; a suspicious gain "
        "(a gap between stages, or a jump far beyond the run's history) waits for review.",
    ),
]
_ApprovalOpt = Annotated[
    str | None,
    typer.Option(
        help="auto (default), manual (a child that would become champion or changes the "
        "meta agent waits for `hyperagents approve`), or threshold."
    ),
]
_ApprovalThresholdOpt = Annotated[
    float | None,
    typer.Option(min=0, help="threshold mode: the val gain over the champion that waits."),
]
_ConstitutionOpt = Annotated[
    Path | None,
    typer.Option(
        help="Rules every child must keep (TOML or YAML): protected paths, forbidden "
        "imports and calls, size limits, custom rules; soft rules lower the objective."
    ),
]
_LeversOpt = Annotated[
    str | None,
    typer.Option(
        help="What a child may change: harness (code edits only), weights (weight updates "
        "only, through the program's trainer.py), or both, as the meta agent's "
        "training_plan.json chooses [default: both].",
        show_default=False,
    ),
]
_MetaFromOpt = Annotated[
    str | None,
    typer.Option(
        metavar="VARIANT",
        help="Start with this variant's meta agent (e.g. evolved on another task: "
        "RUN/champion); the task agent is the task's own seed.",
    ),
]
_SeedFromOpt = Annotated[
    str | None,
    typer.Option(
        metavar="VARIANT",
        help="Start from this variant's whole program as the seed (e.g. a served champion: "
        "RUN/champion), its own meta agent included.",
    ),
]
_ReplayOpt = Annotated[
    str | None,
    typer.Option(
        metavar="RUN",
        help="Re-run RUN (same task, mode, seed and config), answering every LLM request "
        "from its record: no model is called. -g replays only the first generations.",
    ),
]
_QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress display, no suggestions.")
]


def _on_command_line(ctx: typer.Context, option: str) -> bool:
    """Whether the user gave ``option`` (not its default or an environment variable)."""
    # Compared by name: click has moved ParameterSource between modules across versions.
    source = ctx.get_parameter_source(option)
    return getattr(source, "name", None) == "COMMANDLINE"


def run(
    ctx: typer.Context,
    task: _TaskOpt = "review",
    task_options: TaskOptionOpt = None,
    mode: _ModeOpt = None,
    level: _LevelOpt = None,
    generations: _GenerationsOpt = 30,
    seed: _SeedOpt = 0,
    storage: StorageOpt = None,
    workers: _WorkersOpt = None,
    sandbox: _SandboxOpt = None,
    ray_address: _RayAddressOpt = None,
    name: _NameOpt = None,
    selector: _SelectorOpt = None,
    subset_size: _SubsetSizeOpt = None,
    timeout: _TimeoutOpt = None,
    config: _ConfigOpt = None,
    meta: _MetaOpt = None,
    llm: _LlmOpt = None,
    max_cost: _MaxCostOpt = None,
    max_tokens: _MaxTokensOpt = None,
    max_seconds: _MaxSecondsOpt = None,
    max_evaluations: _MaxEvaluationsOpt = None,
    quarantine: _QuarantineOpt = False,
    approval: _ApprovalOpt = None,
    approval_threshold: _ApprovalThresholdOpt = None,
    constitution: _ConstitutionOpt = None,
    levers: _LeversOpt = None,
    device: DeviceOpt = None,
    meta_from: _MetaFromOpt = None,
    seed_from: _SeedFromOpt = None,
    replay: _ReplayOpt = None,
    quiet: _QuietOpt = False,
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
            _replay(ctx, replay, storage, quiet)
            return
        preset = level_preset(level) if level is not None else None
        if preset is not None and preset.driver is not None:  # the arena: its own loop
            given = [option for option in ctx.params if _on_command_line(ctx, option)]
            run_driven(preset, dict(ctx.params), given)
            return
        request = _start_request(ctx, max_seconds)  # every option, by its name
        service = RunService(storage)
        job = service.start(request)
        if not quiet:
            shown = task_label(task, job.run.config.task_options)
            err_console.print(
                f"run [bold]{escape(job.run.name)}[/]: task {escape(shown)}, "
                f"{_level_label(job.run.config.level)}mode {job.run.mode.value}, "
                f"seed {seed}, storage {escape(storage_label(service.storage))}",
                highlight=False,
                soft_wrap=True,
            )
        drive(job, quiet, storage=storage)


def _level_label(level: str | None) -> str:
    """``level NAME, `` for a run of a level (empty otherwise)."""
    return f"level {level}, " if level else ""


def _check_replay_options(ctx: typer.Context, replay: str) -> None:
    """Refuse the options that ``--replay`` takes from the record.

    Raises:
        ConfigFileError: One was given.
    """
    flags = {param.name: param.opts[0] for param in ctx.command.params}
    given = [flags[option] for option in _REPLAY_FIXED if _on_command_line(ctx, option)]
    if given:
        raise ConfigFileError(
            f"--replay takes the task, mode, seed, model and config from {replay}'s "
            f"record: drop {', '.join(given)}"
        )


def _start_request(ctx: typer.Context, max_seconds: float | None) -> StartRequest:
    """The request ``run``'s options describe: each option gives the field of its name
    (``--config`` names the file whose values go in ``config``, over which ``--task-option``
    goes in ``task_options``; ``--timeout`` is the old name of ``--max-seconds``). The run's
    target (``-g``) is stored with it: a resume goes on to it.
    """
    given = {k: v for k, v in ctx.params.items() if k in StartRequest.model_fields}
    given |= {
        "config": read_config(ctx.params["config"]),
        "max_seconds": max_seconds,
        "task_options": task_option_values(ctx.params["task_options"]),
    }
    return StartRequest(**given)


def _replay(ctx: typer.Context, replay: str, storage: str | None, quiet: bool) -> None:
    """``run --replay RUN``: re-run RUN from its record (no model is called).

    Raises:
        ConfigFileError: An option the record fixes was given.
        ConfigError: More generations than the record holds were asked for.
    """
    _check_replay_options(ctx, replay)
    params = ctx.params
    request = ReplayRequest(
        run=replay,
        generations=params["generations"] if _on_command_line(ctx, "generations") else None,
        name=params["name"],
        sandbox=params["sandbox"],
        ray_address=params["ray_address"],
        workers=params["workers"],
    )
    job = RunService(storage).replay(request)
    if not quiet:
        original = job.run.config.replay_of or replay
        err_console.print(f"replaying [bold]{escape(original)}[/] as {escape(job.run.name)}")
    drive(job, quiet, storage=storage)


# -- the options of ``resume`` ----------------------------------------------------------
_ResumeGenerationsOpt = Annotated[
    int | None,
    typer.Option("--generations", "-g", min=0, help="Generations to add to the target."),
]
_ResumeWorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-w",
        min=1,
        help="Parallel sandboxed workers "
        "[default: the number of CPUs]; results do not depend on it.",
        show_default=False,
    ),
]
_ResumeTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        callback=positive_seconds,
        help="Seconds of this resume after which no new generation starts (not stored; "
        "--max-seconds sets the run's time budget over all resumes).",
    ),
]
_ResumeTaskOpt = Annotated[
    str | None,
    typer.Option("--task", "-t", help="Load the task from here instead (e.g. a moved file)."),
]
_ResumeMaxCostOpt = Annotated[
    float | None, typer.Option(min=0, help="New LLM budget in US dollars.")
]
_ResumeMaxTokensOpt = Annotated[int | None, typer.Option(min=0, help="New LLM budget in tokens.")]
_ResumeMaxSecondsOpt = Annotated[
    float | None,
    typer.Option(
        callback=positive_seconds,
        help="New time budget: engine seconds over all resumes, this one included (stored).",
    ),
]
_ResumeMaxEvaluationsOpt = Annotated[
    int | None, typer.Option(min=0, help="New evaluation budget (stages run).")
]
_ResumeJoinOpt = Annotated[
    bool,
    typer.Option(
        "--join",
        help="Join the engines driving the run: share its target and its work, each "
        "generation done once (PostgreSQL storage; refused on SQLite). Leads the run if no "
        "live engine does.",
    ),
]
_ResumeNoBudgetOpt = Annotated[
    bool,
    typer.Option(
        "--no-budget",
        help="Lift the budgets (dollars, tokens, seconds, evaluations) not given again "
        "with their --max-* options.",
    ),
]

_ResumeSandboxOpt = Annotated[
    str | None,
    typer.Option(
        help="Run agent code elsewhere from now on (stored with the run): auto, bwrap, "
        "process or ray.",
        show_default=False,
    ),
]


def resume(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="Run name or id.")],
    storage: StorageOpt = None,
    generations: _ResumeGenerationsOpt = None,
    workers: _ResumeWorkersOpt = None,
    timeout: _ResumeTimeoutOpt = None,
    quiet: _QuietOpt = False,
    task: _ResumeTaskOpt = None,
    max_cost: _ResumeMaxCostOpt = None,
    max_tokens: _ResumeMaxTokensOpt = None,
    max_seconds: _ResumeMaxSecondsOpt = None,
    max_evaluations: _ResumeMaxEvaluationsOpt = None,
    no_budget: _ResumeNoBudgetOpt = False,
    sandbox: _ResumeSandboxOpt = None,
    ray_address: _RayAddressOpt = None,
    join: _ResumeJoinOpt = False,
    unsafe_process_sandbox: UnsafeSandboxOpt = False,
) -> None:
    """Continue a run where it stopped (after a crash, kill, timeout, interrupt or budget),
    or join the engines driving it (--join)."""
    allow_unsafe_sandbox(unsafe_process_sandbox)
    with errors():
        request = ResumeRequest(
            run=run_name,
            generations=generations,
            workers=workers,
            timeout=timeout,
            task=task,
            max_cost=max_cost,
            max_tokens=max_tokens,
            max_seconds=max_seconds,
            max_evaluations=max_evaluations,
            no_budget=no_budget,
            sandbox=sandbox,
            ray_address=ray_address,
            join=join,
        )
        job = RunService(existing_storage(storage)).resume(request)
        if isinstance(job, LevelDrive):  # an arena: its own loop continues it
            drive_level(job, quiet, storage=storage)
            return
        drive(job, quiet, storage=storage)

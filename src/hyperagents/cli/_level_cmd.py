"""``hyperagents run --level arena``: a run of a level that its own loop drives (level 4, the
arena), created under its name as any run and continued by ``hyperagents resume``
(:func:`drive_level`), its champion scored on the held-out adversarial suite."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.markup import escape

from hyperagents._untrusted import printable
from hyperagents.cli._drive import terminate_as_interrupt
from hyperagents.cli._shared import console, err_console, storage_hint
from hyperagents.exceptions import ConfigError
from hyperagents.runs import LevelDrive, LevelPreset, default_workers
from hyperagents.storages import BaseStorage, RunRecord, RunStatus, storage_for_creation

__all__ = [
    "DRIVEN_OPTIONS",
    "drive_level",
    "resumable_interrupts",
    "run_driven",
    "say_stopped",
]

#: The options of ``run`` a driven level takes (any other given is refused).
DRIVEN_OPTIONS = frozenset(
    {"task", "level", "generations", "seed", "storage", "sandbox", "name", "max_evaluations"}
    | {"workers"}
    | {"quiet", "unsafe_process_sandbox"}
)


def run_driven(preset: LevelPreset, params: dict[str, Any], given: list[str]) -> None:
    """Create (or go on with) the run ``params["name"]`` of ``preset`` and drive it; print its
    summary (JSON) with its champion's held-out score.

    Args:
        preset: The level (with a driver).
        params: The ``run`` command's option values, by name.
        given: The options given on the command line.

    Raises:
        ConfigError: An option the level does not take, a task it cannot run, or bad settings.
        RunStateError: Another live engine drives the run.
        typer.Exit: Interrupted (130) or terminated (143): ``hyperagents resume`` continues it.
    """
    from hyperagents.tasks import load_task

    driver = preset.driver
    assert driver is not None  # for mypy: the caller checks
    refused = sorted(option for option in given if option not in DRIVEN_OPTIONS)
    if refused:
        flags = ", ".join(f"--{option.replace('_', '-')}" for option in refused)
        raise ConfigError(f"level {preset.level} does not take {flags}: drop it")
    task = load_task(params["task"], {})
    driver.check(task)
    seed = int(params["seed"])
    name = params["name"] or f"{task.name}-{preset.level}-s{seed}"
    config = {"sandbox": params["sandbox"], "max_evaluations": params["max_evaluations"]}
    with storage_for_creation(params["storage"]) as store:
        if not params["quiet"]:
            err_console.print(f"run {name}: task {task.name}, level {preset.level}, seed {seed}")
        with resumable_interrupts(name, params["storage"]):
            record = driver.drive(
                task=task,
                name=name,
                seed=seed,
                storage=store,
                config=config,
                generations=int(params["generations"]),
                workers=params.get("workers"),
            )
        summary = _summary(store, record)
    console.print_json(json.dumps(summary))
    if record.status is RunStatus.STOPPED:
        say_stopped(name, params["storage"])


def drive_level(job: LevelDrive, quiet: bool, *, storage: str | None = None) -> None:
    """Continue a run its level's own loop drives (``hyperagents resume`` of an arena) from its
    last stored round; print its summary (JSON).

    Raises:
        RunStateError: Another live engine drives it.
        ConfigError: A change it does not take.
        typer.Exit: Interrupted (130) or terminated (143): the same resume continues it.
    """
    name = job.record.name
    if not quiet:
        workers = default_workers(job.workers)
        err_console.print(
            f"resuming {escape(printable(name))} ({job.record.mode}) from its last round "
            f"and the work of the next one stored, with {workers} workers",
            highlight=False,
        )
    with resumable_interrupts(name, storage):
        record = job.optimize()
    console.print_json(json.dumps(_summary(job.storage, record)))
    if record.status is RunStatus.STOPPED:
        say_stopped(name, storage)


def _resume_command(name: str, storage: str | None) -> str:
    """The command that continues the run, escaped to print."""
    return escape(printable(f"hyperagents resume {shlex.quote(name)}{storage_hint(storage)}"))


def say_stopped(name: str, storage: str | None) -> None:
    """Say how to continue a run that a stop request ended before its target."""
    err_console.print(
        f"stopped: continue with {_resume_command(name, storage)}", highlight=False, soft_wrap=True
    )


@contextmanager
def resumable_interrupts(name: str, storage: str | None) -> Iterator[None]:
    """While driving: SIGTERM stops as Ctrl-C does (the run's engine slot is given back, the
    run marked stopped); on either, say how to continue and exit with 130 or 143.

    Raises:
        typer.Exit: 130 after Ctrl-C, 143 after SIGTERM.
    """
    with terminate_as_interrupt() as signals:
        try:
            yield
        except KeyboardInterrupt:
            said = "terminated (SIGTERM)" if signals else "interrupted"
            err_console.print(
                f"{said}: continue with {_resume_command(name, storage)}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(143 if signals else 130) from None


def _summary(store: BaseStorage, record: RunRecord) -> dict[str, Any]:
    """What a drive of an arena ended with: its status, rounds and held-out score (a level
    run's champion within its budget, scored here once per champion; a ``hyperagents arena``
    one's last measured)."""
    from hyperagents.arena import ArenaConfig, champion_heldout, is_level_run
    from hyperagents.tasks import load_task

    level = is_level_run(store, record)
    rounds = store.list_events(record.id, kinds=["arena.round"], newest_first=True, limit=1)
    summary = {
        "run": record.name,
        "level": record.mode if level else None,
        "status": record.status.name.lower(),
        "rounds": int(rounds[0].data["round"]) if rounds else 0,
    }
    if not level:
        last = store.list_events(record.id, kinds=["arena.heldout"], newest_first=True, limit=1)
        return summary | {"heldout": dict(last[0].data) if last else None}
    config = ArenaConfig.parse(dict(record.config))
    heldout = champion_heldout(
        store,
        record.id,
        task=load_task(config.task, {}),
        seed=record.seed,
        size=ArenaConfig().heldout_size,
        sandbox=config.sandbox,
        budget=config.max_evaluations,
    )
    return summary | {"heldout": heldout}

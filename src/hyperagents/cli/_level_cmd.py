"""``hyperagents run --level arena``: a run of a level that its own loop drives (level 4, the
arena), created and resumed under its name as any run, its champion scored on the held-out
adversarial suite."""

from __future__ import annotations

import json
from typing import Any

import typer

from hyperagents.cli._shared import console, err_console
from hyperagents.exceptions import ConfigError
from hyperagents.runs import LevelPreset
from hyperagents.storages import storage_for_creation

__all__ = ["DRIVEN_OPTIONS", "run_driven"]

#: The options of ``run`` a driven level takes (any other given is refused).
DRIVEN_OPTIONS = frozenset(
    {"task", "level", "generations", "seed", "storage", "sandbox", "name", "max_evaluations"}
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
        typer.Exit: Interrupted (130): the same command continues the run.
    """
    from hyperagents.arena import ArenaConfig, champion_heldout
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
        try:
            record = driver.drive(
                task=task,
                name=name,
                seed=seed,
                storage=store,
                config=config,
                generations=int(params["generations"]),
            )
        except KeyboardInterrupt:
            err_console.print("interrupted: run the same command again to continue")
            raise typer.Exit(130) from None
        heldout = champion_heldout(
            store,
            record.id,
            task=task,
            seed=seed,
            size=ArenaConfig().heldout_size,
            sandbox=str(params["sandbox"] or "auto"),
            budget=params["max_evaluations"],
        )
        variants = store.list_variants(record.id)
    summary = {
        "run": record.name,
        "level": preset.level,
        "status": record.status.name.lower(),
        "rounds": max((v.generation for v in variants), default=0),
        "heldout": heldout,
    }
    console.print_json(json.dumps(summary))

"""The arena as level 4: :func:`level_preset` and the driver (:class:`ArenaLevel`) that plays a
run of the level.

A run of the arena level is an arena (mode ``arena``, its :class:`ArenaConfig` as its config:
one code agent against one test agent, the offline ``arena`` meta agent, every other setting
the arena's default) created in the same storage as any run, in its experiment and arm. Its
rounds are its steps: ``generations`` is its number of rounds, and its evaluation budget
(``max_evaluations``) is counted as the engine counts a run's: every code agent evaluation of a
round, the val evaluation of each round's champion and the test evaluations of champions (see
:mod:`hyperagents.arena._record`); no round starts that could take it past the budget. Each
round is stored as it ends, with its variant, so a run killed at any point resumes from its
last round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hyperagents.arena._config import ArenaConfig
from hyperagents.arena._engine import (
    MODE,
    Agents,
    arena_context,
    initial_state,
    last_state,
    open_run,
    play_rounds,
    seed_code_agent,
)
from hyperagents.arena._record import budget_spent, record_rounds
from hyperagents.arena._suite import oracle_of
from hyperagents.exceptions import ConfigError
from hyperagents.runs import LevelPreset
from hyperagents.storages import BaseStorage, RunRecord, RunStatus, VariantRecord
from hyperagents.tasks import Task

__all__ = ["ArenaLevel", "level_config", "level_preset"]

#: The run config keys a run of the arena level takes (the others shape the run engine's
#: generations, which the arena does not make).
_TAKEN = ("sandbox", "max_evaluations")

#: The most evaluations a round's variant adds beyond the code agents' (its val and test).
_RECORD_COST = 2


def level_config(task: Task, *, seed: int, rounds: int, config: Mapping[str, Any]) -> ArenaConfig:
    """The arena settings of a run of the level: the arena's defaults, with the run's seed,
    its rounds, and the run config's ``sandbox`` and ``max_evaluations``.

    Raises:
        ConfigError: The task has no oracle or takes options, or a value is invalid.
    """
    oracle_of(task)
    if config.get("task_options"):
        raise ConfigError("the arena level runs a built-in task without task options")
    values: dict[str, Any] = {"task": task.name, "seed": seed, "rounds": rounds}
    values |= {key: config[key] for key in _TAKEN if config.get(key) is not None}
    return ArenaConfig.parse(values)


@dataclass(frozen=True)
class ArenaLevel:
    """The driver of the arena level (a :class:`~hyperagents.runs.LevelDriver`)."""

    mode: str = MODE

    def check(self, task: Task) -> None:
        """Raises: ConfigError: The task has no trusted oracle (the arena needs one)."""
        try:
            oracle_of(task)
        except ConfigError as exc:
            raise ConfigError(
                f"level arena needs a task with a trusted oracle for new inputs: {exc}"
            ) from None

    def drive(
        self,
        *,
        task: Task,
        name: str,
        seed: int,
        storage: BaseStorage,
        config: Mapping[str, Any],
        generations: int,
        experiment: str | None = None,
        arm: str | None = None,
        stop: Callable[[], bool] | None = None,
        on_variant: Callable[[VariantRecord], None] | None = None,
    ) -> RunRecord:
        """Create (or resume) the arena run ``name`` and play it to ``generations`` rounds or
        its budget, recording a variant per round (each given to ``on_variant``); ``stop()``
        ends it after a round.

        Raises:
            ConfigError: A task without an oracle, bad settings, or a run of that name that
                is not this arena. SandboxError: The sandbox kept failing (it resumes).
        """
        self.check(task)
        arena = level_config(task, seed=seed, rounds=generations, config=config)
        run_id, existed = open_run(storage, arena, name, experiment=experiment, arm=arm)
        ctx, _ = arena_context(storage, run_id, task, arena, None)
        state = last_state(ctx) if existed else None
        if state is None:
            state = initial_state(ctx, Agents())
        seed_program = seed_code_agent(task, arena.meta, self_propose=arena.self_propose)
        storage.set_run_status(run_id, RunStatus.RUNNING)
        try:
            record_rounds(ctx, seed_program, on_variant)
            done = play_rounds(
                ctx,
                state,
                on_round=lambda _: record_rounds(ctx, seed_program, on_variant),
                stop=lambda _: stop is not None and stop(),
                spent=lambda _: budget_spent(storage, run_id),
                round_extra=_RECORD_COST,
            )
        except KeyboardInterrupt:
            storage.set_run_status(run_id, RunStatus.STOPPED)
            raise
        except BaseException:
            storage.set_run_status(run_id, RunStatus.FAILED)
            raise
        finally:
            close = getattr(ctx.sandbox, "close", None)
            if callable(close):
                close()
        storage.set_run_status(run_id, RunStatus.COMPLETE if done else RunStatus.STOPPED)
        return storage.get_run(run_id)


def level_preset() -> LevelPreset:
    """The arena level's preset: no mode of the run engine, the arena's loop as its driver."""
    return LevelPreset(
        "arena",
        None,
        {},
        "code agents and test agents co-evolving: the suite grows with the inputs the oracle "
        "labels and some code agent gets wrong",
        ArenaLevel(),
    )

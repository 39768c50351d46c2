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
last round and the steps of the next one stored since: :meth:`ArenaLevel.resume` (what
``hyperagents resume`` and the dashboard's Resume call) continues it, or a ``hyperagents arena``
one, with its stored settings and the workers it is given. While it plays,
its process holds the run's engine slot as the run engine does (one driver at a time, heartbeats,
a stop request honoured after the round in flight).
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
    is_level_run,
    last_state,
    open_run,
    play_held,
    run_arena,
    seed_code_agent,
    seed_test_agent,
    store_settings,
)
from hyperagents.arena._record import budget_spent, record_rounds
from hyperagents.arena._suite import oracle_of
from hyperagents.exceptions import ConfigError
from hyperagents.runs import LevelPreset, default_workers, hold_run
from hyperagents.storages import BaseStorage, RunRecord, RunStatus, VariantRecord
from hyperagents.tasks import Task, load_task

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
        """Raises: ConfigError: The task cannot play an arena (no trusted oracle)."""
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
        workers: int | None = None,
    ) -> RunRecord:
        """Create (or resume) the arena run ``name`` and play it to ``generations`` rounds or
        its budget, recording a variant per round (each given to ``on_variant``); ``stop()``,
        a stop request or another engine taking it over ends it after a round. Its process
        holds the run's engine slot while it plays (see :func:`~hyperagents.runs.hold_run`),
        the agents' work on ``workers`` threads (default: the number of CPUs).

        Raises:
            ConfigError: A task without an oracle, bad settings, or a run of that name that
                is not this arena. RunStateError: Another live engine drives the run.
                SandboxError: The sandbox kept failing (it resumes).
        """
        self.check(task)
        arena = level_config(task, seed=seed, rounds=generations, config=config)
        return _play(storage, task, arena, name, (experiment, arm), stop, on_variant, workers)

    def resume(
        self,
        *,
        storage: BaseStorage,
        record: RunRecord,
        generations: int | None = None,
        changes: Mapping[str, Any] | None = None,
        stop: Callable[[], bool] | None = None,
        on_variant: Callable[[VariantRecord], None] | None = None,
        workers: int | None = None,
    ) -> RunRecord:
        """Continue the arena ``record`` (of the level, or a ``hyperagents arena`` one) from its
        last stored round and the steps of the next one stored since, with its stored settings
        and ``changes`` (``sandbox``, ``max_evaluations``), to its stored rounds plus
        ``generations``, on ``workers`` threads; as :meth:`drive` otherwise (an arena that is
        not of the level records no variants).

        Raises:
            ConfigError: Not an arena, or an invalid change. RunStateError: Another live
                engine drives it. SandboxError: The sandbox kept failing (it resumes).
        """
        if record.mode != MODE:
            raise ConfigError(f"run {record.name!r} is not an arena (mode {record.mode})")
        values = dict(record.config) | dict(changes or {})
        values["rounds"] = int(values.get("rounds", 0)) + (generations or 0)
        arena = ArenaConfig.parse(values)
        if not is_level_run(storage, record):
            run_arena(arena, storage=storage, name=record.name, stop=stop, workers=workers)
            return storage.get_run(record.id)
        task = load_task(arena.task, {})
        where = (record.experiment, record.arm)
        return _play(storage, task, arena, record.name, where, stop, on_variant, workers)


def _play(
    storage: BaseStorage,
    task: Task,
    arena: ArenaConfig,
    name: str,
    where: tuple[str | None, str | None],
    stop: Callable[[], bool] | None,
    on_variant: Callable[[VariantRecord], None] | None,
    workers: int | None,
) -> RunRecord:
    """Create or go on with the level's run ``name`` (in experiment and arm ``where``) and
    play it holding its engine slot, on ``workers`` threads (see :meth:`ArenaLevel.drive`)."""
    experiment, arm = where
    tester = seed_test_agent(task)
    run_id, existed = open_run(
        storage, arena, name, tester=tester, experiment=experiment, arm=arm, level=True
    )
    if existed and _played_out(storage.get_run(run_id), arena):
        return storage.get_run(run_id)  # nothing left to play: its engine slot is left alone
    count = default_workers(workers)
    ctx, _ = arena_context(storage, run_id, task, arena, None, workers=count)
    seed_program = seed_code_agent(task, arena.meta, self_propose=arena.self_propose)
    started = f"arena level: to round {arena.rounds}, {count} workers"
    try:
        with hold_run(storage, run_id, started=started, workers=count) as held:
            if existed:
                store_settings(storage, run_id, arena)
            state = last_state(ctx) if existed else None
            if state is None:
                state = initial_state(ctx, Agents())
            record_rounds(ctx, seed_program, on_variant)
            play_held(
                ctx,
                state,
                held,
                on_round=lambda _: record_rounds(ctx, seed_program, on_variant),
                stop=stop,
                spent=lambda _: budget_spent(storage, run_id),
                round_extra=_RECORD_COST,
            )
    finally:
        close = getattr(ctx.sandbox, "close", None)
        if callable(close):
            close()
    return storage.get_run(run_id)


def _played_out(record: RunRecord, arena: ArenaConfig) -> bool:
    """Whether the run completed with the rounds and the budget ``arena`` asks for (so a drive
    of it, an experiment run again for one, has nothing to play)."""
    return (
        record.status is RunStatus.COMPLETE
        and record.target_generations == arena.rounds
        and record.config.get("max_evaluations") == arena.max_evaluations
    )


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

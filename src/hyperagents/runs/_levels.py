"""The four levels of self-improving code agents as presets of the one engine.

A level names a :class:`~hyperagents.runs.Mode` and the run config values that make the engine
behave as that level does; nothing else differs (the same jobs, stages, gate, storage):

* ``autoresearch`` (level 1, improve-and-keep): every child is made from the current best
  variant (selector ``best``: the highest val objective, ties to the earliest) by a fixed worker
  (``frozen-meta``: the seed's meta agent, whose edits to itself are dropped). A child that is
  not strictly better is recorded but never becomes the base.
* ``feedback`` (level 2): level 1 plus a reviewer (``review``): after each child's evaluation the
  program's ``reviewer.py`` reads the run's whole history and returns
  ``{issue_type, severity, fix_suggestion, confidence, pattern_detected}``; the next worker is
  shown only the latest reviews (see :mod:`hyperagents.runs._review`).
* ``hyperagent`` (level 3): today's ``hyperagent`` mode: an open-ended archive whose meta agents
  rewrite their own source.
* ``arena`` (level 4): code agents and test agents co-evolving, provided by
  :mod:`hyperagents.arena`: its preset has no mode of this engine but a :class:`LevelDriver`,
  the arena's round loop, which stores its runs in the same storage (one variant per round:
  the round's champion, with the evaluations the round spent), so experiments, reports and
  resumes treat them as any other arm's.

The arena seam: :func:`level_preset` resolves ``arena`` by importing ``hyperagents.arena`` and
calling its ``level_preset()``, which returns a :class:`LevelPreset` with a driver. Where the
package is missing (or returns something else) the level is refused with a
:class:`~hyperagents.exceptions.ConfigError` that says what it needs. A driven level has no
mode of this engine, so :func:`apply_level` (what ``Run.create`` uses) refuses it and says
where it runs: ``hyperagents run --level arena``, ``hyperagents experiment --levels ...,arena``
or the driver itself; ``hyperagents resume`` (and the dashboard's Resume) continues its runs
through :func:`level_driver`, the driver holding the run's engine slot as the engine does
(:func:`~hyperagents.runs.hold_run`). Every face resolves levels here and nowhere else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hyperagents.storages import BaseStorage, RunRecord, VariantRecord
    from hyperagents.tasks import Task

from hyperagents.exceptions import ConfigError
from hyperagents.runs._config import Mode

__all__ = [
    "LEVELS",
    "Level",
    "LevelDriver",
    "LevelPreset",
    "apply_level",
    "level_driver",
    "level_preset",
    "parse_level",
]


class Level(StrEnum):
    """The four levels (see the module docstring)."""

    AUTORESEARCH = "autoresearch"
    FEEDBACK = "feedback"
    HYPERAGENT = "hyperagent"
    ARENA = "arena"


#: The level names, in order (level 1 first).
LEVELS = tuple(level.value for level in Level)

#: The module that provides the arena level's preset, and the function it defines.
ARENA_MODULE = "hyperagents.arena"
ARENA_ENTRY = "level_preset"


class LevelDriver(Protocol):
    """The loop of a level that this engine's generations do not make (the arena's rounds).

    Its runs live in the same storage as any run (stored with mode :attr:`mode`, their
    experiment and arm), record a variant per step with its scores and the evaluations it
    cost (``metrics["search_evaluations"]``), and resume from their last stored step.
    """

    @property
    def mode(self) -> str:
        """The mode its runs are stored with."""
        ...

    def check(self, task: Task) -> None:
        """Refuse a task the level cannot run.

        Raises:
            ConfigError: The task lacks what the level needs (the arena: a trusted oracle).
        """

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
        """Create (or resume) the run ``name`` and drive it to ``generations`` steps, or to
        its evaluation budget (``config["max_evaluations"]``), or until ``stop()`` says so;
        ``on_variant`` is called with each variant once it is recorded; ``workers``: how many
        steps' work may run side by side (default: the number of CPUs; never a result).

        Raises:
            ConfigError: Bad settings, or a run of that name that is not this level's.
            RunStateError: Another live engine drives the run.
        """
        ...

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
        """Continue the stored run ``record`` (of mode :attr:`mode`) from its last stored step
        with its stored settings, ``changes`` applied (``sandbox``, ``max_evaluations``), to
        its stored target plus ``generations``, with ``workers``; as :meth:`drive` otherwise.

        Raises:
            ConfigError: A change it does not take, or a run that is not of this mode.
            RunStateError: Another live engine drives the run.
        """
        ...


@dataclass(frozen=True)
class LevelPreset:
    """What a level sets.

    Attributes:
        level: The level's name.
        mode: The run's mode (None: the level is driven by ``driver``, not by this engine).
        config: Run config values the level fixes (a run of the level has exactly these).
        summary: One line saying what the level does.
        driver: The loop that drives the level's runs, for a level that is not a mode.
    """

    level: str
    mode: Mode | None
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    driver: LevelDriver | None = None


_BUILT_IN = {
    Level.AUTORESEARCH: LevelPreset(
        "autoresearch",
        Mode.FROZEN_META,
        {"selector": "best", "review": False},
        "improve-and-keep: each child is made from the current best by a fixed worker and "
        "kept as the base only if it is better",
    ),
    Level.FEEDBACK: LevelPreset(
        "feedback",
        Mode.FROZEN_META,
        {"selector": "best", "review": True},
        "improve-and-keep with a reviewer that reads the whole history after each benchmark; "
        "the worker gets the latest reviews",
    ),
    Level.HYPERAGENT: LevelPreset(
        "hyperagent",
        Mode.HYPERAGENT,
        {"review": False},
        "an open-ended archive of agents whose meta agents rewrite their own source",
    ),
}


def parse_level(level: str | Level) -> Level:
    """The :class:`Level` of a name.

    Raises:
        ConfigError: Unknown level.
    """
    try:
        return Level(str(level).strip())
    except ValueError:
        raise ConfigError(f"unknown level {level!r}; choose one of: {', '.join(LEVELS)}") from None


def level_preset(level: str | Level) -> LevelPreset:
    """The mode and config values of ``level`` (the arena's from :mod:`hyperagents.arena`).

    Raises:
        ConfigError: Unknown level, or the arena level while the arena package does not provide
            its preset (or provides a broken one).
    """
    chosen = parse_level(level)
    if chosen is not Level.ARENA:
        return _BUILT_IN[chosen]
    needs = (
        f"the arena level needs the arena package: {ARENA_MODULE} must define "
        f"{ARENA_ENTRY}() returning a hyperagents.runs.LevelPreset"
    )
    try:
        module = importlib.import_module(ARENA_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != ARENA_MODULE:
            raise
        raise ConfigError(f"{needs} (it is not installed)") from None
    entry = getattr(module, ARENA_ENTRY, None)
    if not callable(entry):
        raise ConfigError(
            f"{needs} (it has no {ARENA_ENTRY} yet: run the arena with `hyperagents arena`, "
            "with --compare-level3 to score level 3 on its held-out suite beside it)"
        )
    preset = entry()
    if (
        not isinstance(preset, LevelPreset)
        or (preset.mode is None) == (preset.driver is None)  # a mode or a driver, not both
        or preset.level != Level.ARENA.value
    ):
        raise ConfigError(f"{needs} (its {ARENA_ENTRY}() returned {preset!r})")
    return preset


def level_driver(mode: str) -> LevelDriver | None:
    """The driver of the runs stored with ``mode`` (None: a mode of the run engine, or one no
    level drives), so ``resume`` continues them (see :class:`LevelDriver`).

    Raises:
        ConfigError: An arena's run while the arena package does not provide its preset.
    """
    if mode in {m.value for m in Mode}:
        return None
    driver = level_preset(Level.ARENA).driver  # the one level its own loop drives
    return driver if driver is not None and driver.mode == mode else None


def apply_level(
    level: str | Level, config: Mapping[str, Any], mode: Mode | str | None = None
) -> tuple[Mode, dict[str, Any]]:
    """The mode and config of a run of ``level``: ``config`` with the level's values (and its
    name, ``level``) set.

    Args:
        level: The level.
        config: The run config values given (a config file's and options').
        mode: The mode given with it, if any (it must be the level's).

    Raises:
        ConfigError: An unknown level, a level driven by its own loop (the arena), or a mode
            or config value given that the level sets otherwise (the message names it).
    """
    preset = level_preset(level)
    if preset.mode is None:
        raise ConfigError(
            f"level {preset.level} is not a mode of the run engine: its own loop drives it; run "
            f"it with `hyperagents run --level {preset.level}` or `hyperagents experiment "
            f"--levels ...,{preset.level}`"
        )
    if mode is not None and Mode(mode) is not preset.mode:
        raise ConfigError(
            f"level {preset.level} runs in mode {preset.mode.value}: drop mode {Mode(mode).value}"
        )
    merged = dict(config)
    for key, value in preset.config.items():
        given = merged.get(key)
        if given is not None and given != value:
            raise ConfigError(
                f"level {preset.level} sets {key} to {value!r}: drop {key} {given!r} "
                "(or run a mode instead of a level)"
            )
        merged[key] = value
    given_level = merged.get("level")
    if given_level is not None and given_level != preset.level:
        raise ConfigError(f"the config says level {given_level!r}, not {preset.level!r}")
    merged["level"] = preset.level
    return preset.mode, merged

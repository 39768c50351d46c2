"""Resuming a run that a level's own loop drives (the arena's): :class:`LevelDrive`, what
:meth:`RunService.resume <hyperagents.runs.RunService.resume>` returns for it, and the rule for
what such a resume may change (:func:`level_changes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperagents.exceptions import ConfigError
from hyperagents.runs._levels import LevelDriver
from hyperagents.runs._requests import ResumeRequest
from hyperagents.storages import BaseStorage, RunRecord, VariantRecord

__all__ = ["LevelDrive", "level_changes"]

#: What a resume of a driven run cannot take, with the option that asks for it.
_REFUSED = {
    "task": "--task",
    "max_cost": "--max-cost",
    "max_tokens": "--max-tokens",
    "max_seconds": "--max-seconds",
    "ray_address": "--ray-address",
}


def level_changes(
    record: RunRecord, request: ResumeRequest, *, detached: bool = False
) -> dict[str, Any]:
    """The config values a resume of ``record`` (a run its level's own loop drives) changes:
    ``sandbox`` and ``max_evaluations`` (lifted by ``no_budget``). Its number of workers is
    no config value: results never depend on it, and each resume takes its own
    (:attr:`LevelDrive.workers`).

    Args:
        record: The run.
        request: The resume.
        detached: Whether an engine process is started for it (which takes no changes).

    Raises:
        ConfigError: The request asks for what the run does not take (a task file, an LLM or
            time budget, a Ray cluster, joining), or for a change of a detached resume.
    """
    given = [flag for key, flag in _REFUSED.items() if getattr(request, key) is not None]
    if request.join:
        given.append("--join")
    if given:
        raise ConfigError(
            f"run {record.name!r} is an {record.mode} (its own loop drives it, one engine at a "
            f"time, with the built-in task it recorded): it does not take {', '.join(given)}"
        )
    changes: dict[str, Any] = {"max_evaluations": None} if request.no_budget else {}
    if request.max_evaluations is not None:
        changes["max_evaluations"] = request.max_evaluations
    if request.sandbox is not None:
        changes["sandbox"] = request.sandbox
    if changes and detached:
        raise ConfigError(
            f"run {record.name!r} is an {record.mode}: change its sandbox or budget when "
            f"resuming it in a process of your own (hyperagents resume {record.name} ...)"
        )
    return changes


@dataclass(frozen=True)
class LevelDrive:
    """A run of a level its own loop drives (the arena), ready to be continued in this
    process: what :meth:`optimize` gives its driver.

    Attributes:
        record: The run as it was when the resume was asked for.
        driver: Its level's driver.
        storage: Its storage.
        generations: Steps (the arena's rounds) to add to its stored target.
        timeout: Seconds of this drive after which no new step starts.
        changes: Config values the resume changes (see :func:`level_changes`).
        workers: Workers of this drive (None: the number of CPUs).
    """

    record: RunRecord
    driver: LevelDriver
    storage: BaseStorage
    generations: int | None = None
    timeout: float | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    workers: int | None = None

    def optimize(self, callbacks: Sequence[Callable[[VariantRecord], None]] = ()) -> RunRecord:
        """Drive the run from its last stored step (see :meth:`LevelDriver.resume`), each
        variant recorded given to ``callbacks``; return its record afterwards.

        Raises:
            RunStateError: Another live engine drives it (nothing was changed).
            ConfigError: A change it does not take.
        """
        deadline = None if self.timeout is None else time.monotonic() + self.timeout

        def stop() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        def on_variant(variant: VariantRecord) -> None:
            for callback in callbacks:
                callback(variant)

        return self.driver.resume(
            storage=self.storage,
            record=self.record,
            generations=self.generations,
            changes=self.changes,
            stop=stop,
            on_variant=on_variant,
            workers=self.workers,
        )

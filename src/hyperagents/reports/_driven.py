"""The parts of an experiment beyond the run engine's arms: the runs of a level that its own
loop drives (the arena, level 4), and every level's champion on the held-out adversarial suite.

A driven level's runs are named, grouped and resumed as any arm's (``<experiment>-<level>-s<seed>``,
arm ``<level>``): its driver creates them in the same storage or goes on with them where they
stopped. When an experiment compares levels on a task with a trusted oracle (the tasks the arena
takes), each finished run's champion — its best val variant within the equal budget the report
compares the arms at, the same rule for every arm — is scored on the held-out adversarial suite of
its seed (the suite the arena run of that seed never sees), here in the engine, and recorded on
the run (see :func:`hyperagents.arena.champion_heldout`); a report shows it beside the fixed
tests' score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hyperagents.archive import search_evaluations
from hyperagents.arena import ArenaConfig, champion_heldout, oracle_of
from hyperagents.exceptions import ConfigError
from hyperagents.runs import LevelDriver, level_preset
from hyperagents.storages import BaseStorage, RunRecord, RunStatus, VariantRecord
from hyperagents.tasks import Task

if TYPE_CHECKING:
    from hyperagents.reports._experiment import Arm, ExperimentSpec

__all__ = ["DrivenRun", "driven_runs", "heldout_after"]


@dataclass(frozen=True)
class DrivenRun:
    """One run of a driven level's arm: its name, seed, arm and driver."""

    name: str
    seed: int
    arm: Arm
    driver: LevelDriver

    def drive(
        self,
        spec: ExperimentSpec,
        store: BaseStorage,
        task: Task,
        stop: Callable[[], bool],
        on_variant: Callable[[VariantRecord], None] | None = None,
    ) -> RunRecord:
        """Create or go on with the run, to the experiment's generations or budget
        (``on_variant``: called with each variant recorded).

        Raises:
            ConfigError: A run of that name that belongs elsewhere, or bad settings.
        """
        return self.driver.drive(
            task=task,
            name=self.name,
            seed=self.seed,
            storage=store,
            config=spec.arm_config(self.arm),
            generations=spec.generations,
            experiment=spec.name,
            arm=self.arm.label,
            stop=stop,
            on_variant=on_variant,
            workers=1,  # as each run of an experiment: its runs go side by side instead
        )


def driven_runs(spec: ExperimentSpec, store: BaseStorage, task: Task) -> list[DrivenRun]:
    """The runs of the experiment's driven levels (checked: the task suits the level, and a
    stored run of the name belongs to the experiment, with that seed and the level's mode).

    Raises:
        ConfigError: The task does not suit a level (the arena's: no oracle), or a run of that
            name belongs elsewhere.
    """
    existing = {r.name: r for r in store.list_runs()}
    found: list[DrivenRun] = []
    for arm in spec.arms():
        driver = level_preset(arm.level).driver if arm.level is not None else None
        if arm.mode is not None or driver is None:
            continue
        driver.check(task)
        for seed in spec.seeds:
            name = spec.run_name(arm, seed)
            record = existing.get(name)
            if record is not None and (
                record.experiment != spec.name or record.mode != driver.mode or record.seed != seed
            ):
                raise ConfigError(
                    f"a run named {name!r} exists but is not the {arm.label} run of seed {seed} "
                    f"of experiment {spec.name!r}"
                )
            found.append(DrivenRun(name, seed, arm, driver))
    return found


def heldout_after(spec: ExperimentSpec, store: BaseStorage, task: Task, run_ids: list[int]) -> None:
    """Score the champion of each run that ended (its target or its budget reached; the
    caller skips an interrupted experiment) on the held-out suite of its seed, when the
    experiment compares levels on a task with an oracle (else nothing).

    The champion is the run's best val variant once it had made as many search evaluations as
    the run that made the fewest (the report's equal budget, at which it compares the arms'
    fixed-test scores too). A run continued later is scored again once its champion changes;
    a report reads the latest score.

    Raises:
        SandboxError: The sandbox itself failed (the next call scores it).
    """
    if not spec.levels or not run_ids:
        return
    try:
        oracle_of(task)
    except ConfigError:
        return
    spent = [sum(search_evaluations(v) for v in store.list_variants(i)) for i in run_ids]
    for run_id in run_ids:
        record = store.get_run(run_id)
        if record.status not in (RunStatus.COMPLETE, RunStatus.STOPPED):
            continue
        champion_heldout(
            store,
            run_id,
            task=task,
            seed=record.seed,
            size=ArenaConfig().heldout_size,
            sandbox=str(spec.config.get("sandbox") or "auto"),
            budget=min(spent),
        )

"""Experiment grids: every mode × seed of a task as runs in one storage, resumable as a whole.

An experiment is a set of runs that share an experiment name (:attr:`RunRecord.experiment`)
and are named ``<experiment>-<mode>-s<seed>``. Each run is an ordinary run: its own seed drives
all of its randomness (selection, meta agents, sandboxed code), so the seeds are independent
replicates. Running the same experiment again continues whatever is unfinished and does nothing
twice; asking for more generations, modes or seeds extends it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hyperagents.archive import search_evaluations
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.reports._driven import DrivenRun, driven_runs, heldout_after
from hyperagents.runs import (
    Mode,
    Run,
    RunConfig,
    apply_level,
    default_workers,
    level_preset,
    meta_donor,
    parse_level,
    parse_mode,
    wait_awake,
    with_training_device,
)
from hyperagents.storages import (
    BaseStorage,
    RunRecord,
    RunStatus,
    VariantRecord,
    get_storage,
    storage_for_creation,
)
from hyperagents.tasks import (
    Task,
    format_task_options,
    load_task,
    merge_task_options,
    stored_task_options,
)

__all__ = [
    "DEFAULT_MODES",
    "EXPERIMENT_ATTR",
    "Arm",
    "ExperimentRequest",
    "ExperimentSpec",
    "experiment_progress",
    "experiment_runs",
    "progress_unit",
    "run_experiment",
]

#: The field of a run's record (:attr:`RunRecord.experiment`), and the column of the report's
#: rows, that names a run's experiment.
EXPERIMENT_ATTR = "experiment"

#: The arms an experiment compares unless told otherwise: the three modes and random search
#: over the seed's declared parameters (the Optuna arms need the extra ``optuna``).
DEFAULT_MODES = "hyperagent,frozen-meta,no-archive,random"

#: Called as ``cb(run, variant)`` whenever a variant of any run reaches a final state.
Callback = Callable[[Run, VariantRecord], None]


@dataclass(frozen=True)
class Arm:
    """One group of runs an experiment compares (one run per seed).

    Attributes:
        mode: The runs' mode (a level's arm: the level's mode; None: a level its own loop
            drives, the arena).
        transfer: Whether the runs start with the transferred meta agent (``meta_from``).
        lever: The lever of the levers ablation (None: not compared).
        level: The level preset of the runs (None: a mode's arm).
    """

    mode: Mode | None
    transfer: bool = False
    lever: str | None = None
    level: str | None = None

    @property
    def label(self) -> str:
        """The arm's name in reports: the level or mode, then ``+transfer`` and ``+LEVER``."""
        name = self.level or (self.mode.value if self.mode is not None else "")
        name += "+transfer" if self.transfer else ""
        return name + (f"+{self.lever}" if self.lever is not None else "")

    @property
    def slug(self) -> str:
        """The arm's part of its runs' names (``label`` with ``-`` for ``+``)."""
        return self.label.replace("+", "-")


@dataclass(frozen=True)
class ExperimentSpec:
    """What an experiment runs.

    Attributes:
        name: The experiment's name (its runs are ``<name>-<mode>-s<seed>``).
        task: The task spec (``"review"``, ``"path/file.py:Class"``…).
        modes: The modes to compare.
        seeds: One run per mode and seed.
        generations: Generations per run.
        config: Run configuration shared by all runs.
        meta_from: Transfer: a variant (``RUN/GEN``, ``RUN/champion``…) whose meta agent —
            evolved, say, on another task — is given to a second arm of runs
            (``<name>-<mode>-transfer-s<seed>``, arm ``"<mode>+transfer"``) beside the runs
            with the task's own seed meta agent, so a report compares the two (imp@k).
        levers: The levers ablation: with two or more (``harness``, ``weights``, ``both``),
            every mode runs once per lever (``<name>-<mode>-<lever>-s<seed>``, arm
            ``"<mode>+<lever>"``, its config's ``levers`` set), so a report compares them;
            one lever sets every run's ``levers``; none keeps the config's.
        levels: Level presets compared as arms beside the modes (``autoresearch``,
            ``feedback``, ``hyperagent``, ``arena``; see :func:`~hyperagents.runs.level_preset`):
            runs ``<name>-<level>-s<seed>`` of arm ``"<level>"``, with the level's mode and
            config values over the shared config.
    """

    name: str
    task: str
    modes: tuple[Mode, ...]
    seeds: tuple[int, ...]
    generations: int
    config: Mapping[str, Any] = field(default_factory=dict)
    meta_from: str | None = None
    levers: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ConfigError("an experiment needs a name")
        if not self.modes and not self.levels:
            raise ConfigError("an experiment needs at least one mode (or level)")
        if len(set(self.modes)) != len(self.modes):
            raise ConfigError("each mode may appear once")
        if len(set(self.levels)) != len(self.levels):
            raise ConfigError("each level may appear once")
        for level in self.levels:
            if level_preset(level).driver is None:  # fail early: unknown, unavailable, ...
                apply_level(level, self.config)  # ... or contradicted
        if not self.seeds:
            raise ConfigError("an experiment needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("seeds must be distinct: a repeated seed is not a replicate")
        if self.generations < 0:
            raise ConfigError("generations must be >= 0")
        if len(set(self.levers)) != len(self.levers):
            raise ConfigError("each lever may appear once")
        for lever in self.levers:
            RunConfig.parse(dict(self.config), levers=lever)  # fail early on a bad lever
        RunConfig.parse(dict(self.config))  # fail early on a bad config

    @classmethod
    def parse(
        cls,
        *,
        name: str,
        task: str,
        modes: Sequence[str] | str = (),
        seeds: Sequence[int] | int,
        generations: int,
        config: Mapping[str, Any] | None = None,
        meta_from: str | None = None,
        levers: Sequence[str] | str = (),
        levels: Sequence[str] | str = (),
    ) -> ExperimentSpec:
        """Build a spec from loose values: ``modes``, ``levers`` and ``levels`` may be
        comma-separated, ``seeds`` a count (``5`` means seeds 0 to 4).

        Raises:
            ConfigError: An unknown mode or level, no seeds, or a bad config.
        """
        mode_names = modes.split(",") if isinstance(modes, str) else list(modes)
        parsed = tuple(parse_mode(m.strip()) for m in mode_names if m.strip())
        level_names = levels.split(",") if isinstance(levels, str) else list(levels)
        parsed_levels = tuple(parse_level(n).value for n in level_names if n.strip())
        if isinstance(seeds, int):
            if seeds < 1:
                raise ConfigError(f"seeds must be >= 1, got {seeds}")
            seed_list = tuple(range(seeds))
        else:
            seed_list = tuple(int(s) for s in seeds)
        lever_names = levers.split(",") if isinstance(levers, str) else list(levers)
        return cls(
            name.strip(),
            task,
            parsed,
            seed_list,
            generations,
            dict(config or {}),
            meta_from,
            tuple(name.strip() for name in lever_names if name.strip()),
            parsed_levels,
        )

    @property
    def task_options(self) -> dict[str, Any]:
        """The keyword arguments every run's task is created with (the config's)."""
        return stored_task_options(self.config)

    def run_name(self, arm: Arm, seed: int) -> str:
        """The name of the run of ``arm`` and ``seed``."""
        return f"{self.name}-{arm.slug}-s{seed}"

    def arms(self) -> list[Arm]:
        """Every arm: each mode, then each level; with ``meta_from`` each one's transfer, and
        with two or more levers each lever."""
        flags = (False, True) if self.meta_from else (False,)
        levers: tuple[str | None, ...] = self.levers if len(self.levers) > 1 else (None,)
        bases: list[tuple[Mode | None, str | None]] = [(mode, None) for mode in self.modes]
        bases += [(level_preset(level).mode, level) for level in self.levels]
        return [
            Arm(mode, transfer, lever, level)
            for mode, level in bases
            for transfer in flags
            for lever in levers
        ]

    def arm_config(self, arm: Arm) -> dict[str, Any]:
        """The config of the runs of an arm: the shared one, with the arm's ``levers`` (or
        the one lever given) and its ``level``."""
        config = dict(self.config)
        chosen = arm.lever if arm.lever is not None else (self.levers[0] if self.levers else None)
        if chosen is not None:
            config["levers"] = chosen
        if arm.level is not None:
            config["level"] = arm.level
        return config


class ExperimentRequest(BaseModel):
    """An experiment a face (the command line, a Python caller) asks for, as it gives it:
    modes comma-separated or listed, seeds a count or listed, the name left to its default.

    :meth:`spec` turns it into the :class:`ExperimentSpec` that :func:`run_experiment` runs;
    values are checked there (:class:`~hyperagents.exceptions.ConfigError`), types here
    (:class:`pydantic.ValidationError`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(default="review", description="task name or path/file.py:Class")
    task_options: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the task class, over the config's task_options",
    )
    modes: str | list[str] | None = Field(
        default=None,
        description="the modes (and baseline arms) to compare (default: DEFAULT_MODES, or "
        "none when levels are given)",
    )
    levels: str | list[str] | None = Field(
        default=None,
        description="level presets to compare (autoresearch, feedback, hyperagent, arena), "
        "each an arm",
    )
    seeds: int | list[int] = Field(
        default=5, description="replicates per mode: a count (seeds 0..N-1) or the seeds"
    )
    generations: int | None = Field(
        default=None,
        ge=0,
        description="generations per run (default: 30, or with ``evaluations`` as many as "
        "evaluations, so the evaluation budget ends each run)",
    )
    evaluations: int | None = Field(
        default=None,
        ge=1,
        description="stage evaluations per run (its ``max_evaluations``): arms compared at "
        "equal evaluations, whatever each spends per generation",
    )
    name: str | None = Field(default=None, description="the experiment (default: TASK-experiment)")
    workers: int | None = Field(
        default=None, ge=1, description="runs driven at once (default: the number of CPUs)"
    )
    sandbox: str | None = Field(default=None, description="where agent code runs (all runs)")
    config: dict[str, Any] = Field(default_factory=dict, description="run config (all runs)")
    meta_from: str | None = Field(
        default=None, description="transfer: also run each mode with this variant's meta agent"
    )
    levers: str | list[str] | None = Field(
        default=None,
        description="the levers ablation (harness, weights, both): two or more give each "
        "mode an arm per lever; one sets every run's levers",
    )
    device: str | None = Field(
        default=None, description="where trainers compute: auto, cpu or cuda (training.device)"
    )

    @property
    def engine_workers(self) -> int:
        """The runs driven at once (``workers``, else the number of CPUs)."""
        return default_workers(self.workers)

    def run_config(self) -> dict[str, Any]:
        """The config of every run: ``config`` with ``sandbox``, ``evaluations`` (its
        ``max_evaluations``), ``device`` (its ``training.device``) and ``task_options`` over it.

        Raises:
            ConfigError: The config's ``task_options`` is not a mapping.
        """
        config = with_training_device(dict(self.config), self.device)
        if self.sandbox is not None:
            config["sandbox"] = self.sandbox
        if self.evaluations is not None:
            config["max_evaluations"] = self.evaluations
        options = merge_task_options(config, self.task_options)
        if options is not None:
            config["task_options"] = options
        return config

    def spec(self, *, task_name: str | None = None) -> ExperimentSpec:
        """The experiment this request describes: :meth:`run_config`, named ``name`` or
        ``TASK-experiment``.

        Args:
            task_name: The task's name, when the caller has loaded it (else it is loaded here).

        Raises:
            ConfigError: An unknown mode, no seeds, or a bad config.
            TaskNotFoundError: No task matches ``task``.
            TaskError: The task exists but does not load.
        """
        config = self.run_config()
        generations = self.generations
        if generations is None:
            generations = self.evaluations if self.evaluations is not None else 30
        if task_name is None:
            task_name = load_task(self.task, stored_task_options(config)).name
        return ExperimentSpec.parse(
            name=self.name or f"{task_name}-experiment",
            task=self.task,
            modes=self.modes if self.modes is not None else ("" if self.levels else DEFAULT_MODES),
            seeds=self.seeds,
            generations=generations,
            config=config,
            meta_from=self.meta_from,
            levers=self.levers or (),
            levels=self.levels or (),
        )


def experiment_progress(storage: str | BaseStorage | None, spec: ExperimentSpec) -> tuple[int, int]:
    """``(in all, done)`` of an experiment, in generations: every arm's runs to
    ``spec.generations``, and the generations (after the seed) that reached a final state in
    the runs it has so far. When the runs have an evaluation budget (``max_evaluations``),
    that ends them first: then both count stage evaluations (:func:`progress_unit`)."""
    store = get_storage(storage)
    runs = len(spec.arms()) * len(spec.seeds)
    budget = spec.config.get("max_evaluations")
    variants = [v for r in experiment_runs(store, spec.name) for v in store.list_variants(r.id)]
    if budget is not None:
        spent = sum(search_evaluations(v) + ("test" in v.scores) for v in variants)
        return runs * int(budget), spent
    done = sum(1 for v in variants if v.generation > 0 and v.state.is_terminal)
    return runs * spec.generations, done


def progress_unit(spec: ExperimentSpec) -> str:
    """What :func:`experiment_progress` counts: ``"evaluation"`` with an evaluation budget,
    else ``"generation"``."""
    return "evaluation" if spec.config.get("max_evaluations") is not None else "generation"


def experiment_runs(storage: str | BaseStorage | None, name: str) -> list[RunRecord]:
    """The runs of an experiment, ascending id (empty if there is none of that name)."""
    store = get_storage(storage)
    return [r for r in store.list_runs() if r.experiment == name]


def _open(spec: ExperimentSpec, store: BaseStorage, task: Task | None) -> list[Run]:
    """Create the runs that do not exist yet, open the others (checking they belong)."""
    existing = {r.name: r for r in store.list_runs()}
    task_name = task.name if task is not None else load_task(spec.task, spec.task_options).name
    donor: Program | None = None
    donor_attrs: dict[str, Any] = {}
    if spec.meta_from:
        donor, donor_attrs = meta_donor(store, spec.meta_from)
    runs: list[Run] = []
    for arm in spec.arms():
        if arm.mode is None:  # a level its own loop drives: see _driven
            continue
        for seed in spec.seeds:
            name = spec.run_name(arm, seed)
            record = existing.get(name)
            if record is None:
                runs.append(
                    Run.create(
                        task=task if task is not None else spec.task,
                        name=name,
                        mode=arm.mode,
                        seed=seed,
                        storage=store,
                        config=spec.arm_config(arm),
                        attrs=donor_attrs if arm.transfer else {},
                        meta_from=donor if arm.transfer else None,
                        experiment=spec.name,
                        arm=arm.label,
                    )
                )
                continue
            if record.experiment != spec.name:
                raise ConfigError(
                    f"a run named {name!r} exists but is not part of experiment {spec.name!r}"
                )
            if record.mode != arm.mode.value or record.seed != seed:
                raise ConfigError(f"run {name!r} has another mode or seed than its name says")
            if record.task_name is not None and record.task_name != task_name:
                raise ConfigError(
                    f"experiment {spec.name!r} runs task {record.task_name!r}, not {task_name!r}"
                )
            _check_task_options(spec, record)
            run = Run.load(name, storage=store, task=task)
            runs.append(run)
    return runs


def _check_task_options(spec: ExperimentSpec, record: RunRecord) -> None:
    """Raises: ConfigError: ``record`` was created with other task options than ``spec``
    gives (its task is another one: the grid would compare two tasks)."""
    stored = stored_task_options(record.config)
    wanted = RunConfig.parse(dict(spec.config)).task_options
    if stored != wanted:
        raise ConfigError(
            f"run {record.name!r} of experiment {spec.name!r} was created with task options "
            f"({format_task_options(stored) or 'none'}), not "
            f"({format_task_options(wanted) or 'none'}): give the same options, or another name"
        )


def _pending(run: Run, generations: int) -> int | None:
    """How many generations to add to a run's target: ``None`` continues the stored one."""
    record = run.record()
    stored = record.target_generations
    if stored is None:
        return generations
    missing = generations - int(stored)
    return missing if missing > 0 else None


def _finished(run: Run, generations: int) -> bool:
    record = run.record()
    stored = record.target_generations
    return record.status is RunStatus.COMPLETE and stored is not None and int(stored) >= generations


def run_experiment(
    spec: ExperimentSpec,
    *,
    storage: str | BaseStorage | None = None,
    workers: int = 1,
    task: Task | None = None,
    callbacks: Sequence[Callback] = (),
    on_driven: Callable[[VariantRecord], None] | None = None,
) -> list[RunRecord]:
    """Run (or continue) every run of an experiment.

    Up to ``workers`` runs go at once, each with one worker, so the results do not depend on
    ``workers``. On an interrupt (``KeyboardInterrupt``) every run still going is asked to stop
    after the work in flight, and the interrupt is raised again once they have; calling this
    again continues them. A level its own loop drives (the arena) runs beside the engine's
    arms (see :mod:`hyperagents.reports._driven`); with levels on a task with an oracle, each
    finished run's champion is scored on the held-out adversarial suite.

    Args:
        spec: The experiment.
        storage: Where the runs live.
        workers: Runs driven at once.
        task: The task object, instead of loading ``spec.task`` (e.g. a task built in code).
        callbacks: Called as ``cb(run, variant)`` whenever a variant of an engine run reaches
            a final state.
        on_driven: Called with each variant of a driven level's run (the arena's rounds) once
            it is recorded.

    Returns:
        The experiment's run records (arms × seeds, in that order) after the work.

    Raises:
        ConfigError: A bad spec, a task a level cannot run, or a run of that name that
            belongs elsewhere.
        KeyboardInterrupt: Interrupted (the runs are stopped cleanly and can be continued).
    """
    if workers < 1:
        raise ConfigError("workers must be >= 1")
    loaded = task if task is not None else load_task(spec.task, spec.task_options)
    with storage_for_creation(storage) as store:  # a refused first start leaves no new file
        driven = driven_runs(spec, store, loaded)
        runs = _open(spec, store, task)
    halt = threading.Event()

    def optimize(run: Run) -> int:
        if not _finished(run, spec.generations):
            run.optimize(_pending(run, spec.generations), workers=1, callbacks=callbacks)
        return run.id

    def play(job: DrivenRun) -> int:
        return job.drive(spec, store, loaded, halt.is_set, on_driven).id

    jobs: list[Callable[[], int]] = [partial(optimize, run) for run in runs]
    jobs += [partial(play, job) for job in driven]
    _drive(jobs, store, workers, halt, [run.id for run in runs])
    ids = [run.id for run in runs] + [store.get_run_by_name(job.name).id for job in driven]
    heldout_after(spec, store, loaded, ids)
    order = {(arm.label, seed): i for i, (arm, seed) in enumerate(_grid(spec))}
    records = [store.get_run(run_id) for run_id in ids]
    return sorted(records, key=lambda r: order.get((r.arm or r.mode, r.seed), len(order)))


def _grid(spec: ExperimentSpec) -> list[tuple[Arm, int]]:
    return [(arm, seed) for arm in spec.arms() for seed in spec.seeds]


def _drive(
    jobs: list[Callable[[], int]],
    store: BaseStorage,
    workers: int,
    halt: threading.Event,
    engine_runs: list[int],
) -> None:
    """Run ``jobs``, ``workers`` at once; on an interrupt, stop the engine runs going (and
    tell the driven ones, by ``halt``), wait for them, and raise it again.

    Raises:
        KeyboardInterrupt: Interrupted.
    """
    if not jobs:
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(jobs)))
    futures: list[Future[int]] = []
    queue = list(jobs)
    try:
        while queue or futures:
            while queue and len(futures) < workers:
                futures.append(pool.submit(queue.pop(0)))
            done = wait_awake(futures)  # wakes to take a SIGTERM or Ctrl-C
            for future in done:
                futures.remove(future)
                future.result()  # a run that failed raises here
    except KeyboardInterrupt:
        queue.clear()
        halt.set()
        for run_id in engine_runs:
            store.set_run_status(run_id, RunStatus.STOPPED, expected=RunStatus.RUNNING)
        wait(futures)
        raise
    finally:
        pool.shutdown(wait=True)

"""The run: the public front of one self-improvement experiment, driven by ask/tell or optimize.

One generation: select a parent → give its files (or, in ``frozen-meta`` mode, its task files
with the seed's meta files) to a meta agent in the sandbox → record the child program →
validate it in the sandbox → staged evaluation (a train subset, then the rest of train and val
if the subset clears the threshold) → tell the archive. A variant that becomes champion (best
val score so far, by generation order) is also scored on the test split, for reporting only.

Every step is committed to storage as it completes, so a run killed at any moment resumes from
its last committed step: nothing recorded is redone, and work held by a dead engine is taken
over (owner liveness on this host, heartbeats elsewhere).

Reproducibility: all randomness is derived from ``(run seed, generation)``; parent selection and
the meta agent's report for generation *g* only see generations ``<= g - parallel_generations``,
which are finished before *g* starts, so the archive does not depend on timing or on the order
in which parallel work completes.

:class:`Run` holds no logic of its own; it hands each step to one part, the way Optuna's
``Study`` hands its loop to ``_optimize`` and its decisions to samplers and pruners:

- :mod:`~hyperagents.runs._context`: the narrow shared state (storage, task, sandbox, config,
  caches, events, limits, seeds, the run's LLM);
- :mod:`~hyperagents.runs._jobs`: the ask side (the next job, parent selection) with
  :mod:`~hyperagents.runs._report` (what a meta agent is shown);
- :mod:`~hyperagents.runs._improve`, :mod:`~hyperagents.runs._advance` and
  :mod:`~hyperagents.runs._stages`: the improvement, validation, the stage plan and the pruner;
- :mod:`~hyperagents.runs._gate`: the constitution, quarantine and approval;
- :mod:`~hyperagents.runs._engine` with :mod:`~hyperagents.runs._lease`: the drive (lease,
  heartbeats, scheduling, stop conditions) — the only part that finishes unfinished work;
- :class:`~hyperagents.archive.ArchiveView`: what the archive says (champion, best, lineage).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hyperagents.archive import ArchiveView
from hyperagents.exceptions import RunNotFoundError, RunStateError
from hyperagents.improvers import Improver, ImproveResult
from hyperagents.program import Program
from hyperagents.runs._advance import Advancer
from hyperagents.runs._config import Mode, RunConfig
from hyperagents.runs._context import RunContext
from hyperagents.runs._create import NewRun, create_run, record_task
from hyperagents.runs._engine import Engine
from hyperagents.runs._export import run_summary
from hyperagents.runs._failure_pattern import common_failure
from hyperagents.runs._gate import Gate
from hyperagents.runs._improve import Improvement
from hyperagents.runs._jobs import Job, Jobs
from hyperagents.runs._judge import attach_run_judge
from hyperagents.runs._lease import Lease
from hyperagents.runs._llm import RunLLM
from hyperagents.runs._stages import STAGES, StagePlan, SubsetPruner, resolve_subset
from hyperagents.sandbox import Sandbox
from hyperagents.storages import BaseStorage, RunRecord, VariantRecord, VariantState, get_storage
from hyperagents.tasks import Split, Task

__all__ = ["STAGES", "Job", "Run"]

Callback = Callable[["Run", VariantRecord], None]


class Run:
    """A self-improvement run stored in a :class:`~hyperagents.storages.BaseStorage`.

    Create one with :meth:`create`, reopen it with :meth:`load`. Drive it with
    :meth:`optimize`, or step by step with :meth:`ask`, :meth:`improve` and :meth:`tell`.

    Example:
        >>> run = Run.create(task="review", storage="memory", seed=0)   # doctest: +SKIP
        >>> run.optimize(generations=5)                                  # doctest: +SKIP
        >>> run.champion().scores["val"]                                 # doctest: +SKIP

    Attributes:
        last_stop_reason: Why the last :meth:`optimize` call ended ("target reached",
            "interrupted", …; None before the first).
    """

    def __init__(
        self,
        *,
        storage: BaseStorage,
        record: RunRecord,
        task: Task,
        sandbox: Sandbox | None = None,
        improver: Improver | None = None,
    ) -> None:
        ctx = RunContext(storage=storage, record=record, task=task, sandbox=sandbox)
        attach_run_judge(ctx)
        if "auto" in (ctx.config.subset_size, ctx.config.subset_margin):  # not stored resolved
            ctx.config = resolve_subset(ctx.config, len(ctx.instances(Split.TRAIN)))
        self._ctx = ctx
        self._jobs = Jobs(ctx)
        self._improvement = Improvement(ctx, improver)
        self._advancer = Advancer(
            ctx,
            jobs=self._jobs,
            improvement=self._improvement,
            plan=StagePlan(ctx),
            pruner=SubsetPruner.from_config(ctx.config, task.score_range),
            gate=Gate(ctx),
        )
        self._engine = Engine(ctx, jobs=self._jobs, advancer=self._advancer, lease=Lease(ctx))
        self.last_stop_reason: str | None = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(  # noqa: PLR0913 - keyword-only settings of the public constructor
        cls,
        *,
        task: str | Task,
        name: str | None = None,
        mode: str | Mode | None = None,
        seed: int = 0,
        storage: str | BaseStorage | None = None,
        config: RunConfig | Mapping[str, Any] | None = None,
        sandbox: Sandbox | None = None,
        improver: Improver | None = None,
        attrs: Mapping[str, Any] | None = None,
        meta_from: Program | None = None,
        generations: int | None = None,
        experiment: str | None = None,
        arm: str | None = None,
        seed_from: Program | None = None,
    ) -> Run:
        """Create a run (and its seed variant, generation 0) in storage.

        Args:
            task: A task spec (``"review"``, ``"path/file.py:Class"``, entry point) or object.
            name: Unique run name; default ``"<task>-<mode>-s<seed>"`` (suffixed if taken).
            mode: ``hyperagent`` (the default), ``frozen-meta``, ``no-archive`` or a baseline;
                    with a ``level`` in ``config``, the level's mode (None: the level's).
            seed: Seed of every random choice in the run.
            storage: Storage URL or object (default: ``$HYPERAGENTS_STORAGE`` or SQLite file).
            config: Run configuration (see :class:`RunConfig`). Its ``level`` (a level preset:
                ``autoresearch``, ``feedback``, ``hyperagent``, ``arena``) sets the run's mode
                and the values the level fixes (see :func:`~hyperagents.runs.level_preset`).
            sandbox: Override the sandbox (default: from ``config.sandbox``).
            improver: Override the improver (default: the program's own meta agent).
            attrs: Free-form attributes stored with the run.
            meta_from: Transfer: a program (e.g. a variant evolved on another task) whose meta
                files (``meta_agent.py`` at least; see :meth:`Task.with_meta_agent`) replace
                the seed's; the task agent stays the task's own seed.
            generations: The run's generation target, stored with it at creation so that an
                engine started later (or killed before it starts) goes on to it with no
                generations given (``optimize()``, ``resume``); a number given to
                :meth:`optimize` is added to it. None: set by the first :meth:`optimize`.
            experiment: The experiment the run is part of (see :mod:`hyperagents.reports`).
            arm: The group the run is compared in within its experiment (default: its mode).
            seed_from: The seed program itself (e.g. a served champion's, to improve it
                further), instead of the task's seed; it keeps its own meta agent.

        Raises:
            ConfigError: Bad mode, level or config (or a value the level sets otherwise), a
                negative ``generations``, or ``meta_from``
                without a ``meta_agent.py`` or together with a ``meta_agent`` other than
                ``task``. TaskError: Task cannot be loaded. DuplicateError: ``name`` is taken.
        """
        new = create_run(
            task=task,
            name=name,
            mode=mode,
            seed=seed,
            storage=storage,
            config=config,
            sandbox=sandbox,
            attrs=attrs,
            meta_from=meta_from,
            generations=generations,
            experiment=experiment,
            arm=arm,
            seed_from=seed_from,
        )
        return cls._created(new, improver=improver, owns_sandbox=sandbox is None)

    @classmethod
    def _created(cls, new: NewRun, *, improver: Improver | None, owns_sandbox: bool) -> Run:
        """The front of a run just created: it owns (and closes) the sandbox when the caller
        gave none, and warns about settings its program makes meaningless."""
        run = cls(
            storage=new.storage,
            record=new.record,
            task=new.task,
            sandbox=new.sandbox,
            improver=improver,
        )
        run._ctx.owns_sandbox = owns_sandbox
        run._jobs.check_settings()
        return run

    @classmethod
    def load(
        cls,
        name: str | int,
        *,
        storage: str | BaseStorage | None = None,
        sandbox: Sandbox | None = None,
        improver: Improver | None = None,
        task: Task | None = None,
    ) -> Run:
        """Open an existing run by name (or id).

        Args:
            name: Run name or id.
            storage: Storage URL or object.
            sandbox: Override the sandbox.
            improver: Override the improver.
            task: The task object, for runs created with a task object rather than a spec
                (default: the run's task spec, created with the task options it stored).

        Raises:
            RunNotFoundError: No such run. TaskError: its task cannot be loaded any more.
        """
        store = get_storage(storage)
        if isinstance(name, int):
            record = store.get_run(name)
        else:
            try:
                record = store.get_run_by_name(name)
            except RunNotFoundError:
                if not name.isdigit():
                    raise
                record = store.get_run(int(name))
        task_obj = task if task is not None else record_task(record)
        return cls(storage=store, record=record, task=task_obj, sandbox=sandbox, improver=improver)

    # -- properties ------------------------------------------------------------------------------
    @property
    def id(self) -> int:
        """Storage id of the run."""
        return self._ctx.run_id

    @property
    def name(self) -> str:
        """Unique name of the run."""
        return self._ctx.name

    @property
    def task(self) -> Task:
        """The task object."""
        return self._ctx.task

    @property
    def mode(self) -> Mode:
        """The run's mode."""
        return self._ctx.mode

    @property
    def seed(self) -> int:
        """The run's random seed."""
        return self._ctx.seed

    @property
    def config(self) -> RunConfig:
        """The run's configuration."""
        return self._ctx.config

    @property
    def storage(self) -> BaseStorage:
        """The storage holding the run."""
        return self._ctx.storage

    @property
    def owner(self) -> str:
        """The token this object uses to claim work."""
        return self._ctx.owner

    @property
    def llm(self) -> RunLLM | None:
        """The run's language model (None when the run has none), built on first use.

        Raises:
            LLMConfigError: The configured spec is invalid.
            RunNotFoundError: ``replay_of`` names a run that does not exist.
        """
        return self._ctx.llm

    # -- reading the run -------------------------------------------------------------------------
    def record(self) -> RunRecord:
        """A fresh snapshot of the run's record."""
        return self._ctx.record()

    def variants(self, states: Iterable[VariantState] | None = None) -> list[VariantRecord]:
        """The run's variants, ascending generation."""
        return self._ctx.variants(states)

    def program(self, variant: VariantRecord | int) -> Program:
        """The program of a variant.

        Raises:
            RunStateError: The variant has no program (its improvement failed or is pending).
        """
        record = self._ctx.variant(variant) if isinstance(variant, int) else variant
        if record.program_id is None:
            raise RunStateError(f"variant {record.id} has no program")
        return self._ctx.program(record.program_id)

    def champion(self, variants: Sequence[VariantRecord] | None = None) -> VariantRecord | None:
        """The complete variant with the best val score (ties: earliest generation)."""
        return ArchiveView.of(variants if variants is not None else self.variants()).champion()

    def summary(self) -> dict[str, Any]:
        """Best scores per split, archive size, generations, counts by state, time."""
        view = ArchiveView.of(self.variants())
        record = self.record()
        usage = self._ctx.storage.llm_usage(self._ctx.run_id)
        return run_summary(record, view, self._ctx.config, usage)

    def warnings(self) -> list[str]:
        """What the run warned about (``run.warning`` events), each message once, oldest first:
        settings that do not do what they say (e.g. ``--selector program`` without a
        ``select_parent.py``); then, read from its variants now, whether every child so far
        failed the same way (e.g. "the meta agent made no change" each time)."""
        found = self._ctx.warnings()
        pattern = common_failure(self._ctx.storage.list_variants(self._ctx.run_id))
        return [*found, pattern] if pattern is not None else found

    def warn(self, message: str) -> None:
        """Record a ``run.warning`` event (once per message per run) and log it."""
        self._ctx.warn(message)

    # -- ask / improve / tell --------------------------------------------------------------------
    def ask(self) -> Job:
        """Create the next generation's variant, select its parent and return its job.

        Earlier work that selection depends on and that nobody else holds (the seed of a fresh
        run, work left by a dead engine) is finished first, by the engine.

        Raises:
            RunStateError: Earlier generations that selection depends on are not finished yet
                (with ``parallel_generations`` > 1), or nothing is eligible as a parent.
        """
        with self._ctx.lock:
            variants = self._engine.finish_unfinished()
            return self._jobs.ask(variants)[0]

    def improve(self, job: Job) -> ImproveResult:
        """Run the configured improver (default: the job program's own meta agent) on a job.

        Raises:
            SandboxError: The sandbox broke (after the configured retries).
        """
        return self._improvement.run(job)

    def tell(self, job: Job, result: ImproveResult | Program) -> VariantRecord:
        """Record a job's child, then validate and evaluate it to a terminal state.

        Args:
            job: The job from :meth:`ask`.
            result: The improver's result, or a child program made any other way.

        Returns:
            The variant's final record.
        """
        if isinstance(result, Program):
            result = ImproveResult(result, {"source": "tell"})
        self._ctx.check_budget(job.variant_id)
        variant = self._improvement.record(self._ctx.variant(job.variant_id), job, result)
        self._advancer.advance(job.variant_id, record=variant)
        return self._ctx.variant(job.variant_id)

    # -- optimize --------------------------------------------------------------------------------
    def target_after(
        self,
        generations: int | None,
        *,
        variants: Sequence[VariantRecord] | None = None,
        record: RunRecord | None = None,
    ) -> int:
        """The generation target :meth:`optimize` would pursue for ``generations``.

        ``None`` keeps the stored target (or the last generation if none is stored); a number
        adds that many generations to the stored target (or to the last generation).

        Raises:
            ConfigError: ``generations`` is negative.
        """
        return self._engine.target_after(generations, variants=variants, record=record)

    def optimize(
        self,
        generations: int | None = None,
        *,
        timeout: float | None = None,
        workers: int = 1,
        callbacks: Sequence[Callback] = (),
        join: bool = False,
    ) -> RunRecord:
        """Run generations until the target is reached, the timeout passes, or an interrupt.

        Args:
            generations: New generations to add to the target (``None``: continue to the
                stored target — what ``resume`` does).
            timeout: Seconds after which no new generation starts (in-flight work finishes).
            workers: Threads driving sandboxed work at once (does not change results; the
                run's ``parallel_generations`` bounds how many generations overlap).
            callbacks: Called as ``cb(run, variant)`` whenever a variant reaches a final state.
            join: Work on the run beside the engine that leads it (several engines, each in
                its own process, sharing the run's target; see :mod:`hyperagents.runs._crew`):
                lead it when no live engine does, else join as a member, which goes on to the
                run's stored target (``generations`` must be None). Needs a storage that takes
                several writers at once (PostgreSQL, not SQLite).

        Returns:
            The run's record when it stopped.

        Raises:
            RunStateError: Another live engine is driving this run, or claimed it first, or
                ``join`` on a SQLite storage (the run is left exactly as it was).
            SandboxError: The sandbox kept failing (the run is marked FAILED, resumable).
        """
        notify = [_bound(cb, self) for cb in callbacks]
        try:
            return self._engine.optimize(
                generations, timeout=timeout, workers=workers, notify=notify, join=join
            )
        finally:
            self.last_stop_reason = self._engine.last_stop_reason


def _bound(callback: Callback, run: Run) -> Callable[[VariantRecord], None]:
    """``callback`` with its run given."""
    return lambda variant: callback(run, variant)

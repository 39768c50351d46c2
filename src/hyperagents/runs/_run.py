"""The run: one self-improvement experiment, driven by ask/tell or optimize.

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
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from hyperagents.archive import ArchiveView
from hyperagents.exceptions import (
    ConfigError,
    DuplicateError,
    RunNotFoundError,
    RunStateError,
    SandboxError,
)
from hyperagents.improvers import (
    Improver,
    ImproveResult,
    meta_agent_source,
)
from hyperagents.llm import probe_llm
from hyperagents.program import Program
from hyperagents.runs._advance import Advancer
from hyperagents.runs._attrs import initial_attrs
from hyperagents.runs._config import Mode, RunConfig, parse_mode
from hyperagents.runs._context import (
    BudgetExhausted,
    ModelCutOff,
    RunContext,
    sandbox_for,
)
from hyperagents.runs._gate import Gate, check_seed, run_constitution
from hyperagents.runs._improve import Improvement
from hyperagents.runs._jobs import Job, Jobs
from hyperagents.runs._llm import RunLLM
from hyperagents.runs._meta_files import transfer_meta
from hyperagents.runs._owner import engine_alive, owner_is_dead
from hyperagents.runs._stages import STAGES, StagePlan, SubsetPruner
from hyperagents.sandbox import Sandbox
from hyperagents.storages import (
    BaseStorage,
    EventSpec,
    RunRecord,
    RunStatus,
    VariantRecord,
    VariantState,
    get_storage,
)
from hyperagents.tasks import Task, load_task

__all__ = ["STAGES", "Job", "Run"]

logger = logging.getLogger("hyperagents")

_T = TypeVar("_T")
Callback = Callable[["Run", VariantRecord], None]


#: The event that records how an engine's drive ended, by the run's final status.
_END_KINDS = {
    RunStatus.COMPLETE: "run.completed",
    RunStatus.STOPPED: "run.stopped",
    RunStatus.FAILED: "run.failed",
}


class Run:
    """A self-improvement run stored in a :class:`~hyperagents.storages.BaseStorage`.

    Create one with :meth:`create`, reopen it with :meth:`load`. Drive it with
    :meth:`optimize`, or step by step with :meth:`ask`, :meth:`improve` and :meth:`tell`.

    Example:
        >>> run = Run.create(task="review", storage="memory", seed=0)   # doctest: +SKIP
        >>> run.optimize(generations=5)                                  # doctest: +SKIP
        >>> run.champion().scores["val"]                                 # doctest: +SKIP
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
        self._ctx = RunContext(storage=storage, record=record, task=task, sandbox=sandbox)
        #: Held while :meth:`optimize` drives the run (one call at a time per object).
        self._driving = threading.Lock()
        #: Champions whose test evaluation kept failing in this process (not handed out again).
        self._tests_given_up: set[int] = set()
        #: Why the last :meth:`optimize` call ended ("target reached", "interrupted", …).
        self.last_stop_reason: str | None = None
        self._jobs = Jobs(self._ctx)
        self._improvement = Improvement(self._ctx, improver)
        self._advancer = Advancer(
            self._ctx,
            jobs=self._jobs,
            improvement=self._improvement,
            plan=StagePlan(self._ctx),
            pruner=SubsetPruner.from_config(self._ctx.config, task.score_range),
            gate=Gate(self._ctx),
        )

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        task: str | Task,
        name: str | None = None,
        mode: str | Mode = Mode.HYPERAGENT,
        seed: int = 0,
        storage: str | BaseStorage | None = None,
        config: RunConfig | Mapping[str, Any] | None = None,
        sandbox: Sandbox | None = None,
        improver: Improver | None = None,
        attrs: Mapping[str, Any] | None = None,
        meta_from: Program | None = None,
        generations: int | None = None,
    ) -> Run:
        """Create a run (and its seed variant, generation 0) in storage.

        Args:
            task: A task spec (``"review"``, ``"path/file.py:Class"``, entry point) or object.
            name: Unique run name; default ``"<task>-<mode>-s<seed>"`` (suffixed if taken).
            mode: ``hyperagent``, ``frozen-meta`` or ``no-archive``.
            seed: Seed of every random choice in the run.
            storage: Storage URL or object (default: ``$HYPERAGENTS_STORAGE`` or SQLite file).
            config: Run configuration (see :class:`RunConfig`).
            sandbox: Override the sandbox (default: from ``config.sandbox``).
            improver: Override the improver (default: the program's own meta agent).
            attrs: Free-form attributes stored with the run.
            meta_from: Transfer: a program (e.g. a variant evolved on another task) whose meta
                files (the task's ``meta_files`` it holds, ``meta_agent.py`` at least) replace
                the seed's; the task agent stays the task's own seed.
            generations: The run's generation target, stored with the run when it is created,
                so an engine killed before it starts (or a separate engine process started
                later) goes on to it: ``optimize()`` or ``resume`` with no generations. (A
                number given to :meth:`optimize` is added to it.) None: set by the first
                :meth:`optimize`.

        Raises:
            ConfigError: Bad mode or config, a negative ``generations``, or ``meta_from``
                without a ``meta_agent.py`` or together with a ``meta_agent`` other than
                ``task``. TaskError: Task cannot be loaded. DuplicateError: ``name`` is taken.
        """
        run_mode = parse_mode(mode)
        _check_generations(generations)
        task_obj = load_task(task)
        task_spec = _portable_spec(task) if isinstance(task, str) else task_obj.name
        cfg = config if isinstance(config, RunConfig) else RunConfig.parse(dict(config or {}))
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        store = get_storage(storage)
        seed_program = task_obj.seed_program()
        meta_source = meta_agent_source(cfg.meta_agent)
        if meta_source is not None:
            if meta_from is not None:
                raise ConfigError(
                    "give either a transferred meta agent (meta_from) or meta_agent "
                    f"{cfg.meta_agent!r}, not both"
                )
            seed_program = seed_program.with_files({"meta_agent.py": meta_source})
        if meta_from is not None:
            if "meta_agent.py" not in meta_from:
                raise ConfigError("the program to take the meta agent from has no meta_agent.py")
            seed_program = transfer_meta(seed_program, meta_from, task_obj)
        cfg = run_constitution(cfg, task_obj)
        check_seed(cfg, task_obj, seed_program)
        # Everything that can refuse the run is checked before anything is stored: a start
        # that fails leaves no run behind.
        built = sandbox if sandbox is not None else sandbox_for(cfg, task_obj)
        _check_llm(cfg)
        program_id = store.put_program(seed_program)
        base_name = name or f"{task_obj.name}-{run_mode.value}-s{seed}"
        run_attrs = initial_attrs(task_obj.name, attrs, generations)
        for attempt in range(1000):
            candidate = base_name if attempt == 0 else f"{base_name}-{attempt + 1}"
            try:
                run_id = store.create_run(
                    name=candidate,
                    task=task_spec,
                    mode=run_mode.value,
                    seed=seed,
                    config=cfg.model_dump(mode="json"),
                    seed_program_id=program_id,
                    attrs=run_attrs,
                )
                break
            except DuplicateError:
                if name is not None:
                    raise
        else:  # pragma: no cover - a thousand runs with one name
            raise DuplicateError(f"no free run name like {base_name!r}")
        store.create_variant(
            run_id=run_id,
            generation=0,
            parent_id=None,
            state=VariantState.RUNNING,
            program_id=program_id,
            meta_info={"seed": True},
            event=EventSpec("variant.created", "seed program", {"generation": 0}),
        )
        store.add_event(
            run_id,
            "run.created",
            f"task {task_spec}, mode {run_mode.value}, seed {seed}",
            data={"config": cfg.model_dump(mode="json")},
        )
        run = cls(
            storage=store,
            record=store.get_run(run_id),
            task=task_obj,
            sandbox=built,
            improver=improver,
        )
        run._ctx.owns_sandbox = sandbox is None
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
            task: The task object, for runs created with a task object rather than a spec.

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
                if name.isdigit():
                    record = store.get_run(int(name))
                else:
                    raise
        task_obj = task if task is not None else load_task(record.task)
        return cls(storage=store, record=record, task=task_obj, sandbox=sandbox, improver=improver)

    # -- properties -------------------------------------------------------------------------
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

    def record(self) -> RunRecord:
        """A fresh snapshot of the run's record."""
        return self._ctx.storage.get_run(self._ctx.run_id)

    def variants(self, states: Iterable[VariantState] | None = None) -> list[VariantRecord]:
        """The run's variants, ascending generation."""
        return self._ctx.storage.list_variants(self._ctx.run_id, states=states)

    def program(self, variant: VariantRecord | int) -> Program:
        """The program of a variant.

        Raises:
            RunStateError: The variant has no program (its improvement failed or is pending).
        """
        record = self._ctx.storage.get_variant(variant) if isinstance(variant, int) else variant
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
        best = view.champion()
        seed = view.seed()
        counts = view.state_counts()
        return {
            "run": record.name,
            "task": record.task,
            "mode": record.mode,
            "seed": record.seed,
            "status": record.status.name.lower(),
            "generations": view.last_generation(),
            "target_generations": self._ctx.target_generations(record),
            "archive_size": counts.get("complete", 0),
            "variants": len(view),
            "states": counts,
            "champion": None
            if best is None
            else {
                "variant_id": best.id,
                "generation": best.generation,
                "scores": dict(best.scores),
            },
            "seed_scores": dict(seed.scores) if seed else {},
            "best_scores": view.best_scores(),
            "elapsed_seconds": self._ctx.elapsed_seconds(record),
            "evaluations": view.evaluations(),
            "max_seconds": self._ctx.config.max_seconds,
            "max_evaluations": self._ctx.config.max_evaluations,
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
            "llm": self._llm_summary(),
        }

    def _llm_summary(self) -> dict[str, Any] | None:
        """The run's LLM use and budgets (None for a run without a model)."""
        cfg = self._ctx.config
        usage = self._ctx.storage.llm_usage(self._ctx.run_id)
        if cfg.llm is None and cfg.replay_of is None and not (usage["calls"] or usage["errors"]):
            return None
        return {
            "model": cfg.llm,
            "replay_of": cfg.replay_of,
            **usage,
            "max_cost": cfg.max_cost,
            "max_tokens": cfg.max_tokens,
        }

    # -- warnings ---------------------------------------------------------------------------
    def warnings(self) -> list[str]:
        """What the run warned about (``run.warning`` events), each message once, oldest first:
        settings that do not do what they say (e.g. ``--selector program`` without a
        ``select_parent.py``)."""
        return self._ctx.warnings()

    def warn(self, message: str) -> None:
        """Record a ``run.warning`` event (once per message per run) and log it."""
        self._ctx.warn(message)

    # -- the language model ------------------------------------------------------------------
    @property
    def llm(self) -> RunLLM | None:
        """The run's language model (None when the run has none), built on first use.

        Raises:
            LLMConfigError: The configured spec is invalid.
            RunNotFoundError: ``replay_of`` names a run that does not exist.
        """
        return self._ctx.llm

    # -- ask / improve / tell ----------------------------------------------------------------
    def ask(self) -> Job:
        """Create the next generation's variant, select its parent and return its job.

        Raises:
            RunStateError: Earlier generations that selection depends on are not finished yet
                (with ``parallel_generations`` > 1), or nothing is eligible as a parent.
        """
        return self._ask(self.variants())[0]

    def _ensure_seed(self, variants: Sequence[VariantRecord]) -> list[VariantRecord]:
        """Create the seed variant if a crash inside :meth:`create` left the run without it."""
        if any(v.generation == 0 for v in variants):
            return list(variants)
        with contextlib.suppress(DuplicateError):  # another engine did it first
            self._ctx.storage.create_variant(
                run_id=self._ctx.run_id,
                generation=0,
                parent_id=None,
                state=VariantState.RUNNING,
                program_id=self._ctx.seed_program_id,
                meta_info={"seed": True},
                event=EventSpec("variant.created", "seed program (recreated)", {"generation": 0}),
            )
        return self.variants()

    def _ask(self, variants: Sequence[VariantRecord]) -> tuple[Job, VariantRecord]:
        with self._ctx.lock:
            variants = self._ensure_seed(variants)
            generation = max((v.generation for v in variants), default=0) + 1
            if not self._jobs.ready_for(variants, generation):
                # Finish what selection depends on if nobody else holds it (e.g. the seed of
                # a fresh run, or work left by a dead engine), then look again.
                horizon = max(0, generation - self._ctx.config.parallel_generations)
                blockers = [v for v in variants if v.generation <= horizon]
                for variant_id in self._claim_orphans(blockers):
                    self._advancer.advance(variant_id)
                variants = self.variants()
            return self._jobs.ask(variants)

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
        return self._ctx.storage.get_variant(job.variant_id)

    # -- champions and the test split -------------------------------------------------------
    def _due_test_evaluations(self, variants: Sequence[VariantRecord]) -> list[VariantRecord]:
        """Variants that were champion when their generation settled and lack a test score."""
        return [
            v
            for v in ArchiveView.of(variants).champions_as_settled()
            if "test" not in v.scores and v.id not in self._tests_given_up
        ]

    # -- resume ------------------------------------------------------------------------------
    def _claim_orphans(self, variants: Sequence[VariantRecord]) -> list[int]:
        """Take over non-terminal variants whose owner is gone (or that nobody owns)."""
        claimed = []
        now = time.time()
        for v in variants:
            if v.state.is_terminal or v.owner == self._ctx.owner:
                if v.owner == self._ctx.owner and not v.state.is_terminal:
                    claimed.append(v.id)
                continue
            stale = not v.owner or owner_is_dead(v.owner)
            if not stale and v.heartbeat_at is not None:
                stale = now - v.heartbeat_at.timestamp() > self._ctx.config.heartbeat_grace
            if stale and self._ctx.storage.claim_variant(
                v.id,
                self._ctx.owner,
                expected_owner=v.owner,
                event=EventSpec(
                    "variant.reclaimed", f"taken over from {v.owner}", {"previous_owner": v.owner}
                )
                if v.owner
                else EventSpec("variant.claimed", "work picked up"),
            ):
                claimed.append(v.id)
        return claimed

    # -- optimize ----------------------------------------------------------------------------
    def _budget_spent(self, variants: Iterable[VariantRecord], elapsed: float) -> str | None:
        """Why the run's time or evaluation budget forbids new work (None: it does not)."""
        cfg = self._ctx.config
        if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
            return (
                f"time budget of {cfg.max_seconds:g} s spent (raise it with resume --max-seconds)"
            )
        if cfg.max_evaluations is not None:
            done = ArchiveView.of(variants).evaluations()
            if done >= cfg.max_evaluations:
                return (
                    f"evaluation budget of {cfg.max_evaluations} reached "
                    "(raise it with resume --max-evaluations)"
                )
        return None

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
        if generations is not None and generations < 0:
            raise ConfigError("generations must be >= 0")
        variants = self.variants() if variants is None else variants
        stored = self._ctx.target_generations(record)
        last = max((v.generation for v in variants), default=0)
        base = last if stored is None else max(last, stored)
        if generations is None:
            return base
        return base + generations

    def optimize(
        self,
        generations: int | None = None,
        *,
        timeout: float | None = None,
        workers: int = 1,
        callbacks: Sequence[Callback] = (),
    ) -> RunRecord:
        """Run generations until the target is reached, the timeout passes, or an interrupt.

        Args:
            generations: New generations to add to the target (``None``: continue to the
                stored target — what ``resume`` does).
            timeout: Seconds after which no new generation starts (in-flight work finishes).
            workers: Threads driving sandboxed work at once (does not change results; the
                run's ``parallel_generations`` bounds how many generations overlap).
            callbacks: Called as ``cb(run, variant)`` whenever a variant reaches a final state.

        Returns:
            The run's record when it stopped.

        Raises:
            RunStateError: Another live engine is driving this run, or claimed it first (the
                run is left exactly as it was).
            SandboxError: The sandbox kept failing (the run is marked FAILED, resumable).
        """
        if workers < 1:
            raise ConfigError("workers must be >= 1")
        if generations is not None and generations < 0:
            raise ConfigError("generations must be >= 0")
        if not self._driving.acquire(blocking=False):  # its owner token is this object's
            raise RunStateError(f"this Run object is driving {self._ctx.name!r} already")
        try:
            record, variants, target = self._start(generations, workers)
        except BaseException:
            self._driving.release()
            raise
        set_warm = getattr(self._ctx.sandbox, "set_warm", None)
        started = time.perf_counter()
        elapsed_before = self._ctx.elapsed_seconds(record)
        deadline = None if timeout is None else time.monotonic() + timeout
        stop = threading.Event()
        in_flight: dict[Future[Any], int] = {}
        flight_lock = threading.Lock()
        tests_in_flight: set[int] = set()
        beat_stop = threading.Event()
        taken_over = threading.Event()
        self._jobs.target = target
        # The engine's mirror of the archive: loaded once, then updated from the engine's own
        # asks and finished work, so a generation costs O(1) storage reads whatever the size.
        mirror: dict[int, VariantRecord] = {v.id: v for v in variants}

        def current() -> list[VariantRecord]:
            return sorted(mirror.values(), key=lambda v: v.generation)

        def reload() -> list[VariantRecord]:
            mirror.clear()
            mirror.update((v.id, v) for v in self.variants())
            return current()

        def submit(fn: Callable[..., Any], variant_id: int, *args: Any) -> None:
            future = pool.submit(fn, *args)
            with flight_lock:
                in_flight[future] = variant_id

        def heartbeat() -> None:
            while not beat_stop.wait(self._ctx.config.heartbeat_interval):
                try:
                    with flight_lock:
                        ids = list(in_flight.values())
                    if ids:
                        self._ctx.storage.heartbeat(self._ctx.owner, ids)
                    if not self._ctx.storage.claim_run_engine(
                        self._ctx.run_id, self._ctx.owner, expected=self._ctx.owner
                    ):
                        # Another engine found this one's heartbeat stale and took the run
                        # over: start nothing more; the work in flight finishes.
                        logger.error("run %r was taken over by another engine", self._ctx.name)
                        taken_over.set()
                        stop.set()
                        return
                    # Time spent so far counts even if this engine is killed (time budget).
                    spent = elapsed_before + time.perf_counter() - started
                    self._ctx.store_elapsed(spent)
                except Exception as exc:  # keep beating; the main loop reports storage errors
                    logger.warning("heartbeat failed: %s", exc)

        beater = threading.Thread(target=heartbeat, name="hyperagents-heartbeat", daemon=True)
        beater.start()
        final_status = RunStatus.COMPLETE
        message = "target reached"
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hyperagents-worker")
        interrupted = 0
        abort = False
        failures: dict[int, int] = {}
        try:
            for variant_id in self._claim_orphans(variants):
                submit(self._advancer.advance, variant_id, variant_id)
            while True:
                try:
                    # People approve or reject waiting children from other processes.
                    for waiting in [
                        v.id for v in mirror.values() if v.state is VariantState.PENDING
                    ]:
                        mirror[waiting] = self._ctx.storage.get_variant(waiting)
                    variants = current()
                    if self.record().status is RunStatus.STOPPED:
                        stop.set()
                        final_status, message = RunStatus.STOPPED, "stopped by request"
                    if deadline is not None and time.monotonic() >= deadline and not stop.is_set():
                        stop.set()
                        final_status, message = RunStatus.STOPPED, f"timeout of {timeout:g} s"
                    spent = self._budget_spent(
                        mirror.values(), elapsed_before + time.perf_counter() - started
                    )
                    if spent is not None and not stop.is_set():
                        stop.set()
                        final_status, message = RunStatus.STOPPED, spent
                    if self._ctx.built_llm is not None and not stop.is_set():
                        if self._ctx.built_llm.budget_exhausted.is_set():
                            stop.set()
                            final_status = RunStatus.STOPPED
                            message = "LLM budget exhausted (raise it and resume)"
                        elif self._ctx.built_llm.broken is not None:
                            stop.set()
                            final_status, message = RunStatus.STOPPED, self._ctx.built_llm.broken
                        elif self._ctx.built_llm.diverged.is_set():
                            stop.set()
                            final_status = RunStatus.STOPPED
                            message = (
                                f"replay diverged from its record: {self._ctx.built_llm.divergence}"
                            )
                    # Once stopping, due test evaluations wait for a resume (a test refused for
                    # budget would otherwise be handed out again and again).
                    for v in [] if stop.is_set() else self._due_test_evaluations(variants):
                        if v.id not in tests_in_flight and len(in_flight) < workers + 1:
                            tests_in_flight.add(v.id)
                            submit(self._advancer.evaluate_test, v.id, v.id)
                    last = max((v.generation for v in variants), default=0)
                    while (
                        not stop.is_set()
                        and last < target
                        and len(in_flight) < workers
                        and self._jobs.ready_for(variants, last + 1)
                    ):
                        job, created = self._ask(variants)
                        mirror[created.id] = created
                        submit(self._improve_and_tell, job.variant_id, job)
                        variants = current()
                        last = job.generation
                    if not in_flight:
                        if stop.is_set() or last >= target:
                            break
                        # Work we depend on is held by another live engine: wait for it to
                        # finish or for its heartbeat to go stale, then take it over.
                        stop.wait(min(1.0, self._ctx.config.heartbeat_interval))
                        for variant_id in self._claim_orphans(reload()):
                            submit(self._advancer.advance, variant_id, variant_id)
                        continue
                    done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                    for future in done:
                        with flight_lock:
                            variant_id = in_flight.pop(future)
                        was_test = variant_id in tests_in_flight
                        tests_in_flight.discard(variant_id)
                        error = future.exception()
                        if isinstance(error, BudgetExhausted | ModelCutOff):
                            if not stop.is_set():
                                stop.set()
                                final_status = RunStatus.STOPPED
                                message = (
                                    str(error)
                                    if isinstance(error, ModelCutOff)
                                    else "LLM budget exhausted (raise it and resume)"
                                )
                            continue
                        if error is not None:
                            if not self._recoverable(error, variant_id, failures):
                                if not _candidate_fault(error):
                                    raise error
                                # Something this child made the engine choke on: its failure,
                                # not the run's.
                                self._fail_after_engine_error(variant_id, error, was_test)
                                mirror[variant_id] = self._ctx.storage.get_variant(variant_id)
                                continue
                            # A worker died on this job: start a fresh one from the last
                            # committed step (nothing recorded is redone).
                            if was_test:
                                tests_in_flight.add(variant_id)
                                submit(self._advancer.evaluate_test, variant_id, variant_id)
                            else:
                                submit(self._advancer.advance, variant_id, variant_id)
                            continue
                        finished = self._ctx.storage.get_variant(variant_id)
                        mirror[variant_id] = finished
                        if callbacks and not was_test:
                            for cb in callbacks:
                                cb(self, finished)
                except KeyboardInterrupt:
                    interrupted += 1
                    if interrupted > 1:
                        raise
                    stop.set()
                    final_status, message = RunStatus.STOPPED, "interrupted"
                    logger.warning(
                        "interrupted: finishing work in flight (interrupt again to "
                        "abort; resume later)"
                    )
        except BaseException as exc:
            final_status = (
                RunStatus.FAILED if not isinstance(exc, KeyboardInterrupt) else RunStatus.STOPPED
            )
            message = (
                f"{type(exc).__name__}: {exc}" if final_status is RunStatus.FAILED else "aborted"
            )
            stop.set()
            abort = True
            raise
        finally:
            beat_stop.set()
            self._jobs.target = None
            pool.shutdown(wait=not abort, cancel_futures=abort)
            self._release_unfinished()
            if taken_over.is_set():
                final_status, message = RunStatus.STOPPED, "taken over by another engine"
            self.last_stop_reason = message
            if self._ctx.owns_sandbox and callable(set_warm):
                set_warm(0)  # no idle sandboxed processes outlive the call
            elapsed = elapsed_before + (time.perf_counter() - started)
            try:
                self._let_go(final_status, message, elapsed)
            except Exception as exc:
                if not abort:
                    raise
                # Storage is failing too: keep the error that stopped the run; the run shows
                # "running (engine dead)" once this process has exited.
                logger.error("could not record the end of run %r: %s", self._ctx.name, exc)
            finally:
                self._driving.release()
        return self.record()

    def _claim_engine(self) -> None:
        """Become the run's engine: judge the holder read now, then compare-and-set on it.

        Raises:
            RunStateError: Another live engine holds the run, or claimed it between the read
                and the claim (nothing was changed).
        """
        record = self.record()
        holder = record.engine
        # Whatever the status: a stopped run's engine may still be finishing its work.
        if (
            holder
            and holder != self._ctx.owner
            and engine_alive(record, grace=self._ctx.config.heartbeat_grace)
        ):
            raise RunStateError(
                f"run {self._ctx.name!r} is being driven by another engine ({holder})"
            )
        if not self._ctx.storage.claim_run_engine(
            self._ctx.run_id, self._ctx.owner, expected=holder
        ):
            winner = self.record().engine
            raise RunStateError(
                f"run {self._ctx.name!r} is being driven by another engine ({winner}), which "
                "claimed it first"
            )

    def _start(
        self, generations: int | None, workers: int
    ) -> tuple[RunRecord, list[VariantRecord], int]:
        """Claim the run; then, as its engine only, heal its seed variant, store the target,
        mark it running and warm the sandbox up. If that fails, the claim is given back.

        Returns:
            The run's record, its variants and the generation target.

        Raises:
            RunStateError: The run is driven by another engine (see :meth:`_claim_engine`).
        """
        self._claim_engine()
        try:
            variants = self._ensure_seed(self.variants())
            self._jobs.check_settings()
            llm = self._ctx.llm
            if llm is not None:  # a model that does not answer refuses the start
                llm.probe(timeout=min(10.0, self._ctx.config.llm_timeout))
            record = self.record()
            target = self.target_after(generations, variants=variants, record=record)
            self._ctx.store_target(target)
            self._ctx.storage.set_run_status(
                self._ctx.run_id,
                RunStatus.RUNNING,
                event=EventSpec(
                    "run.started",
                    f"target {target} generations, {workers} worker(s)",
                    {"target": target, "workers": workers},
                ),
            )
            if self._ctx.built_llm is not None:
                self._ctx.built_llm.set_budget(
                    max_cost=self._ctx.config.max_cost, max_tokens=self._ctx.config.max_tokens
                )
                self._ctx.built_llm.reset_breaker()
            set_warm = getattr(self._ctx.sandbox, "set_warm", None)
            if self._ctx.owns_sandbox and self._ctx.config.warm_workers and callable(set_warm):
                set_warm(workers)
        except BaseException:
            with contextlib.suppress(Exception):
                self._ctx.storage.release_run_engine(self._ctx.run_id, self._ctx.owner)
            raise
        return record, variants, target

    def _let_go(self, status: RunStatus, message: str, elapsed: float) -> None:
        """Record how an :meth:`optimize` call ended if this engine still holds the run: its
        time, then its final status with the engine slot emptied (one compare-and-set). An
        engine that lost the run to another leaves both to that one."""
        if self.record().engine == self._ctx.owner:
            self._ctx.store_elapsed(elapsed)
        released = self._ctx.storage.release_run_engine(
            self._ctx.run_id,
            self._ctx.owner,
            status=status,
            event=EventSpec(_END_KINDS.get(status, f"run.{status.name.lower()}"), message),
        )
        if not released:
            logger.warning(
                "run %r is held by another engine now: its status is left to that engine",
                self._ctx.name,
            )

    def _recoverable(self, error: BaseException, variant_id: int, failures: dict[int, int]) -> bool:
        """Whether a job that raised should be retried by a fresh worker (and record it)."""
        from hyperagents.exceptions import HyperagentsError

        if not isinstance(error, Exception) or (
            isinstance(error, HyperagentsError) and not isinstance(error, SandboxError)
        ):
            return False  # interrupts, task bugs, storage and configuration errors stop the run
        failures[variant_id] = failures.get(variant_id, 0) + 1
        if failures[variant_id] > self._ctx.config.max_retries:
            return False
        logger.warning("worker failed on variant %d (%s): retrying", variant_id, error)
        with contextlib.suppress(Exception):
            self._ctx.storage.add_event(
                self._ctx.run_id,
                "worker.failed",
                f"{type(error).__name__}: {error}"[:500],
                variant_id=variant_id,
                data={"attempt": failures[variant_id]},
            )
        return True

    def _fail_after_engine_error(
        self, variant_id: int, error: BaseException, was_test: bool
    ) -> None:
        """End a variant whose processing kept raising (after retries) in a final state."""
        reason = f"engine error while processing this child: {type(error).__name__}: {error}"
        reason = reason[:500]
        logger.error("variant %d: %s", variant_id, reason)
        if was_test:
            self._tests_given_up.add(variant_id)
            self._ctx.event("champion.test_failed", reason, variant_id=variant_id)
            return
        variant = self._ctx.storage.get_variant(variant_id)
        if variant.state.is_terminal:
            return
        self._ctx.storage.set_variant_state(
            variant_id,
            VariantState.FAILED,
            expected=variant.state,
            reason=reason,
            release=True,
            event=EventSpec("variant.failed", reason),
        )

    def _release_unfinished(self) -> None:
        """Give up unfinished work so any engine (this process included) can resume it now."""
        with contextlib.suppress(Exception):  # best effort: heartbeats expire anyway
            for v in self._ctx.storage.list_variants(
                self._ctx.run_id, states=[VariantState.RUNNING, VariantState.EVALUATING]
            ):
                if v.owner == self._ctx.owner:
                    self._ctx.storage.claim_variant(v.id, "", expected_owner=self._ctx.owner)

    def _improve_and_tell(self, job: Job) -> None:
        self._advancer.advance(job.variant_id, job=job)


def _check_llm(config: RunConfig) -> None:
    """Refuse a model the run could not use: a bad spec, a missing key or script file, a
    server that does not answer (a replay calls no model)."""
    if config.llm is not None and config.replay_of is None:
        probe_llm(config.llm, timeout=min(10.0, config.llm_timeout))


def _check_generations(generations: object) -> None:
    """Raises: ConfigError: ``generations`` is neither None nor an integer >= 0."""
    if generations is not None and (
        not isinstance(generations, int) or isinstance(generations, bool) or generations < 0
    ):
        raise ConfigError(f"generations must be an integer >= 0, got {generations!r}")


def _candidate_fault(error: BaseException) -> bool:
    """Whether an exception the engine kept meeting while processing one child is that
    child's doing (plain Python errors on its data: recursion, values, encodings, overflow),
    rather than the run's (interrupts, storage, configuration, the task, the sandbox)."""
    from hyperagents.exceptions import HyperagentsError

    return isinstance(error, Exception) and not isinstance(error, HyperagentsError)


def _portable_spec(spec: str) -> str:
    """File specs are stored with an absolute path so the run resumes from any directory."""
    path, sep, cls = spec.strip().rpartition(":")
    if sep and path.endswith(".py"):
        return f"{Path(path).expanduser().resolve()}:{cls}"
    return spec.strip()

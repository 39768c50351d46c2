"""The run context: what every part of a run shares, and nothing more.

Storage and the run's identity, the task, the sandbox, the config, the caches of what never
changes once recorded (programs, task instances, the train subset, finished variants), events
and warnings, sandbox limits, seeds, the run's language model, the run state stored with the
record (target, time spent, steering) and the seed's meta files (through
:mod:`hyperagents.runs._meta_files`). The parts of a run (jobs, stages, gate, engine) each get
the one context; none holds run state of its own that another part needs.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from hyperagents.exceptions import RunStateError, SandboxError
from hyperagents.program import Program
from hyperagents.runs._config import RunConfig, parse_mode
from hyperagents.runs._crew import worker_slot
from hyperagents.runs._llm import RunLLM
from hyperagents.runs._meta_files import freeze_meta
from hyperagents.runs._owner import new_owner_token
from hyperagents.sandbox import Limits, RayOptions, Sandbox, get_sandbox, task_locations
from hyperagents.storages import (
    BaseStorage,
    EvaluationRecord,
    RunRecord,
    VariantRecord,
    VariantState,
)
from hyperagents.tasks import Instance, Split, Task

__all__ = [
    "BudgetExhausted",
    "ModelCutOff",
    "RunContext",
    "derive_seed",
    "own_sandbox",
    "sandbox_for",
]

#: Where :meth:`RunContext.warn` logs (faces that print the warnings themselves silence it).
warnings_logger = logging.getLogger("hyperagents.run_warnings")

logger = logging.getLogger("hyperagents")

_T = TypeVar("_T")


class ModelCutOff(RunStateError):
    """A job stopped because the run's model failed too many calls in a row (the breaker is
    open): it is left unfinished, to be redone on resume."""


class BudgetExhausted(RunStateError):
    """The run's LLM budget ran out during a job: the job is left unfinished (resumable)."""


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from the run seed and labels (stable across processes)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def sandbox_for(config: RunConfig, task: Task) -> Sandbox:
    """The sandbox a run's config asks for (raises ConfigError for one that cannot work)."""
    return get_sandbox(
        config.sandbox,
        preload=tuple(task.sandbox_preload),
        hide=task_locations(task),  # the task's own files: agents never see them
        memory_mb=config.memory_mb,
        ray=RayOptions(
            address=config.ray_address,
            inner=config.ray_inner,
            queue_timeout=config.ray_queue_timeout,
        ),
    )


@contextmanager
def own_sandbox(config: RunConfig, task: Task) -> Iterator[Sandbox]:
    """A sandbox of its own for work outside a run (a try, a task's check), closed afterwards
    (raises ConfigError for one that cannot work)."""
    sandbox = sandbox_for(config, task)
    try:
        yield sandbox
    finally:
        close = getattr(sandbox, "close", None)
        if callable(close):
            close()


class RunContext:
    """The narrow shared state of one run object.

    Args:
        storage: The storage holding the run.
        record: The run's record (identity, mode, seed, config).
        task: The task object.
        sandbox: Override the sandbox (default: built from ``config.sandbox``; then the run
            owns it and stops its warm processes when a drive ends).

    Attributes:
        storage: The storage holding the run.
        run_id: The run's storage id.
        name: The run's unique name.
        task: The task object.
        mode: The run's mode.
        seed: The run's random seed.
        config: The run's configuration.
        seed_program_id: The seed program's id.
        sandbox: Where agent code runs.
        owns_sandbox: Whether the sandbox was built here (not given by the caller).
        owner: The token this run object claims work with.
        lock: Guards the caches and the asking of new generations (re-entrant).
    """

    def __init__(
        self,
        *,
        storage: BaseStorage,
        record: RunRecord,
        task: Task,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.storage = storage
        self.run_id = record.id
        self.name = record.name
        self.task = task
        self.mode = parse_mode(record.mode)
        self.seed = record.seed
        self.config = RunConfig.parse(dict(record.config))
        self.seed_program_id = record.seed_program_id
        self.owns_sandbox = sandbox is None
        self.sandbox = sandbox or sandbox_for(self.config, task)
        self.owner = new_owner_token()
        self.lock = threading.RLock()
        self._programs: dict[str, Program] = {}
        self._instances: dict[Split, Sequence[Instance]] = {}
        self._subset: tuple[str, ...] | None = None
        self._terminal: dict[int, VariantRecord] = {}
        # The evaluations of the last parents read (see parent_evaluations).
        self._parent_evaluations: dict[int, list[EvaluationRecord]] = {}
        self._llm: RunLLM | None = None
        self._llm_lock = threading.Lock()
        self._warned: set[str] | None = None  # run.warning messages recorded (see warn)

    # -- storage reads -------------------------------------------------------------------------
    def record(self) -> RunRecord:
        """A fresh snapshot of the run's record."""
        return self.storage.get_run(self.run_id)

    def variants(self, states: Iterable[VariantState] | None = None) -> list[VariantRecord]:
        """The run's variants, ascending generation."""
        return self.storage.list_variants(self.run_id, states=states)

    def variant(self, variant_id: int) -> VariantRecord:
        """A fresh snapshot of one variant."""
        return self.storage.get_variant(variant_id)

    # -- caches of what never changes --------------------------------------------------------
    def program(self, program_id: str) -> Program:
        """A stored program (cached: programs are immutable)."""
        program = self._programs.get(program_id)
        if program is None:
            program = self.storage.get_program(program_id)
            self.remember_program(program_id, program)
        return program

    def remember_program(self, program_id: str, program: Program) -> None:
        """Cache a program this run object has just stored (so it is not read back)."""
        with self.lock:
            if len(self._programs) > 256:
                self._programs.clear()
            self._programs[program_id] = program

    def seed_program(self) -> Program:
        """The run's seed program."""
        return self.program(self.seed_program_id)

    def terminal(self, variant_id: int) -> VariantRecord:
        """A variant known to be terminal (a parent), cached: what selection and reports read
        of it (program, non-test scores, meta info) never changes any more."""
        cached = self._terminal.get(variant_id)
        if cached is None:
            cached = self.storage.get_variant(variant_id)
            self.remember_terminal(cached)
        return cached

    def remember_terminal(self, variant: VariantRecord) -> None:
        """Cache a terminal variant just read from storage (see :meth:`terminal`)."""
        if variant.state.is_terminal:
            with self.lock:
                if len(self._terminal) > 4096:
                    self._terminal.clear()
                self._terminal[variant.id] = variant

    def parent_evaluations(self, variant_id: int) -> list[EvaluationRecord]:
        """The evaluations of a parent, as they are stored now. A child's report and its
        instance limits both read them; the last few parents' are kept, so each is read once
        (an evaluation added later, a champion's test, is not seen by those readers)."""
        with self.lock:
            cached = self._parent_evaluations.get(variant_id)
        if cached is None:
            cached = self.storage.list_evaluations(variant_id)
            with self.lock:
                if len(self._parent_evaluations) >= 8:
                    self._parent_evaluations.pop(next(iter(self._parent_evaluations)))
                self._parent_evaluations[variant_id] = cached
        return cached

    def instances(self, split: Split) -> Sequence[Instance]:
        """The task's instances of ``split`` (cached)."""
        cached = self._instances.get(split)
        if cached is None:
            cached = list(self.task.instances(split))
            self._instances[split] = cached
        return cached

    def subset(self) -> tuple[str, ...]:
        """The ids of the train instances every child is first evaluated on (seeded)."""
        if self._subset is None:
            ids = [inst.id for inst in self.instances(Split.TRAIN)]
            if self.config.subset_size == "auto":  # resolved by the run's front (Run)
                raise RunStateError("subset_size 'auto' is resolved when the run is created")
            size = min(self.config.subset_size, len(ids))
            rng = random.Random(self.derive_seed("subset"))
            chosen = set(rng.sample(ids, size))
            self._subset = tuple(i for i in ids if i in chosen)
        return self._subset

    # -- seeds, limits, horizons -------------------------------------------------------------
    def derive_seed(self, *parts: object) -> int:
        """A seed derived from the run's seed and ``parts`` (see :func:`derive_seed`)."""
        return derive_seed(self.seed, *parts)

    def limits(self, wall: float) -> Limits:
        """Sandbox limits with a wall-clock limit of ``wall`` seconds."""
        return Limits(wall_time=wall, memory_mb=self.config.memory_mb)

    def horizon(self, generation: int) -> int:
        """The last generation that generation ``generation`` may see: the ones settled
        before it starts (``generation - parallel_generations``, at least the seed)."""
        return max(0, generation - self.config.parallel_generations)

    # -- the run state ------------------------------------------------------------------------
    def target_generations(self, record: RunRecord | None = None) -> int | None:
        """The stored generation target (None: not set yet)."""
        return (record or self.record()).target_generations

    def store_target(self, target: int) -> None:
        """Store the generation target."""
        self.storage.set_target_generations(self.run_id, target)

    def elapsed_seconds(self, record: RunRecord) -> float:
        """Seconds engines have spent on the run, as ``record`` says."""
        return record.elapsed_seconds

    def store_elapsed(self, seconds: float) -> None:
        """Store the seconds engines have spent on the run."""
        self.storage.set_elapsed_seconds(self.run_id, seconds)

    def take_steering(
        self, record: RunRecord | None = None
    ) -> tuple[list[int], tuple[int, str] | None]:
        """What people said about the next parent: the banned lineages, and a pinned parent
        with who pinned it. The pin is used up: cleared, compare-and-set, as it is read; one
        that another engine or an earlier call cleared first is not used again.

        Args:
            record: The run's record as just read (default: read now).
        """
        record = record if record is not None else self.record()
        pin = record.pinned_parent
        if pin is None or not self.storage.unpin_parent(self.run_id, expected=pin):
            return sorted(record.banned), None
        by = record.pinned_by if record.pinned_by is not None else "a person"
        return sorted(record.banned), (pin, by)

    # -- meta files --------------------------------------------------------------------------
    def with_seed_meta(self, program: Program) -> Program:
        """``program`` with the seed's meta files (``frozen-meta`` mode)."""
        return freeze_meta(program, self.seed_program(), self.task)

    def stamp(self) -> dict[str, Any]:
        """Who runs a step now, as storage records it: ``engine`` (this run object's owner
        token) and ``worker`` (the engine's pool slot; None outside the pool)."""
        return {"engine": self.owner, "worker": worker_slot()}

    # -- events and warnings -------------------------------------------------------------------
    def event(
        self, kind: str, message: str = "", variant_id: int | None = None, **data: Any
    ) -> None:
        """Record an event of the run."""
        self.storage.add_event(self.run_id, kind, message, variant_id=variant_id, data=data or None)

    def warnings(self) -> list[str]:
        """What the run warned about (``run.warning`` events), each message once."""
        seen: dict[str, None] = {}
        for event in self.storage.list_events(self.run_id, kinds=["run.warning"]):
            seen.setdefault(event.message, None)
        return list(seen)

    def warn(self, message: str) -> None:
        """Record a ``run.warning`` event (once per message per run) and log it."""
        with self.lock:
            if self._warned is None:
                self._warned = set(self.warnings())
            if message in self._warned:
                return
            self._warned.add(message)
            warnings_logger.warning("run %r: %s", self.name, message)
            self.event("run.warning", message)

    # -- sandbox retries -----------------------------------------------------------------------
    def retry(self, fn: Callable[[], _T], what: str) -> _T:
        """``fn()``, tried again (``max_retries`` times, with backoff) when the sandbox broke.

        Raises:
            SandboxError: The sandbox broke on every attempt.
        """
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                return fn()
            except SandboxError as exc:
                if attempt + 1 >= attempts:
                    raise
                logger.warning("sandbox error while %s (attempt %d): %s", what, attempt + 1, exc)
                self.event("sandbox.retry", f"{what}: {exc}")
                time.sleep(min(2.0**attempt * 0.2, 5.0))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the language model --------------------------------------------------------------------
    @property
    def llm(self) -> RunLLM | None:
        """The run's language model (None when the run has none), built on first use.

        Raises:
            LLMConfigError: The configured spec is invalid.
            RunNotFoundError: ``replay_of`` names a run that does not exist.
        """
        cfg = self.config
        if cfg.llm is None and cfg.replay_of is None:
            return None
        with self._llm_lock:
            if self._llm is None:
                replay = None
                if cfg.replay_of is not None:
                    replay = self.storage.get_run_by_name(cfg.replay_of).id
                self._llm = RunLLM(
                    self.storage,
                    self.run_id,
                    spec=cfg.llm,
                    replay_of=replay,
                    seed=self.derive_seed("llm"),
                    retries=cfg.llm_retries,
                    timeout=cfg.llm_timeout,
                    max_cost=cfg.max_cost,
                    max_tokens=cfg.max_tokens,
                    cache=cfg.llm_cache,
                    prices=cfg.llm_prices,
                    failure_limit=cfg.llm_failure_limit,
                )
            return self._llm

    @property
    def built_llm(self) -> RunLLM | None:
        """The run's language model if it has been built (never builds it)."""
        return self._llm

    def llm_handler(self, variant_id: int, generation: int, purpose: str) -> Any:
        """A fresh LLM handler for one job attempt (``None`` when the run has no LLM)."""
        llm = self.llm
        if llm is None:
            return None
        # The scope names the job by what is stable across runs (its generation and purpose),
        # so a replay answers each job from its own recorded calls, whatever the timing.
        return llm.handler(variant_id=variant_id, purpose=purpose, scope=f"g{generation}/{purpose}")

    def check_budget(self, variant_id: int) -> None:
        """Stop the job (nothing of it recorded) when one of its LLM requests was refused
        because the budget is spent, or cut because the model keeps failing.

        Raises:
            BudgetExhausted: The budget is spent (the job is left unfinished, resumable).
            ModelCutOff: The model's breaker is open (the job is left unfinished).
        """
        if self._llm is None:
            return
        # Both flags are read (each query pops its own).
        refused, cut = self._llm.was_refused(variant_id), self._llm.was_cut(variant_id)
        if refused:
            raise BudgetExhausted("the run's LLM budget is spent")
        if cut:
            raise ModelCutOff(self._llm.broken or "the run's model keeps failing")

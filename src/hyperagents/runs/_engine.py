"""The engine: drives a run to its generation target, and is the only part that finishes
unfinished work.

One drive (:meth:`Engine.optimize`): claim the run (the lease), heal and start it, then loop —
check the stop conditions, hand champions' test evaluations and new generations to a pool of
workers as far as ``workers`` and ``parallel_generations`` allow, take over work whose owner is
gone, collect what finished (a worker that died is replaced; a child the engine keeps choking
on fails alone) — and let go, recording how the drive ended. Heartbeats keep the claim alive.

A drive that *joins* the run (``join=True``) works beside the engine leading it, in a crew
(see :mod:`hyperagents.runs._crew`): it reads the archive again each turn (others add to it),
takes new generations and orphaned work by compare-and-set, and ends when every generation up
to the run's target has settled, whoever did it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from hyperagents.archive import ArchiveView
from hyperagents.exceptions import (
    ConfigError,
    DuplicateError,
    RunStateError,
)
from hyperagents.runs._advance import Advancer
from hyperagents.runs._context import BudgetExhausted, ModelCutOff, RunContext
from hyperagents.runs._create import create_seed_variant
from hyperagents.runs._crew import check_joinable, slot_initializer
from hyperagents.runs._failures import Failures, candidate_fault
from hyperagents.runs._interrupts import DeferredInterrupts, wait_awake
from hyperagents.runs._jobs import Job, Jobs
from hyperagents.runs._lease import Heartbeat, Lease
from hyperagents.storages import EventSpec, RunRecord, RunStatus, VariantRecord, VariantState

__all__ = ["Engine"]

logger = logging.getLogger("hyperagents")

#: Called with a variant that reached a final state during a drive.
Notify = Callable[[VariantRecord], None]

_BUDGET_SPENT = "LLM budget exhausted (raise it and resume)"

_GENERATION = attrgetter("generation")

#: Seconds a crew member waits for others' work before it reads the archive again.
_CREW_POLL = 0.1


@dataclass
class _Drive:
    """The state of one :meth:`Engine.optimize` call."""

    target: int
    workers: int
    timeout: float | None
    elapsed_before: float
    pool: ThreadPoolExecutor
    notify: Sequence[Notify]
    #: The engine's mirror of the archive: loaded once, then updated from the engine's own
    #: asks and finished work, so a generation costs O(1) storage reads whatever the size.
    mirror: dict[int, VariantRecord]
    started: float = field(default_factory=time.perf_counter)
    deadline: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    taken_over: threading.Event = field(default_factory=threading.Event)
    in_flight: dict[Future[Any], int] = field(default_factory=dict)
    flight_lock: threading.Lock = field(default_factory=threading.Lock)
    tests_in_flight: set[int] = field(default_factory=set)
    #: Stopped by a budget (time, evaluations) or the timeout: the champions the work in
    #: flight settles still get their test, each handed out once (their ids, once handed out).
    tests_on_stop: set[int] | None = None
    failures: dict[int, int] = field(default_factory=dict)
    status: RunStatus = RunStatus.COMPLETE
    message: str = "target reached"
    interrupted: int = 0
    abort: bool = False
    #: Other engines work on the run too: the mirror is read again from storage each turn.
    crew: bool = False
    #: Interrupts land only while the drive waits (see :class:`DeferredInterrupts`).
    interrupts: DeferredInterrupts = field(default_factory=DeferredInterrupts)

    def current(self) -> list[VariantRecord]:
        """The mirror, ascending generation."""
        return sorted(self.mirror.values(), key=_GENERATION)

    def submit(self, fn: Callable[..., Any], variant_id: int, *args: Any) -> None:
        """Hand work on ``variant_id`` to the pool."""
        future = self.pool.submit(fn, *args)
        with self.flight_lock:
            self.in_flight[future] = variant_id

    def flying(self) -> list[int]:
        """The variants in flight now."""
        with self.flight_lock:
            return list(self.in_flight.values())

    def spent(self) -> float:
        """Seconds spent on the run, this drive included."""
        return self.elapsed_before + time.perf_counter() - self.started

    def lost(self) -> None:
        """Another engine took the run over: start nothing more."""
        self.taken_over.set()
        self.stop.set()

    def halt(self, status: RunStatus, message: str) -> None:
        """Start nothing more, ending with ``status`` (the first reason to stop wins)."""
        if not self.stop.is_set():
            self.stop.set()
            self.status, self.message = status, message


def _pool(workers: int) -> ThreadPoolExecutor:
    """A drive's pool of workers, each thread with its slot (0, 1, …: recorded with the work)."""
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="hyperagents-worker", initializer=slot_initializer()
    )


class Engine:
    """Drives a run: the lease, heartbeats, scheduling and stop conditions.

    Args:
        ctx: The run context.
        jobs: The ask side.
        advancer: The advance side.
        lease: The run's lease.

    Attributes:
        last_stop_reason: Why the last :meth:`optimize` call ended ("target reached", …).
    """

    def __init__(self, ctx: RunContext, *, jobs: Jobs, advancer: Advancer, lease: Lease) -> None:
        self._ctx, self._jobs, self._advancer, self._lease = ctx, jobs, advancer, lease
        #: Held while :meth:`optimize` drives the run (one call at a time per object).
        self._driving = threading.Lock()
        self._failures = Failures(ctx)
        self.last_stop_reason: str | None = None

    # -- finishing unfinished work -------------------------------------------------------------
    def ensure_seed(self, variants: Sequence[VariantRecord]) -> list[VariantRecord]:
        """Create the seed variant if a crash inside :meth:`Run.create` left the run without
        it; return the run's variants."""
        if any(v.generation == 0 for v in variants):
            return list(variants)
        ctx = self._ctx
        with contextlib.suppress(DuplicateError):  # another engine did it first
            create_seed_variant(
                ctx.storage, ctx.run_id, ctx.seed_program_id, "seed program (recreated)"
            )
        return ctx.variants()

    def finish_unfinished(self) -> list[VariantRecord]:
        """Finish the earlier work the next generation's parent selection depends on, if
        nobody else holds it (the seed of a fresh run, work left by a dead engine).

        Returns:
            The run's variants afterwards (the next generation may still have to wait for
            work a live engine holds).
        """
        ctx = self._ctx
        variants = self.ensure_seed(ctx.variants())
        generation = ArchiveView.of(variants).last_generation() + 1
        if self._jobs.ready_for(variants, generation):
            return variants
        horizon = ctx.horizon(generation)
        blockers = [v for v in variants if v.generation <= horizon]
        for variant_id in self._lease.claim_orphans(blockers):
            self._advancer.advance(variant_id)
        return ctx.variants()

    def target_after(
        self,
        generations: int | None,
        *,
        variants: Sequence[VariantRecord] | None = None,
        record: RunRecord | None = None,
    ) -> int:
        """The generation target :meth:`optimize` would pursue for ``generations`` (see
        :meth:`Run.target_after`).

        Raises:
            ConfigError: ``generations`` is negative.
        """
        if generations is not None and generations < 0:
            raise ConfigError("generations must be >= 0")
        variants = self._ctx.variants() if variants is None else variants
        stored = self._ctx.target_generations(record)
        last = ArchiveView.of(variants).last_generation()
        base = last if stored is None else max(last, stored)
        return base if generations is None else base + generations

    # -- one drive -----------------------------------------------------------------------------
    def optimize(
        self,
        generations: int | None,
        *,
        timeout: float | None,
        workers: int,
        notify: Sequence[Notify] = (),
        join: bool = False,
    ) -> RunRecord:
        """Drive the run (see :meth:`Run.optimize`).

        Raises:
            ConfigError: Bad ``workers`` or ``generations`` (a member joining a run led by
                another engine goes on to the run's target: it takes no ``generations``).
            RunStateError: Another live engine drives the run, or claimed it first, or this
                object drives it already, or ``join`` on a storage that cannot take several
                writers (the run is left exactly as it was).
        """
        if workers < 1:
            raise ConfigError("workers must be >= 1")
        if generations is not None and generations < 0:
            raise ConfigError("generations must be >= 0")
        if not self._driving.acquire(blocking=False):  # its owner token is this object's
            raise RunStateError(f"this Run object is driving {self._ctx.name!r} already")
        try:
            record, variants, target = self._start(generations, workers, join)
        except BaseException:
            self._driving.release()
            raise
        drive = _Drive(
            target=target,
            workers=workers,
            timeout=timeout,
            elapsed_before=self._ctx.elapsed_seconds(record),
            pool=_pool(workers),
            notify=notify,
            mirror={v.id: v for v in variants},
            crew=join,
        )
        drive.deadline = None if timeout is None else time.monotonic() + timeout
        self._jobs.target = target
        heartbeat = Heartbeat(
            self._lease, self._ctx, in_flight=drive.flying, spent=drive.spent, on_lost=drive.lost
        )
        heartbeat.start()
        try:
            drive.interrupts.install()
            self._drive(drive)
        except BaseException as exc:
            failed = not isinstance(exc, KeyboardInterrupt)
            drive.status = RunStatus.FAILED if failed else RunStatus.STOPPED
            drive.message = f"{type(exc).__name__}: {exc}" if failed else "aborted"
            drive.stop.set()
            drive.abort = True
            raise
        finally:
            drive.interrupts.restore()
            heartbeat.stop()
            self._wind_down(drive)
        return self._ctx.record()

    def _start(
        self, generations: int | None, workers: int, join: bool
    ) -> tuple[RunRecord, list[VariantRecord], int]:
        """Claim the run; then, as its engine only, heal its seed variant, store the target,
        mark it running and warm the sandbox up. If that fails, the claim is given back.
        Joining a run another live engine leads, start as a member instead (:meth:`_join`).

        Returns:
            The run's record, its variants and the generation target.

        Raises:
            RunStateError: The run is driven by another engine (see :meth:`Lease.claim_engine`).
        """
        ctx = self._ctx
        lease = self._lease
        lease.joined = join
        if join:
            check_joinable(ctx)
            if not lease.try_lead(empty=True):
                return self._join(generations, workers)
        else:
            lease.claim_engine()
        try:
            variants = self.ensure_seed(ctx.variants())
            self._jobs.check_settings()
            llm = ctx.llm
            if llm is not None:  # a model that does not answer refuses the start
                llm.probe(timeout=min(10.0, ctx.config.llm_timeout))
            record = ctx.record()
            target = self.target_after(generations, variants=variants, record=record)
            ctx.store_target(target)
            ctx.storage.set_run_status(
                ctx.run_id,
                RunStatus.RUNNING,
                event=EventSpec(
                    "run.started",
                    f"target {target} generations, {workers} worker(s)",
                    {"target": target, "workers": workers},
                ),
            )
            if llm is not None:
                llm.set_budget(max_cost=ctx.config.max_cost, max_tokens=ctx.config.max_tokens)
                llm.reset_breaker()
            lease.crew.register(workers)
            self._warm_up(workers)
        except BaseException:
            lease.give_back()
            raise
        return record, variants, target

    def _join(
        self, generations: int | None, workers: int
    ) -> tuple[RunRecord, list[VariantRecord], int]:
        """Start as a member of the crew of a run another live engine leads: go on to the
        run's stored target, sharing its work.

        Raises:
            ConfigError: ``generations`` is given (the lead sets the target).
        """
        ctx = self._ctx
        if generations is not None:
            raise ConfigError(
                f"run {ctx.name!r} is led by another engine: a joining engine goes on to the "
                "run's target (give generations to the engine that leads it)"
            )
        variants = self.ensure_seed(ctx.variants())
        self._jobs.check_settings()
        llm = ctx.llm
        if llm is not None:
            llm.probe(timeout=min(10.0, ctx.config.llm_timeout))
        record = ctx.record()
        target = self.target_after(None, variants=variants, record=record)
        self._lease.crew.register(workers)
        try:
            ctx.event(
                "engine.joined", f"an engine joined with {workers} worker(s)", workers=workers
            )
            self._warm_up(workers)
        except BaseException:
            self._lease.crew.leave()
            raise
        return record, variants, target

    def _warm_up(self, workers: int) -> None:
        """Start a sandbox this run owns warm: one fork server per worker, knowing the seed
        program's sources (children with the same files do not compile them again)."""
        ctx = self._ctx
        set_warm = getattr(ctx.sandbox, "set_warm", None)
        if not (ctx.owns_sandbox and ctx.config.warm_workers and callable(set_warm)):
            return
        set_known = getattr(ctx.sandbox, "set_known_sources", None)
        if callable(set_known):
            set_known(ctx.seed_program().python_sources())
        set_warm(workers)

    def _drive(self, drive: _Drive) -> None:
        """The drive's loop, until the target is reached or a stop leaves nothing in flight."""
        for variant_id in self._lease.claim_orphans(drive.current()):
            drive.submit(self._advancer.advance, variant_id, variant_id)
        while True:
            try:
                drive.interrupts.raise_pending()
                if not self._step(drive):
                    return
            except KeyboardInterrupt:
                drive.interrupted += 1
                if drive.interrupted > 1:
                    raise
                drive.stop.set()
                drive.status, drive.message = RunStatus.STOPPED, "interrupted"
                logger.warning(
                    "interrupted: finishing work in flight (interrupt again to abort; resume later)"
                )

    def _step(self, drive: _Drive) -> bool:
        """One turn of the loop: stop conditions, new work, then wait for some to finish.

        Returns:
            False when the drive is over.
        """
        if drive.crew:  # other engines add to the archive: read it again
            self._reread(drive)
        else:  # people approve or reject waiting children from other processes
            for waiting in [v.id for v in drive.mirror.values() if v.state is VariantState.PENDING]:
                drive.mirror[waiting] = self._ctx.variant(waiting)
        view = ArchiveView.of(drive.current())
        record = self._check_stops(drive, view)
        # Once stopping, due test evaluations wait for a resume (a test refused for budget
        # would otherwise be handed out again and again), but for a budget's or the timeout's
        # stop: test scores are not a search cost, and each is handed out once more; a crew's
        # lead runs them.
        if self._lease.leading and (not drive.stop.is_set() or drive.tests_on_stop is not None):
            self._schedule_tests(drive, view)
        last = self._schedule_generations(drive, list(view), record)
        if not drive.in_flight:
            if drive.stop.is_set() or (last >= drive.target and self._settled(drive)):
                return False
            self._wait_for_others(drive)
            return True
        with drive.interrupts.allowed():  # the one place an interrupt lands at once
            done = wait_awake(list(drive.in_flight))
        for future in done:
            self._collect(drive, future)
        return True

    def _reread(self, drive: _Drive) -> None:
        """Read the archive and the run's target again (a crew's members add to both)."""
        drive.mirror.clear()
        drive.mirror.update((v.id, v) for v in self._ctx.variants())
        stored = self._ctx.target_generations()
        if stored is not None and stored > drive.target:
            drive.target = self._jobs.target = stored

    def _settled(self, drive: _Drive) -> bool:
        """Whether every generation up to the target has settled (whoever worked on it)."""
        return all(
            v.state.is_terminal for v in drive.mirror.values() if v.generation <= drive.target
        )

    def _check_stops(self, drive: _Drive, view: ArchiveView) -> RunRecord:
        """Stop on request, at the timeout, or when a budget or the model says so.

        Returns:
            The run's record, as read for this.
        """
        ctx = self._ctx
        record = ctx.record()
        if record.status is RunStatus.STOPPED:
            drive.stop.set()
            drive.status, drive.message = RunStatus.STOPPED, "stopped by request"
        spent = self._budget_spent(drive, view)
        if drive.deadline is not None and time.monotonic() >= drive.deadline:
            spent = f"timeout of {drive.timeout:g} s"
        if spent is not None and not drive.stop.is_set():
            drive.halt(RunStatus.STOPPED, spent)
            drive.tests_on_stop = set()
        reached = self._target_reached(view)
        if reached is not None and not drive.stop.is_set():
            # No new generation: the work in flight and the champion's test still finish.
            drive.target = self._jobs.target = min(drive.target, view.last_generation())
            drive.message = reached
        llm = ctx.built_llm
        if llm is not None and not drive.stop.is_set():
            if llm.budget_exhausted.is_set():
                drive.halt(RunStatus.STOPPED, _BUDGET_SPENT)
            elif llm.broken is not None:
                drive.halt(RunStatus.STOPPED, llm.broken)
            elif llm.diverged.is_set():
                drive.halt(RunStatus.STOPPED, f"replay diverged from its record: {llm.divergence}")
        return record

    def _target_reached(self, view: ArchiveView) -> str | None:
        """Why the run is done because its champion reached the task's target score (None:
        it has not, or the task has no target)."""
        target = self._ctx.task.target_score
        champion = view.champion() if target is not None else None
        val = None if champion is None else champion.scores.get("val")
        if target is None or val is None or val < target - 1e-12:
            return None
        return f"the champion's val score {val:.6g} reached the task's target {target:.6g}"

    def _budget_spent(self, drive: _Drive, view: ArchiveView) -> str | None:
        """Why the run's time or evaluation budget forbids new work (None: it does not)."""
        cfg = self._ctx.config
        if cfg.max_seconds is not None and drive.spent() >= cfg.max_seconds:
            return (
                f"time budget of {cfg.max_seconds:g} s spent (raise it with resume --max-seconds)"
            )
        if cfg.max_evaluations is not None and view.evaluations() >= cfg.max_evaluations:
            return (
                f"evaluation budget of {cfg.max_evaluations} reached "
                "(raise it with resume --max-evaluations)"
            )
        return None

    def _schedule_tests(self, drive: _Drive, view: ArchiveView) -> None:
        """Hand out the test evaluations of champions that lack one."""
        once = drive.tests_on_stop if drive.stop.is_set() else None
        for v in view.champions_as_settled():
            if "test" in v.scores or v.id in self._failures.tests_given_up:
                continue
            if once is not None and v.id in once:
                continue
            if v.id not in drive.tests_in_flight and len(drive.in_flight) < drive.workers + 1:
                drive.tests_in_flight.add(v.id)
                drive.submit(self._advancer.evaluate_test, v.id, v.id)
                if once is not None:
                    once.add(v.id)

    def _schedule_generations(
        self, drive: _Drive, variants: list[VariantRecord], record: RunRecord | None
    ) -> int:
        """Ask for new generations while workers are free and selection may go on.

        Args:
            drive: The drive.
            variants: The mirror as it is now, ascending generation.
            record: The run's record as this step read it (for the first ask's steering).

        Returns:
            The last generation asked for.
        """
        last = ArchiveView.of(variants).last_generation()
        while (
            not drive.stop.is_set()
            and last < drive.target
            and len(drive.in_flight) < drive.workers
            and self._jobs.ready_for(variants, last + 1)
        ):
            try:
                job, created = self._jobs.ask(variants, record=record)
                record = None  # a later ask this step reads the steering afresh
            except DuplicateError:  # another engine took this generation: a crew now
                drive.crew = True
                self._reread(drive)
                return ArchiveView.of(drive.current()).last_generation()
            drive.mirror[created.id] = created
            drive.submit(self._improve_and_tell, job.variant_id, job, created)
            variants = drive.current()
            last = job.generation
        return last

    def _improve_and_tell(self, job: Job, created: VariantRecord) -> None:
        self._advancer.advance(job.variant_id, job=job, record=created)

    def _wait_for_others(self, drive: _Drive) -> None:
        """Work this drive depends on is held by another live engine: wait for it to finish
        or for its heartbeat to go stale, then take it over."""
        pause = _CREW_POLL if drive.crew else 1.0
        with drive.interrupts.allowed():
            drive.stop.wait(min(pause, self._ctx.config.heartbeat_interval))
        drive.mirror.clear()
        drive.mirror.update((v.id, v) for v in self._ctx.variants())
        for variant_id in self._lease.claim_orphans(drive.current()):
            drive.submit(self._advancer.advance, variant_id, variant_id)

    def _collect(self, drive: _Drive, future: Future[Any]) -> None:
        """Take in one finished piece of work: record it, or deal with its error."""
        with drive.flight_lock:
            variant_id = drive.in_flight.pop(future)
        was_test = variant_id in drive.tests_in_flight
        drive.tests_in_flight.discard(variant_id)
        error = future.exception()
        if isinstance(error, BudgetExhausted | ModelCutOff):
            message = str(error) if isinstance(error, ModelCutOff) else _BUDGET_SPENT
            drive.halt(RunStatus.STOPPED, message)
            return
        if error is not None:
            self._failed(drive, variant_id, error, was_test)
            return
        finished = self._ctx.variant(variant_id)
        self._ctx.remember_terminal(finished)  # a parent to be: not read again to build jobs
        drive.mirror[variant_id] = finished
        if not was_test:
            for notify in drive.notify:
                notify(finished)

    def _failed(self, drive: _Drive, variant_id: int, error: BaseException, was_test: bool) -> None:
        """Work on ``variant_id`` raised: retry it with a fresh worker, fail the child alone
        when it is its own doing, or stop the run.

        Raises:
            BaseException: ``error``, when it is the run's failure.
        """
        if not self._failures.recoverable(error, variant_id, drive.failures):
            if not candidate_fault(error):
                raise error
            # Something this child made the engine choke on: its failure, not the run's.
            self._failures.fail_after_engine_error(variant_id, error, was_test)
            drive.mirror[variant_id] = self._ctx.variant(variant_id)
            return
        # A worker died on this job: start a fresh one from the last committed step (nothing
        # recorded is redone).
        if was_test:
            drive.tests_in_flight.add(variant_id)
            drive.submit(self._advancer.evaluate_test, variant_id, variant_id)
        else:
            drive.submit(self._advancer.advance, variant_id, variant_id)

    def _wind_down(self, drive: _Drive) -> None:
        """End a drive: stop the pool, let go of unfinished work and of the run, recording
        how the drive ended (an aborted drive keeps its own error if storage fails too)."""
        ctx = self._ctx
        self._jobs.target = None
        drive.pool.shutdown(wait=not drive.abort, cancel_futures=drive.abort)
        self._lease.release_unfinished()
        if drive.taken_over.is_set():
            drive.status, drive.message = RunStatus.STOPPED, "taken over by another engine"
        self.last_stop_reason = drive.message
        set_warm = getattr(ctx.sandbox, "set_warm", None)
        if ctx.owns_sandbox and callable(set_warm):
            set_warm(0)  # no idle sandboxed processes outlive the call
        try:
            self._lease.let_go(drive.status, drive.message, drive.spent())
        except Exception as exc:
            if not drive.abort:
                raise
            # Storage is failing too: keep the error that stopped the run; the run shows
            # "running (engine dead)" once this process has exited.
            logger.error("could not record the end of run %r: %s", ctx.name, exc)
        finally:
            self._driving.release()

"""The application service: the one layer every face (the command line, the dashboard, a
Python program) calls to start, resume and replay runs, to drive them in the background, and
to steer them (approve, reject, pin, ban, stop, delete, try a variant).

A face turns what its user gave into a request (:class:`StartRequest`, :class:`ResumeRequest`,
:class:`ReplayRequest`) and shows what comes back; it never repeats a rule written here or
assembles another face's command line.

Example:
    >>> from hyperagents.runs import RunService, StartRequest      # doctest: +SKIP
    >>> service = RunService("sqlite:///runs.db")                   # doctest: +SKIP
    >>> drive = service.start(StartRequest(task="review", generations=10))  # doctest: +SKIP
    >>> drive.optimize()                                            # doctest: +SKIP
    >>> service.approve("review-hyperagent-s0/4", who="me", note="checked")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.runs._config import RunConfig
from hyperagents.runs._create import record_task
from hyperagents.runs._decide import Decision, decide
from hyperagents.runs._delete import check_no_engine, delete_run
from hyperagents.runs._launch import NOT_SHARED, EngineLauncher
from hyperagents.runs._level_drive import LevelDrive, level_changes
from hyperagents.runs._levels import level_driver
from hyperagents.runs._remote import RemoteCaller, check_remote_start
from hyperagents.runs._requests import (
    ReplayRequest,
    ResumeRequest,
    StartRequest,
    merge_budgets,
    replay_name,
    replay_target,
    sandbox_options,
)
from hyperagents.runs._resolve import find_run, meta_donor, resolve_variant, seed_donor
from hyperagents.runs._run import Run
from hyperagents.runs._stop import request_stop
from hyperagents.runs._try import try_example, try_variant
from hyperagents.storages import (
    DEFAULT_STORAGE_URL,
    STORAGE_ENV_VAR,
    BaseStorage,
    RunRecord,
    RunStatus,
    VariantRecord,
    get_storage,
    storage_for_creation,
)
from hyperagents.weights import labels, post_label

__all__ = ["Drive", "RunRef", "RunService", "Stopped", "VariantRef"]

#: A run as faces name it: a name, an id, or its record (taken as it is).
RunRef = str | int | RunRecord
#: A variant as faces name it: ``ID``, ``RUN/GENERATION``, ``RUN/champion``, an id, or its record.
VariantRef = str | int | VariantRecord

#: Tries (a task agent run on one input) that one service runs at once.
_TRY_SLOTS = 2


@dataclass(frozen=True)
class Drive:
    """A run ready to be driven in this process, and how far and wide: what :meth:`optimize`
    (or a face's own loop around :meth:`Run.optimize`) is given.

    Attributes:
        run: The run.
        generations: Generations to add to its stored target (None: go on to that target).
        timeout: Seconds after which no new generation starts (this drive only).
        workers: Sandboxed workers driving it at once.
        join: Join the engines already driving it (see :meth:`Run.optimize`).
    """

    run: Run
    generations: int | None = None
    timeout: float | None = None
    workers: int = 1
    join: bool = False

    def optimize(self, callbacks: Sequence[Callable[[Run, VariantRecord], None]] = ()) -> None:
        """Drive the run (see :meth:`Run.optimize`)."""
        self.run.optimize(
            self.generations,
            timeout=self.timeout,
            workers=self.workers,
            callbacks=callbacks,
            join=self.join,
        )


@dataclass(frozen=True)
class Stopped:
    """What a stop did: the run as it is after it, and what was done, in words."""

    run: RunRecord
    message: str


class RunService:
    """Start, resume, replay and steer the runs of one storage.

    Args:
        storage: A storage object, or its URL (opened when first needed; None:
            ``$HYPERAGENTS_STORAGE``, else the default SQLite file).
        storage_url: The URL engine processes started in the background open (default: the
            URL given as ``storage``; with a storage object and none given, runs cannot be
            driven in the background).
        log_dir: Where those engine processes write their output (default: a temporary
            directory).
        launcher: Starts those processes (default: an :class:`EngineLauncher` over
            ``storage_url`` and ``log_dir``).
    """

    def __init__(
        self,
        storage: BaseStorage | str | None = None,
        *,
        storage_url: str | None = None,
        log_dir: Path | None = None,
        launcher: EngineLauncher | None = None,
    ) -> None:
        self._storage = storage if isinstance(storage, BaseStorage) else None
        self._source = storage
        if storage_url is None and not isinstance(storage, BaseStorage):
            storage_url = storage or os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL
        self._launcher = launcher or EngineLauncher(storage_url, log_dir)
        self._try_slots = threading.BoundedSemaphore(_TRY_SLOTS)

    @property
    def storage(self) -> BaseStorage:
        """The storage (opened now when it was given as a URL)."""
        if self._storage is None:
            self._storage = get_storage(self._source)
        return self._storage

    @contextlib.contextmanager
    def _storage_for_creation(self) -> Iterator[BaseStorage]:
        """The storage, to create a run in: when it is opened here and the creation is
        refused, a SQLite file this opening made (and holding no run) is removed again."""
        if self._storage is not None:
            yield self._storage
            return
        try:
            with storage_for_creation(self._source) as store:
                self._storage = store
                yield store
        except BaseException:
            self.close()  # opened again when next needed
            raise

    def close(self) -> None:
        """Close the storage when this service opened it (a storage object given is left
        open: it belongs to the caller)."""
        if self._storage is not None and not isinstance(self._source, BaseStorage):
            self._storage.close()
            self._storage = None

    # -- lookups ---------------------------------------------------------------------------
    def find_run(self, run: RunRef) -> RunRecord:
        """A run by id (an int), or by name (else by id when no run has that all-digit name);
        a record is returned as it is.

        Raises:
            RunNotFoundError: No such run.
        """
        if isinstance(run, RunRecord):
            return run
        if isinstance(run, int):
            return self.storage.get_run(run)
        return find_run(self.storage, run)

    def find_variant(self, variant: VariantRef) -> VariantRecord:
        """A variant by id (an int), or by ``ID``, ``RUN/GENERATION``, ``RUN/champion``,
        ``RUN/seed``; a record is returned as it is.

        Raises:
            VariantNotFoundError: A malformed reference, or no such variant.
            RunNotFoundError: No such run.
        """
        if isinstance(variant, VariantRecord):
            return variant
        if isinstance(variant, int):
            return self.storage.get_variant(variant)
        return resolve_variant(self.storage, variant)

    # -- runs driven in this process -------------------------------------------------------
    def start(self, request: StartRequest) -> Drive:
        """Create the run ``request`` describes, to be driven in this process (its target is
        stored with it, so a later resume goes on to it).

        Raises:
            ConfigError: An invalid option or config value.
            DuplicateError: The name is taken.
            TaskError: The task does not load.
            VariantNotFoundError: ``meta_from`` or ``seed_from`` names no variant with a
                program.
        """
        return Drive(self._create(request), workers=request.engine_workers)

    def _create(self, request: StartRequest) -> Run:
        config = request.run_config()  # checked before the storage is touched
        with self._storage_for_creation() as store:
            donor, attrs = (
                (None, {}) if request.meta_from is None else meta_donor(store, request.meta_from)
            )
            seed, seed_attrs = (
                (None, {}) if request.seed_from is None else seed_donor(store, request.seed_from)
            )
            return Run.create(
                task=request.task,
                name=request.name,
                mode=request.run_mode(),
                seed=request.seed,
                storage=store,
                config=config,
                attrs={**request.attrs, **attrs, **seed_attrs},
                meta_from=donor,
                generations=request.generations,
                seed_from=seed,
            )

    def resume(self, request: ResumeRequest) -> Drive | LevelDrive:
        """Load a run to continue it in this process, its budgets or sandbox changed first as
        ``request`` asks. A run that its level's own loop drives (the arena's) comes back as a
        :class:`LevelDrive`, continued by its driver from its last stored step with its
        stored settings (see :func:`~hyperagents.runs.level_changes` for what it may change).

        Raises:
            RunNotFoundError: No such run.
            ConfigError: A budget or the sandbox is invalid, or a driven run asked for what it
                does not take.
            TaskError: The task does not load (``request.task``, or the run's own spec, is
                created with the task options the run stored).
        """
        record = self.find_run(request.run)
        driver = level_driver(record.mode)
        if driver is not None:
            changes = level_changes(record, request)
            return LevelDrive(
                record,
                driver,
                self.storage,
                request.generations,
                request.timeout,
                changes,
                workers=request.workers,
            )
        task = record_task(record, request.task)  # its stored options; may refuse the resume
        if request.changes_config:  # after the task loads: a resume that fails changes nothing
            self._merge_budgets(record, request)
        run = Run.load(record.id, storage=self.storage, task=task)
        return Drive(
            run, request.generations, request.timeout, request.engine_workers, join=request.join
        )

    def _merge_budgets(self, record: RunRecord, request: ResumeRequest) -> None:
        merged = merge_budgets(record.config, request)
        if merged is not None:
            self.storage.update_run_config(record.id, merged.model_dump(mode="json"))

    def replay(self, request: ReplayRequest) -> Drive:
        """Create a replay of a recorded run (same task, mode, seed and config; every LLM
        request answered from the record), to be driven in this process.

        Raises:
            RunNotFoundError: No such run.
            ConfigError: ``generations`` goes beyond the record, or a bad sandbox.
        """
        with self._storage_for_creation() as store:
            original = self.find_run(request.run)
            config = RunConfig.parse(
                dict(original.config),
                replay_of=original.name,
                **sandbox_options(request.sandbox, request.ray_address),
            )
            target = replay_target(store, original, request.generations)
            run = Run.create(
                task=original.task,
                name=request.name or replay_name(store, original.name),
                mode=original.mode,
                seed=original.seed,
                storage=store,
                config=config,
                generations=target,
            )
        return Drive(run, workers=request.workers or config.parallel_generations)

    # -- runs driven in the background -----------------------------------------------------
    @property
    def can_drive(self) -> bool:
        """Whether runs can be driven in the background (another process can open the
        storage)."""
        return self._launcher.available

    def engines(self) -> list[dict[str, Any]]:
        """The engine processes this service started that still run."""
        return self._launcher.running()

    def start_detached(
        self, request: StartRequest, *, remote: RemoteCaller | None = None
    ) -> RunRecord:
        """Create a run (checked here, so a mistake is reported at once) and start an engine
        process that drives it to its target.

        Args:
            request: The run.
            remote: Who asked, when over the network (limits what may be started: see
                :func:`~hyperagents.runs.check_remote_start`).

        Raises:
            ConfigError: An unknown task, mode or option, or one a remote caller may not give.
            DuplicateError: The name is taken.
            RunStateError: Runs cannot be driven in the background here, or the engine
                stopped at once (no run is left behind then).
        """
        if remote is not None:
            check_remote_start(request, remote)
        if not self.can_drive:
            raise RunStateError(NOT_SHARED)
        record = self._create(request).record()
        try:
            self._launcher.launch(record, ResumeRequest(run=record.id, workers=request.workers))
        except RunStateError:
            variants = self.storage.list_variants(record.id)
            if not any(v.generation or v.state.is_terminal for v in variants):
                self.storage.delete_run(record.id)  # nothing done (the seed not even scored)
            raise
        return self.storage.get_run(record.id)

    def resume_detached(
        self, request: ResumeRequest, *, remote: RemoteCaller | None = None
    ) -> RunRecord:
        """Start an engine process that continues a run (budgets changed first as ``request``
        asks).

        Raises:
            RunNotFoundError: No such run.
            RunStateError: An engine drives it (running, or finishing its work after a stop);
                it is complete and no generations were added; runs cannot be driven in the
                background here; or the engine stopped at once.
            ConfigError: A remote caller named a task to load or a sandbox; or a run its
                level's own loop drives asked for what it does not take, or for a change
                (see :func:`~hyperagents.runs.level_changes`).
        """
        if remote is not None and request.task is not None:
            raise ConfigError("runs resumed from the dashboard load the task they recorded")
        if remote is not None and request.changes_sandbox:
            raise ConfigError("runs resumed from the dashboard keep their sandbox")
        record = self.find_run(request.run)
        if level_driver(record.mode) is not None:
            level_changes(record, request, detached=True)  # refuses what it does not take
        if not request.join:
            check_no_engine(record, action="resume")
        if record.status is RunStatus.COMPLETE and not request.generations:
            raise RunStateError(
                f"run {record.name!r} reached its target: give generations to add to it"
            )
        if not self.can_drive:
            raise RunStateError(NOT_SHARED)
        if request.changes_config:
            self._merge_budgets(record, request)
        self._launcher.launch(record, request)
        return self.storage.get_run(record.id)

    # -- steering --------------------------------------------------------------------------
    def decide(
        self, variant: VariantRef, decision: Decision, *, who: str, note: str | None = None
    ) -> VariantRecord:
        """Record a person's decision on a variant; return the variant as it is after it.

        Raises:
            VariantNotFoundError: No such variant.
            RunStateError: The decision does not fit the variant's state (approve or reject
                one not waiting for approval, pin one that is not complete, ban the seed).
        """
        record = self.find_variant(variant)
        decide(self.storage, record, decision, who=who, note=note)
        return self.storage.get_variant(record.id)

    def approve(self, variant: VariantRef, *, who: str, note: str | None = None) -> VariantRecord:
        """Accept a child waiting for approval (see :meth:`decide`)."""
        return self.decide(variant, Decision.APPROVE, who=who, note=note)

    def reject(self, variant: VariantRef, *, who: str, note: str | None = None) -> VariantRecord:
        """Refuse a child waiting for approval (see :meth:`decide`)."""
        return self.decide(variant, Decision.REJECT, who=who, note=note)

    def pin(self, variant: VariantRef, *, who: str) -> VariantRecord:
        """Make a variant the parent of its run's next child (see :meth:`decide`)."""
        return self.decide(variant, Decision.PIN, who=who)

    def ban(self, variant: VariantRef, *, who: str, note: str | None = None) -> VariantRecord:
        """Ban a variant's lineage as parents (see :meth:`decide`)."""
        return self.decide(variant, Decision.BAN, who=who, note=note)

    def stop(self, run: RunRef, *, who: str, now: bool = False) -> Stopped:
        """Stop a run from any process: gracefully, or at once with ``now`` (see
        :func:`~hyperagents.runs.request_stop`).

        Raises:
            RunNotFoundError: No such run.
            RunStateError: It is not running, or ``now`` was asked of an engine on another host.
        """
        record = self.find_run(run)
        said = request_stop(self.storage, record, who=who, now=now)
        return Stopped(self.storage.get_run(record.id), said)

    def delete(self, run: RunRef, *, confirm: str | None = None) -> RunRecord:
        """Delete a run with everything recorded about it; return its last record.

        Args:
            run: The run.
            confirm: When given, the run's name, typed to confirm.

        Raises:
            RunNotFoundError: No such run.
            ConfigError: ``confirm`` is not the run's name.
            RunStateError: An engine drives it (stop it first, and let it finish).
        """
        record = self.find_run(run)
        if confirm is not None and confirm != record.name:
            raise ConfigError(f"type the run's name ({record.name!r}) to confirm deleting it")
        delete_run(self.storage, record)
        return record

    # -- training data -------------------------------------------------------------------------
    def post_label(self, run: RunRef, instance_id: str, output: Any, *, who: str) -> dict[str, Any]:
        """Record a person's label for a train instance of a run: training data of the
        ``people`` source (see :func:`~hyperagents.weights.post_label`).

        Raises:
            RunNotFoundError: No such run.
            ConfigError: Not a train instance (val and test never take labels), or the
                output is not JSON or too large.
        """
        record = self.find_run(run)
        return post_label(self.storage, record.id, record_task(record), instance_id, output, by=who)

    def labels(self, run: RunRef) -> dict[str, Any]:
        """The labels people posted for a run: the latest output per train instance id.

        Raises:
            RunNotFoundError: No such run.
        """
        return labels(self.storage, self.find_run(run).id)

    def try_example(self, variant: VariantRef) -> dict[str, Any]:
        """What trying a variant offers to start from (see :func:`~hyperagents.runs.try_example`).

        Raises:
            VariantNotFoundError: No such variant.
        """
        record = self.find_variant(variant)
        return try_example(self.storage.get_run(record.run_id))

    def try_variant(self, variant: VariantRef, inputs: Any) -> dict[str, Any]:
        """Run a variant's task agent on ``inputs`` in its run's sandbox (two at once at most;
        see :func:`~hyperagents.runs.try_variant`).

        Raises:
            VariantNotFoundError: No such variant.
            RunStateError: It has no program, or two tries are running already.
            ConfigError: The input is too large.
        """
        record = self.find_variant(variant)
        run = self.storage.get_run(record.run_id)
        return try_variant(self.storage, run, record, inputs, slots=self._try_slots)

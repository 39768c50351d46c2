"""The storage contract.

Storage is the single source of truth of every run: runs, programs (deduplicated blobs),
variants, evaluations, events and LLM calls. Any process holding a storage can resume a run.

The contract is written here once, on :class:`BaseStorage` (this docstring and its methods'
docstrings); backends inherit the docstrings and add only notes about themselves.

Contract (every backend must satisfy it; ``hyperagents.testing.storage`` checks it):

* **Records are frozen snapshots.** Getters return immutable dataclasses; mutating the storage
  never changes a snapshot already returned.
* **Records go in whole.** A run is created from a :class:`RunSpec` and an LLM call recorded
  from an :class:`LLMCallSpec`; events given to a transition are :class:`EventSpec` objects.
* **Durability.** Every mutating method commits before it returns (inside
  :meth:`BaseStorage.atomically`: when the outermost ``atomically`` returns). After that, the
  change survives a SIGKILL of the calling process (for persistent backends).
* **Atomicity.** Each mutating method is one transaction: either all of its effects (including
  the optional ``event`` it records) are visible, or none. :meth:`BaseStorage.atomically`
  makes the calls of a function one transaction (one step of the engine: an evaluation, the
  variant's state change and its events), committed together or not at all.
* **Events and LLM calls** are append-only records of a run (:meth:`BaseStorage.add_event`,
  :meth:`BaseStorage.add_llm_call`), deleted with it (events a run keeps only while it needs
  them also by kind, :meth:`BaseStorage.delete_events`): see
  :mod:`hyperagents.storages._base_logs`.
* **Programs are content-addressed.** :meth:`BaseStorage.put_program` stores each distinct file
  content once (keyed by its SHA-256) and each distinct manifest once (keyed by
  :attr:`Program.id`); putting the same program twice is a no-op that returns the same id.
* **Artifacts** (files that :func:`~hyperagents.program.is_artifact` names: 1 MiB or more, a
  model's weights under ``model/``) are program files like the others, stored once per content,
  but a backend may keep them outside its rows (RDB: a file store beside a SQLite file, large
  objects in PostgreSQL). A program is never stored naming an artifact that is not in place
  (a failed or killed :meth:`BaseStorage.put_program` leaves at most an unnamed file, reused
  later); :meth:`BaseStorage.get_program` checks each against its hash and raises
  :class:`StorageError` naming the file when one is missing or changed, never wrong bytes.
* **Compare-and-set transitions.** :meth:`BaseStorage.set_variant_state`,
  :meth:`BaseStorage.claim_variant`, :meth:`BaseStorage.set_run_status` and
  :meth:`BaseStorage.unpin_parent` change a record only if its current value equals
  ``expected``; they return ``False`` (and change nothing) otherwise. No locks are held between
  calls.
* **One engine per run.** A run's engine slot (:attr:`RunRecord.engine`) is taken with
  :meth:`BaseStorage.claim_run_engine`, a compare-and-set on the holder stored now: of engines
  racing for one run, exactly one gets ``True``. Claiming again as the holder refreshes
  ``engine_heartbeat_at`` (the engine's heartbeat). :meth:`BaseStorage.release_run_engine`
  empties the slot, with an optional final status and event in the same transaction, only for
  the holder. Whether a holder is dead or stale is the caller's decision, made on the value it
  read and then passed as ``expected``.
* **Run state is typed.** What the engine and the people steering a run change has fields of
  its own on :class:`RunRecord`, each changed by its own method: the generation target
  (:meth:`BaseStorage.set_target_generations`), the time spent
  (:meth:`BaseStorage.set_elapsed_seconds`), the pinned parent (:meth:`BaseStorage.pin_parent`,
  :meth:`BaseStorage.unpin_parent`) and the banned variants (:meth:`BaseStorage.ban_variant`,
  a set that only grows). ``attrs`` holds free-form data only
  (:meth:`BaseStorage.update_run_attrs` merges into it).
* **Transient failures** (a dropped connection, a database restarting, a busy database) may be
  retried inside a method, within a bounded time; a retry never applies a change twice, and a
  method that gives up raises :class:`StorageError`.
* **Uniqueness.** Run names are unique (:class:`DuplicateError`); a run has at most one variant
  per generation (:class:`DuplicateError`); a variant has at most one evaluation per stage
  (:class:`DuplicateError`).
* **Scores are denormalised atomically.** :meth:`BaseStorage.add_evaluation` inserts the
  evaluation and sets ``variant.scores[stage]`` and merges ``metrics`` into
  ``variant.metrics[stage]`` in the same transaction; :meth:`BaseStorage.add_evaluations`
  does the same for several stages of one variant in one transaction.
* **Ordering.** ``list_*`` methods return records in ascending id order (variants: ascending
  generation); ids are positive integers that increase with insertion.
* **Heartbeats.** :meth:`BaseStorage.heartbeat` stamps ``heartbeat_at`` on the variants an owner
  holds; :meth:`BaseStorage.list_variants` lets the engine find work whose owner stopped beating.
* **Missing records** raise :class:`RunNotFoundError` / :class:`VariantNotFoundError`, also
  from the ``list_*``/``count_*`` methods and ``get_variant_by_generation`` of a missing run
  (``list_evaluations`` of a missing variant) and from ``add_event`` with an unknown
  ``variant_id``. A ``program_id`` given to ``create_variant``/``set_variant_program`` must be
  stored already (:class:`StorageError` otherwise).
* **Events of transitions** are recorded only when the transition applies (a compare-and-set
  that returns ``False`` records nothing).
* **Thread safety.** A storage object may be shared by threads of one process.
* **JSON fields** (``config``, ``attrs``, ``scores``, ``metrics``, ``meta_info``, ``results``,
  ``data``, ``request``) hold JSON-compatible values only (dict/list/str/int/float/bool/None);
  a float must be finite. Backends store and return them unchanged (dict key order may
  differ); anything else (and a non-finite evaluation ``score``) raises :class:`StorageError`
  and changes nothing.
* **Times** are timezone-aware UTC ``datetime`` objects.
* **Engines** of a run (several may share one): see :mod:`hyperagents.storages._base_engines`.
* **Checkpoints** (the newest of each variant's training, so that any engine, on any machine,
  resumes it): see :mod:`hyperagents.storages._base_checkpoints`.
* **Services** (a champion answering live requests, with their requests and logs): see
  :mod:`hyperagents.storages._base_services`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hyperagents.program import Program
from hyperagents.storages._base_checkpoints import CheckpointStorage
from hyperagents.storages._base_engines import EngineStorage
from hyperagents.storages._base_logs import LogStorage
from hyperagents.storages._base_services import ServiceStorage
from hyperagents.storages._records import (
    EvaluationRecord,
    EvaluationSpec,
    EventSpec,
    RunRecord,
    RunSpec,
    RunStatus,
    VariantRecord,
    VariantState,
)

__all__ = ["BaseStorage"]

_T = TypeVar("_T")


class BaseStorage(EngineStorage, ServiceStorage, CheckpointStorage, LogStorage, ABC):
    """Abstract storage: the contract is the module docstring and the methods' docstrings.

    Backends implement every abstract method and inherit these docstrings
    (:func:`inspect.getdoc` and :func:`help` show them); a backend's own notes go in its class
    docstring.
    """

    # -- runs -------------------------------------------------------------------------------
    @abstractmethod
    def create_run(self, run: RunSpec) -> int:
        """Create a run in status ``CREATED`` and return its id.

        Args:
            run: The run, whole: identity, config, typed state and free-form ``attrs``.

        Returns:
            The new run's id.

        Raises:
            DuplicateError: A run with this name exists.
            StorageError: ``config`` or ``attrs`` is not JSON-compatible, or
                ``target_generations`` is negative.
        """

    @abstractmethod
    def get_run(self, run_id: int) -> RunRecord:
        """Return the run.

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def get_run_by_name(self, name: str) -> RunRecord:
        """Return the run called ``name``.

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def list_runs(self) -> list[RunRecord]:
        """All runs, ascending id."""

    @abstractmethod
    def set_run_status(
        self,
        run_id: int,
        status: RunStatus,
        *,
        expected: RunStatus | Iterable[RunStatus] | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the run's status: set it if the current one is ``expected`` (any,
        if None), recording ``event`` in the same transaction.

        Returns:
            Whether the status was changed.

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def update_run_attrs(self, run_id: int, attrs: Mapping[str, Any]) -> None:
        """Shallow-merge ``attrs`` into the run's free-form attrs (a value of None deletes the
        key).

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``attrs`` is not JSON-compatible.
        """

    @abstractmethod
    def claim_run_engine(self, run_id: int, owner: str, *, expected: str | None) -> bool:
        """Compare-and-set the run's engine: make ``owner`` its engine (and stamp
        ``engine_heartbeat_at`` = now) if the engine stored now is ``expected`` (None: the slot
        is empty) or ``owner`` itself (which refreshes its heartbeat).

        Returns:
            Whether ``owner`` holds the run now.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``owner`` is empty.
        """

    @abstractmethod
    def release_run_engine(
        self,
        run_id: int,
        owner: str,
        *,
        status: RunStatus | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        """Empty the run's engine slot if ``owner`` holds it, setting ``status`` (if given)
        and recording ``event`` in the same transaction; change nothing otherwise.

        Returns:
            Whether ``owner`` held the run (and so released it).

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def set_target_generations(self, run_id: int, target: int | None) -> None:
        """Set the run's generation target (None: no target).

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``target`` is negative.
        """

    @abstractmethod
    def set_elapsed_seconds(self, run_id: int, seconds: float) -> None:
        """Set the engine time spent on the run so far.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``seconds`` is negative or not finite.
        """

    @abstractmethod
    def pin_parent(self, variant_id: int, *, by: str, event: EventSpec | None = None) -> None:
        """Make the variant the pinned parent of its run (replacing any pin), pinned by
        ``by``, recording ``event`` in the same transaction.

        Raises:
            VariantNotFoundError: No such variant.
        """

    @abstractmethod
    def unpin_parent(self, run_id: int, *, expected: int | None = None) -> bool:
        """Compare-and-set: clear the run's pin if the pinned variant is ``expected`` (any
        pin, if None).

        Returns:
            Whether a pin was cleared.

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def ban_variant(self, variant_id: int, *, event: EventSpec | None = None) -> None:
        """Add the variant to its run's banned variants (a no-op if it is there already),
        recording ``event`` in the same transaction.

        Raises:
            VariantNotFoundError: No such variant.
        """

    @abstractmethod
    def update_run_config(self, run_id: int, config: Mapping[str, Any]) -> None:
        """Replace the run's config.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``config`` is not JSON-compatible.
        """

    @abstractmethod
    def delete_run(self, run_id: int) -> None:
        """Delete a run with its variants, evaluations, events, LLM calls, training checkpoints
        (their bytes freed) and services (with their requests and logs; programs, blobs and
        artifacts stay: they may be shared).

        Raises:
            RunNotFoundError: No such run.
        """

    # -- programs ---------------------------------------------------------------------------
    @abstractmethod
    def put_program(self, program: Program) -> str:
        """Store a program (deduplicating blobs and manifests); return its id.

        Raises:
            StorageError: The database failed.
        """

    @abstractmethod
    def get_program(self, program_id: str) -> Program:
        """Return a stored program.

        Raises:
            StorageError: No program with this id is stored, or its blobs are corrupt.
        """

    @abstractmethod
    def has_program(self, program_id: str) -> bool:
        """Whether a program with this id is stored."""

    @abstractmethod
    def count_blobs(self) -> int:
        """Number of distinct file contents stored (for dedup checks and statistics)."""

    # -- variants ---------------------------------------------------------------------------
    @abstractmethod
    def create_variant(
        self,
        *,
        run_id: int,
        generation: int,
        parent_id: int | None,
        state: VariantState = VariantState.RUNNING,
        owner: str | None = None,
        program_id: str | None = None,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
    ) -> int:
        """Insert a variant (``heartbeat_at`` = now if ``owner``) and return its id.

        Raises:
            DuplicateError: The run already has a variant for ``generation``.
            RunNotFoundError: No such run.
            StorageError: ``program_id`` is not stored, or ``meta_info`` is not JSON.
        """

    @abstractmethod
    def get_variant(self, variant_id: int) -> VariantRecord:
        """Return the variant.

        Raises:
            VariantNotFoundError: No such variant.
        """

    @abstractmethod
    def get_variant_by_generation(self, run_id: int, generation: int) -> VariantRecord | None:
        """The run's variant for ``generation``, or None.

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def list_variants(
        self,
        run_id: int,
        *,
        states: Iterable[VariantState] | None = None,
    ) -> list[VariantRecord]:
        """The run's variants (optionally only in ``states``), ascending generation.

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def count_variants(self, run_id: int) -> int:
        """Number of variants of the run.

        Raises:
            RunNotFoundError: No such run.
        """

    @abstractmethod
    def set_variant_program(
        self,
        variant_id: int,
        program_id: str,
        *,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
        engine: str | None = None,
        worker: int | None = None,
    ) -> None:
        """Record the child program (which must already be stored) and the improver's info,
        with the ``engine`` and ``worker`` that ran the improver (kept as they are if None).

        Raises:
            VariantNotFoundError: No such variant.
            StorageError: The program is not stored, or ``meta_info`` is not JSON.
        """

    @abstractmethod
    def set_variant_state(
        self,
        variant_id: int,
        state: VariantState,
        *,
        expected: VariantState | Iterable[VariantState],
        reason: str | None = None,
        release: bool = False,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the variant's state; ``reason`` (if given) replaces the stored
        reason; ``release`` clears the owner.

        Returns:
            Whether the state was changed.

        Raises:
            VariantNotFoundError: No such variant.
        """

    @abstractmethod
    def claim_variant(
        self,
        variant_id: int,
        owner: str,
        *,
        expected_owner: str | None,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the owner (and stamp ``heartbeat_at``).

        Returns:
            Whether the owner was changed.

        Raises:
            VariantNotFoundError: No such variant.
        """

    @abstractmethod
    def heartbeat(self, owner: str, variant_ids: Sequence[int]) -> None:
        """Stamp ``heartbeat_at`` = now on those of ``variant_ids`` still owned by ``owner``."""

    @abstractmethod
    def update_variant_metrics(self, variant_id: int, metrics: Mapping[str, Any]) -> None:
        """Shallow-merge ``metrics`` into the variant's metrics.

        Raises:
            VariantNotFoundError: No such variant.
            StorageError: ``metrics`` is not JSON-compatible.
        """

    # -- evaluations ------------------------------------------------------------------------
    @abstractmethod
    def add_evaluation(
        self,
        *,
        variant_id: int,
        stage: str,
        split: str,
        score: float,
        n: int,
        results: Sequence[Mapping[str, Any]],
        metrics: Mapping[str, Any],
        event: EventSpec | None = None,
        engine: str | None = None,
        worker: int | None = None,
    ) -> int:
        """Insert an evaluation (run by ``engine``'s ``worker``) and denormalise its
        score/metrics on the variant atomically.

        Raises:
            DuplicateError: The variant already has an evaluation for ``stage``.
            VariantNotFoundError: No such variant.
            StorageError: ``score`` is not finite, or ``results``/``metrics`` are not JSON.
        """

    def add_evaluations(
        self,
        variant_id: int,
        evaluations: Sequence[EvaluationSpec],
        *,
        engine: str | None = None,
        worker: int | None = None,
    ) -> list[int]:
        """Record several stages of one variant as :meth:`add_evaluation` would one after the
        other, in one transaction (all of them or none); return their ids, in order. The
        default makes those calls inside :meth:`atomically`; a backend may do it in fewer
        statements.

        Raises:
            DuplicateError: A stage is recorded already, or given twice.
            VariantNotFoundError: No such variant (also for an empty ``evaluations``).
            StorageError: A score is not finite, or results/metrics are not JSON.
        """

        def add_all() -> list[int]:
            self.get_variant(variant_id)
            return [
                self.add_evaluation(
                    variant_id=variant_id,
                    stage=spec.stage,
                    split=spec.split,
                    score=spec.score,
                    n=spec.n,
                    results=spec.results,
                    metrics=spec.metrics,
                    event=spec.event,
                    engine=engine,
                    worker=worker,
                )
                for spec in evaluations
            ]

        return self.atomically(add_all)

    @abstractmethod
    def list_evaluations(self, variant_id: int) -> list[EvaluationRecord]:
        """The variant's evaluations, ascending id.

        Raises:
            VariantNotFoundError: No such variant.
        """

    # -- transactions -----------------------------------------------------------------------
    @abstractmethod
    def atomically(self, fn: Callable[[], _T]) -> _T:
        """Call ``fn()`` as one transaction: the calls it makes on this storage object, from
        this thread, take effect together when ``atomically`` returns, or not at all.

        Inside ``fn`` each call sees what the calls before it did; other threads and processes
        see none of it until ``atomically`` returns, and a crash before then leaves none of it.
        Other writers may wait while ``fn`` runs (it can hold the database's write lock), so
        ``fn`` should make storage calls and cheap computations only, never wait for agents.
        Every other clause of the contract holds inside ``fn`` (compare-and-set answers,
        errors, events recorded only with their transitions). It makes the calls atomic, not
        isolated: a read inside ``fn`` may see what other writers committed meanwhile (on
        PostgreSQL, which lets writers run side by side), so decisions that race with other
        writers are still made with the compare-and-set methods.

        * **Retries.** After a transient database error the transaction is rolled back and
          ``fn`` is called again (within the storage's retry time), so anything ``fn`` does
          besides storage calls must be harmless to repeat. A COMMIT whose outcome is unknown
          is resolved as for a single call: the work is applied once, and ``atomically``
          returns what ``fn`` returned in the call that committed.
        * **Errors.** If ``fn`` raises, nothing is committed and its exception propagates.
          A storage call inside ``fn`` that raises spoils the transaction: later calls in it
          raise :class:`StorageError`, and if ``fn`` catches the error and returns, nothing is
          committed and :class:`StorageError` is raised. To catch a call's error and go on,
          make that call inside a nested ``atomically``.
        * **Nesting.** ``atomically`` called inside ``fn`` is a savepoint of the enclosing
          transaction: if the inner function raises (or returns with its transaction
          spoiled), only its calls are undone and its exception propagates to the enclosing
          function, which may catch it and go on; otherwise its calls commit with the
          outermost ``atomically``.

        Args:
            fn: The function; it takes no arguments (bind them with a closure).

        Returns:
            What ``fn`` returned.

        Raises:
            StorageError: A storage call inside ``fn`` failed and ``fn`` returned anyway, the
                transaction could not commit, or a transient error outlasted the retry time.
        """

    @abstractmethod
    def lock_record(self, *, run_id: int | None = None, service_id: int | None = None) -> None:
        """Inside :meth:`atomically`: lock a run's (or a service's) record until the
        transaction ends. Another transaction that locks the same record waits until then,
        and its reads after that see everything this one committed; other writes to the
        record, its events and its calls are not held up by the lock. For read-decide-write
        steps no compare-and-set method covers, e.g. appending to a log what reading it
        decided (each locker sees the entries of the one before). A lock taken in a nested
        ``atomically`` that is undone may be released with it.

        Raises:
            ValueError: Not exactly one of ``run_id`` and ``service_id`` is given.
            StorageError: Called outside :meth:`atomically`.
            RunNotFoundError: No such run.
            ServiceNotFoundError: No such service.
        """

    def local_folder(self, name: str) -> Path | None:
        """A folder of this machine that belongs to this storage's database, for files kept
        beside it that no other machine needs (caches); not created here:
        ``<database file>.<name>`` beside a SQLite file; for a server's database, a folder
        under the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``) named after the
        database's URL (without its password). None: the storage has none (it lives in
        memory, as an in-memory SQLite database does).

        Args:
            name: What the folder is for (a plain name, part of the folder's name).
        """
        del name
        return None

    def close(self) -> None:
        """Release connections; the object must not be used afterwards."""

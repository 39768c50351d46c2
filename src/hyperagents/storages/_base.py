"""The storage contract.

Storage is the single source of truth of every run: runs, programs (deduplicated blobs),
variants, evaluations and events. Any process holding a storage can resume a run.

Contract (every backend must satisfy it; ``hyperagents.testing.storage`` checks it):

* **Records are frozen snapshots.** Getters return immutable dataclasses; mutating the storage
  never changes a snapshot already returned.
* **Durability.** Every mutating method commits before it returns. After it returns, the change
  survives a SIGKILL of the calling process (for persistent backends).
* **Atomicity.** Each mutating method is one transaction: either all of its effects (including
  the optional ``event`` it records) are visible, or none.
* **LLM calls** are append-only records (:meth:`BaseStorage.add_llm_call`), deleted with their
  run.
* **Programs are content-addressed.** :meth:`BaseStorage.put_program` stores each distinct file
  content once (keyed by its SHA-256) and each distinct manifest once (keyed by
  :attr:`Program.id`); putting the same program twice is a no-op that returns the same id.
* **Compare-and-set transitions.** :meth:`BaseStorage.set_variant_state`,
  :meth:`BaseStorage.claim_variant` and :meth:`BaseStorage.set_run_status` change a record only
  if its current value equals ``expected``; they return ``False`` (and change nothing) otherwise.
  No locks are held between calls.
* **One engine per run.** A run's engine slot (:attr:`RunRecord.engine`) is taken with
  :meth:`BaseStorage.claim_run_engine`, a compare-and-set on the holder stored now: of engines
  racing for one run, exactly one gets ``True``. Claiming again as the holder refreshes
  ``engine_heartbeat_at`` (the engine's heartbeat). :meth:`BaseStorage.release_run_engine`
  empties the slot, with an optional final status and event in the same transaction, only for
  the holder. Whether a holder is dead or stale is the caller's decision, made on the value it
  read and then passed as ``expected``.
* **Transient failures** (a dropped connection, a database restarting, a busy database) may be
  retried inside a method, within a bounded time; a retry never applies a change twice, and a
  method that gives up raises :class:`StorageError`.
* **Uniqueness.** Run names are unique (:class:`DuplicateError`); a run has at most one variant
  per generation (:class:`DuplicateError`); a variant has at most one evaluation per stage
  (:class:`DuplicateError`).
* **Scores are denormalised atomically.** :meth:`BaseStorage.add_evaluation` inserts the
  evaluation and sets ``variant.scores[stage]`` and merges ``metrics`` into
  ``variant.metrics[stage]`` in the same transaction.
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
  ``data``) hold JSON-compatible values only (dict/list/str/int/float/bool/None); a float must be
  finite. Backends store and return them unchanged (dict key order may differ); anything else
  (and a non-finite evaluation ``score``) raises :class:`StorageError` and changes nothing.
* **Times** are timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from hyperagents.program import Program

__all__ = [
    "BaseStorage",
    "EvaluationRecord",
    "EventRecord",
    "EventSpec",
    "LLMCallRecord",
    "RunRecord",
    "RunStatus",
    "VariantRecord",
    "VariantState",
]


class RunStatus(IntEnum):
    """Lifecycle of a run."""

    CREATED = 0  #: created, nothing done yet
    RUNNING = 1  #: an engine is (or was, until it died) working on it
    STOPPED = 2  #: stopped gracefully (timeout, budget, interrupt, user); resumable
    COMPLETE = 3  #: reached its generation target; resumable with a larger target
    FAILED = 4  #: stopped by an infrastructure error; resumable


class VariantState(IntEnum):
    """Lifecycle of a variant.

    ``RUNNING`` → (program recorded) → ``EVALUATING`` → ``COMPLETE``, or one of the terminal
    failure states. Only ``COMPLETE`` variants are eligible parents.
    """

    RUNNING = 0  #: asked; the improver is producing the child (program_id may still be None)
    EVALUATING = 1  #: child valid; evaluation stages in progress
    COMPLETE = 2  #: evaluated on every stage it was due; eligible parent
    PRUNED = 3  #: failed the staged-evaluation threshold; kept, never a parent
    INVALID = 4  #: child does not compile/import/expose its entry points; kept, never a parent
    FAILED = 5  #: the improver failed (crash, timeout, no change); no usable child
    REJECTED = 6  #: rejected (by the constitution, or by a person); never a parent
    PENDING = 7  #: evaluated, waiting for a person's approval; not a parent until approved

    @property
    def is_terminal(self) -> bool:
        """Whether no more work will be done on a variant in this state."""
        return self not in (VariantState.RUNNING, VariantState.EVALUATING)


@dataclass(frozen=True)
class EventSpec:
    """An event to record atomically with a state change."""

    kind: str
    message: str = ""
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunRecord:
    """Snapshot of a run.

    Attributes:
        engine: Owner token of the engine process driving the run (None: no engine holds it).
        engine_heartbeat_at: When that engine last claimed or refreshed its hold.
    """

    id: int
    name: str
    task: str
    mode: str
    seed: int
    config: Mapping[str, Any]
    seed_program_id: str
    status: RunStatus
    attrs: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    engine: str | None = None
    engine_heartbeat_at: datetime | None = None


@dataclass(frozen=True)
class VariantRecord:
    """Snapshot of a variant.

    Attributes:
        scores: ``{stage: aggregate score}`` for every evaluation stage recorded so far.
        metrics: ``{stage: {metric: value}}`` (wall/cpu time, peak memory, errors, …).
        meta_info: What the improver reported about how it made this child (JSON).
        owner: Token of the engine process working on it (None when terminal or unclaimed).
    """

    id: int
    run_id: int
    generation: int
    parent_id: int | None
    program_id: str | None
    state: VariantState
    scores: Mapping[str, float] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    meta_info: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    owner: str | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation stage of a variant.

    Attributes:
        stage: ``"train_subset"``, ``"train"``, ``"val"``, ``"test"`` (or a task-defined stage).
        split: The split the instances came from.
        score: Aggregate score of the stage.
        results: Per-instance ``{"id", "score", "feedback", "output", "error", "wall", ...}``.
        metrics: Stage metrics (wall/cpu seconds, peak memory, error counts, …).
    """

    id: int
    variant_id: int
    stage: str
    split: str
    score: float
    n: int
    results: Sequence[Mapping[str, Any]]
    metrics: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class EventRecord:
    """A log entry of a run."""

    id: int
    run_id: int
    variant_id: int | None
    kind: str
    message: str
    data: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class LLMCallRecord:
    """One call (attempt) to a language model, as the LLM gateway recorded it.

    Attributes:
        key: Content address of the request (provider, model, messages, parameters).
        request: The request: ``{"messages": [...], "params": {...}}`` (never an API key).
        reply: The model's text, or None if the attempt failed.
        error: Why the attempt failed (None on success).
        cached: Served from the response cache (no provider call, no cost).
        attempt: 1 for the first try of a request, 2… for its retries.
        purpose: What the call was for (``"improve"``, ``"solve"``, ``"review"``…).
    """

    id: int
    run_id: int
    variant_id: int | None
    key: str
    provider: str
    model: str
    purpose: str
    attempt: int
    cached: bool
    request: Mapping[str, Any]
    reply: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency: float
    created_at: datetime


class BaseStorage(ABC):
    """Abstract storage; the contract is in the module docstring."""

    # -- runs -------------------------------------------------------------------------------
    @abstractmethod
    def create_run(
        self,
        *,
        name: str,
        task: str,
        mode: str,
        seed: int,
        config: Mapping[str, Any],
        seed_program_id: str,
        attrs: Mapping[str, Any] | None = None,
    ) -> int:
        """Create a run in status ``CREATED`` and return its id.

        Raises:
            DuplicateError: A run with this name exists.
        """

    @abstractmethod
    def get_run(self, run_id: int) -> RunRecord:
        """Raises: RunNotFoundError."""

    @abstractmethod
    def get_run_by_name(self, name: str) -> RunRecord:
        """Raises: RunNotFoundError."""

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
        """Set the status if the current one is ``expected`` (any, if None).

        Returns:
            Whether the status was changed. Raises: RunNotFoundError.
        """

    @abstractmethod
    def update_run_attrs(self, run_id: int, attrs: Mapping[str, Any]) -> None:
        """Shallow-merge ``attrs`` into the run's attrs (a value of None deletes the key).

        Raises: RunNotFoundError.
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
    def update_run_config(self, run_id: int, config: Mapping[str, Any]) -> None:
        """Replace the run's config. Raises: RunNotFoundError."""

    @abstractmethod
    def delete_run(self, run_id: int) -> None:
        """Delete a run with its variants, evaluations and events (programs and blobs stay,
        they may be shared). Raises: RunNotFoundError."""

    # -- programs ---------------------------------------------------------------------------
    @abstractmethod
    def put_program(self, program: Program) -> str:
        """Store a program (deduplicating blobs and manifests); return its id."""

    @abstractmethod
    def get_program(self, program_id: str) -> Program:
        """Raises: StorageError if no such program exists."""

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
        """

    @abstractmethod
    def get_variant(self, variant_id: int) -> VariantRecord:
        """Raises: VariantNotFoundError."""

    @abstractmethod
    def get_variant_by_generation(self, run_id: int, generation: int) -> VariantRecord | None:
        """The run's variant for ``generation``, or None."""

    @abstractmethod
    def list_variants(
        self,
        run_id: int,
        *,
        states: Iterable[VariantState] | None = None,
    ) -> list[VariantRecord]:
        """The run's variants (optionally only in ``states``), ascending generation."""

    @abstractmethod
    def count_variants(self, run_id: int) -> int:
        """Number of variants of the run."""

    @abstractmethod
    def set_variant_program(
        self,
        variant_id: int,
        program_id: str,
        *,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
    ) -> None:
        """Record the child program (which must already be stored) and the improver's info.

        Raises: VariantNotFoundError.
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
        """Compare-and-set the state; ``reason`` (if given) replaces the stored reason;
        ``release`` clears the owner. Returns whether it changed. Raises: VariantNotFoundError."""

    @abstractmethod
    def claim_variant(
        self,
        variant_id: int,
        owner: str,
        *,
        expected_owner: str | None,
        event: EventSpec | None = None,
    ) -> bool:
        """Compare-and-set the owner (and stamp ``heartbeat_at``). Raises: VariantNotFoundError."""

    @abstractmethod
    def heartbeat(self, owner: str, variant_ids: Sequence[int]) -> None:
        """Stamp ``heartbeat_at`` = now on those of ``variant_ids`` still owned by ``owner``."""

    @abstractmethod
    def update_variant_metrics(self, variant_id: int, metrics: Mapping[str, Any]) -> None:
        """Shallow-merge ``metrics`` into the variant's metrics. Raises: VariantNotFoundError."""

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
    ) -> int:
        """Insert an evaluation and denormalise its score/metrics on the variant atomically.

        Raises:
            DuplicateError: The variant already has an evaluation for ``stage``.
            VariantNotFoundError: No such variant.
        """

    @abstractmethod
    def list_evaluations(self, variant_id: int) -> list[EvaluationRecord]:
        """The variant's evaluations, ascending id."""

    # -- events -----------------------------------------------------------------------------
    @abstractmethod
    def add_event(
        self,
        run_id: int,
        kind: str,
        message: str = "",
        *,
        variant_id: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an event and return its id. Raises: RunNotFoundError."""

    @abstractmethod
    def list_events(
        self,
        run_id: int,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        kinds: Iterable[str] | None = None,
        variant_id: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[EventRecord]:
        """Events with ``after_id`` < id < ``before_id`` (optionally filtered), at most ``limit``,
        in ascending id order (descending with ``newest_first``: the latest ``limit`` events)."""

    # -- LLM calls --------------------------------------------------------------------------
    @abstractmethod
    def add_llm_call(
        self,
        run_id: int,
        *,
        key: str,
        provider: str,
        model: str,
        request: Mapping[str, Any],
        reply: str | None = None,
        error: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        latency: float = 0.0,
        cached: bool = False,
        attempt: int = 1,
        purpose: str = "",
        variant_id: int | None = None,
    ) -> int:
        """Record one LLM call and return its id.

        Raises:
            RunNotFoundError: No such run.
            VariantNotFoundError: ``variant_id`` is given and no such variant exists.
            StorageError: ``request`` is not JSON-compatible.
        """

    @abstractmethod
    def list_llm_calls(
        self,
        run_id: int,
        *,
        variant_id: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[LLMCallRecord]:
        """The run's LLM calls with id > ``after_id`` (optionally of one variant), ascending id.

        Raises:
            RunNotFoundError: No such run.
        """

    def llm_usage(self, run_id: int, *, variant_id: int | None = None) -> dict[str, Any]:
        """Totals of the run's (or one variant's) LLM calls, counted as the gateway counts.

        Returns:
            ``calls`` (answered, cache hits included), ``cached``, ``errors`` (failed
            attempts), ``prompt_tokens`` and ``completion_tokens`` (cache hits excluded) and
            ``cost`` (US dollars).

        Raises:
            RunNotFoundError: No such run.
        """
        totals: dict[str, Any] = dict.fromkeys(
            ("calls", "cached", "errors", "prompt_tokens", "completion_tokens"), 0
        )
        totals["cost"] = 0.0
        for call in self.list_llm_calls(run_id, variant_id=variant_id):
            if call.error is not None:
                totals["errors"] += 1
                continue
            totals["calls"] += 1
            if call.cached:
                totals["cached"] += 1
                continue
            totals["prompt_tokens"] += call.prompt_tokens
            totals["completion_tokens"] += call.completion_tokens
            totals["cost"] += call.cost
        return totals

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the object must not be used afterwards."""

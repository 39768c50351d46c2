"""What goes into a storage and what comes out: status enums, specs and frozen records.

Specs (:class:`RunSpec`, :class:`LLMCallSpec`, :class:`EventSpec`) are what a caller hands to a
storage method, whole; records (:class:`RunRecord`, :class:`VariantRecord`, …) are the frozen
snapshots the storage hands back. The contract is in :mod:`hyperagents.storages._base`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

__all__ = [
    "CheckpointRecord",
    "EngineRecord",
    "EngineStatus",
    "EvaluationRecord",
    "EvaluationSpec",
    "EventRecord",
    "EventSpec",
    "LLMCallRecord",
    "LLMCallSpec",
    "RunRecord",
    "RunSpec",
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


@dataclass(frozen=True, kw_only=True)
class EvaluationSpec:
    """One stage's evaluation, as :meth:`~hyperagents.storages.BaseStorage.add_evaluations`
    records it (the fields are :meth:`~hyperagents.storages.BaseStorage.add_evaluation`'s)."""

    stage: str
    split: str
    score: float
    n: int
    results: Sequence[Mapping[str, Any]]
    metrics: Mapping[str, Any]
    event: EventSpec | None = None


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """A run to create (:meth:`~hyperagents.storages.BaseStorage.create_run`).

    Attributes:
        name: The run's name, unique in the storage.
        task: The task as the run loads it again (a registered name, ``"path.py:Class"``…).
        mode: ``"hyperagent"``, ``"frozen-meta"`` or ``"no-archive"``.
        seed: Seed of every random choice in the run.
        config: The run's configuration (JSON).
        seed_program_id: The stored seed program.
        task_name: The task's own name (``Task.name``), which ``task`` may only point to.
        experiment: The experiment the run is part of (see :mod:`hyperagents.reports`).
        arm: The group the run is compared in within its experiment (e.g.
            ``"frozen-meta+transfer"``); None: its mode.
        target_generations: The generation target, stored with the run so that an engine
            started later goes on to it; None: set by the first engine.
        attrs: Free-form attributes (JSON) that no part of hyperagents reads as run state.
    """

    name: str
    task: str
    mode: str
    seed: int
    config: Mapping[str, Any]
    seed_program_id: str
    task_name: str | None = None
    experiment: str | None = None
    arm: str | None = None
    target_generations: int | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LLMCallSpec:
    """One call (attempt) to a language model, to record
    (:meth:`~hyperagents.storages.BaseStorage.add_llm_call`).

    Attributes:
        key: Content address of the request (provider, model, messages, parameters).
        provider: The provider's name.
        model: The model requested.
        request: The request: ``{"messages": [...], "params": {...}}`` (never an API key; JSON).
        reply: The model's text, or None if the attempt failed.
        error: Why the attempt failed (None on success).
        prompt_tokens: Input tokens of the reply.
        completion_tokens: Output tokens of the reply.
        cost: US dollars charged for the attempt.
        latency: Seconds the attempt took.
        cached: Served from the response cache (no provider call, no cost).
        attempt: 1 for the first try of a request, 2… for its retries.
        purpose: What the call was for (``"improve"``, ``"solve"``, ``"review"``…).
        variant_id: The variant the call was made for, if any.
    """

    key: str
    provider: str
    model: str
    request: Mapping[str, Any]
    reply: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0
    cached: bool = False
    attempt: int = 1
    purpose: str = ""
    variant_id: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """Snapshot of a run.

    Attributes:
        attrs: Free-form attributes (JSON); run state has fields of its own.
        engine: Owner token of the engine process driving the run (None: no engine holds it).
        engine_heartbeat_at: When that engine last claimed or refreshed its hold.
        task_name: The task's own name (None: not recorded; ``task`` then says it).
        experiment: The experiment the run is part of, if any.
        arm: The group the run is compared in within its experiment (None: its mode).
        target_generations: The generation target (None: not set yet).
        elapsed_seconds: Engine time spent on the run so far (the time budget counts it).
        pinned_parent: The variant a person chose as the parent of the next child (used once).
        pinned_by: Who pinned it.
        banned: Variants a person banned, with their descendants, as parents.
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
    task_name: str | None = None
    experiment: str | None = None
    arm: str | None = None
    target_generations: int | None = None
    elapsed_seconds: float = 0.0
    pinned_parent: int | None = None
    pinned_by: str | None = None
    banned: frozenset[int] = frozenset()


@dataclass(frozen=True)
class VariantRecord:
    """Snapshot of a variant.

    Attributes:
        scores: ``{stage: aggregate score}`` for every evaluation stage recorded so far.
        metrics: ``{stage: {metric: value}}`` (wall/cpu time, peak memory, errors, …).
        meta_info: What the improver reported about how it made this child (JSON).
        owner: Token of the engine process working on it (None when terminal or unclaimed).
        engine: Owner token of the engine process that ran its meta agent (None: not run).
        worker: That engine's worker slot (0, 1, …) that ran it.
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
    engine: str | None = None
    worker: int | None = None


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation stage of a variant.

    Attributes:
        stage: ``"train_subset"``, ``"train"``, ``"val"``, ``"test"`` (or a task-defined stage).
        split: The split the instances came from.
        score: Aggregate score of the stage.
        results: Per-instance ``{"id", "score", "feedback", "output", "error", "wall", ...}``.
        metrics: Stage metrics (wall/cpu seconds, peak memory, error counts, …).
        engine: Owner token of the engine process that ran it (None: not recorded).
        worker: That engine's worker slot (0, 1, …).
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
    engine: str | None = None
    worker: int | None = None


class EngineStatus(IntEnum):
    """Whether an engine process that joined a run still works on it."""

    ACTIVE = 0  #: working on the run (while it beats)
    LEFT = 1  #: it stopped and let go of the run
    LOST = 2  #: it stopped beating (its process died); its work was taken over


@dataclass(frozen=True)
class EngineRecord:
    """One engine process that worked on a run (a row of the run's engines).

    Attributes:
        id: The row's id.
        run_id: The run.
        owner: The engine's owner token (what its variants' ``owner`` and ``engine`` say).
        host: The host it runs on.
        pid: Its process id on that host.
        workers: Its worker slots.
        status: Whether it still works on the run.
        joined_at: When it (last) started working on the run.
        heartbeat_at: When it last said it was alive.
        left_at: When it left (None while active).
    """

    id: int
    run_id: int
    owner: str
    host: str
    pid: int
    workers: int
    status: EngineStatus
    joined_at: datetime
    heartbeat_at: datetime
    left_at: datetime | None = None


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
    """One recorded call (attempt) to a language model: the fields of :class:`LLMCallSpec`,
    with the id, run and time the storage gave it."""

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


@dataclass(frozen=True)
class CheckpointRecord:
    """The newest checkpoint of a variant's training
    (:meth:`~hyperagents.storages.BaseStorage.get_checkpoint`).

    Attributes:
        run_id: The run.
        variant_id: The variant whose training wrote it.
        key: What the training that wrote it is (a hash of its inputs); a training with
            other inputs does not use it.
        step: The training step it holds the state after.
        files: Its files, name to bytes (a model's weights, an optimiser's state…).
        saved_at: When it was stored.
    """

    run_id: int
    variant_id: int
    key: str
    step: int
    files: Mapping[str, bytes]
    saved_at: datetime

    @property
    def size(self) -> int:
        """Bytes of its files, all together."""
        return sum(len(data) for data in self.files.values())

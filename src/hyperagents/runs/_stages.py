"""The stage plan: which instances each evaluation stage runs on, in which order, and running
one; and the pruner, the policy that stops a child after its cheap first stage.

A valid child is evaluated in stages: a seeded subset of train (``train_subset``), then — if the
pruner lets it go on — the rest of train (recorded as the full ``train`` score) and ``val``. A
would-be champion may be re-checked on held-out data (``recheck``, see the gate), and a champion
is scored on ``test`` for reporting only.

The subset's size and the pruner's margin default to ``auto``: :func:`subset_defaults` gives
them from the size of the train split when the run is created (:func:`resolve_subset`), and the
numbers are stored with the run, so a resumed run keeps them even if the rule changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from hyperagents.evaluation import (
    StageResult,
    ValidationResult,
    evaluate_stage,
    validate_and_evaluate,
)
from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.runs._config import RunConfig
from hyperagents.runs._context import RunContext
from hyperagents.runs._timeouts import AdaptiveTimeouts
from hyperagents.storages import EvaluationSpec, EventSpec, VariantRecord
from hyperagents.tasks import Instance, Split
from hyperagents.weights import entry_points_of

__all__ = [
    "FIRST_STAGE",
    "REPORT_STAGES",
    "STAGES",
    "SUBSET_FRACTION",
    "SUBSET_MARGIN_MIN",
    "SUBSET_MAX",
    "SUBSET_MIN",
    "Pruner",
    "StagePlan",
    "SubsetPruner",
    "resolve_subset",
    "subset_defaults",
]

#: Evaluation stages in order. ``test`` is only run for champions and never shown to agents.
STAGES = ("train_subset", "train", "val", "test")

#: The stages whose scores meta agents see.
REPORT_STAGES = ("train_subset", "train", "val")

#: The stages every valid child goes through, in order (before a re-check).
_EVALUATION_ORDER = ("train_subset", "train", "val")

#: The stage a child is evaluated on in the process that validates it (unless it is empty:
#: see :meth:`StagePlan.run_validated`).
FIRST_STAGE = _EVALUATION_ORDER[0]

#: ``subset_size: auto``: this fraction of the train split, rounded up ...
SUBSET_FRACTION = 0.25
#: ... at least this many instances (a train split of up to twice as many is evaluated whole
#: in the first stage: a subset would save little and say less) ...
SUBSET_MIN = 10
#: ... and at most this many.
SUBSET_MAX = 50
#: ``subset_margin: auto``: the largest standard error the mean of the first stage's scores
#: can have, ``0.5 / sqrt(size)`` of the score range, and at least this fraction of it.
SUBSET_MARGIN_MIN = 0.1


def subset_defaults(n_train: int, size: int | None = None) -> tuple[int, float]:
    """What ``auto`` means for the first stage of a task with ``n_train`` train instances:
    its size, and the margin by which a child may fall below its parent there.

    The size is ``ceil(SUBSET_FRACTION * n_train)`` clamped to ``[SUBSET_MIN, SUBSET_MAX]``;
    a train split of at most ``2 * SUBSET_MIN`` instances is evaluated whole (the first stage
    is all of train, and the pruner decides whether ``val`` is run). The margin is
    ``max(SUBSET_MARGIN_MIN, 0.5 / sqrt(size))`` (to 3 decimals), ``size`` at most the train
    split's: a child that one unlucky draw of the subset could put there is not pruned.
    400 train instances give 50 and 0.1 (the defaults before ``auto``), 60 give 15 and 0.129,
    40 give 10 and 0.158, 20 give 20 and 0.112, 4 give 4 and 0.25.

    Args:
        n_train: The train split's size.
        size: The subset's size when it is given (the margin then follows from it).
    """
    if size is None:
        if n_train <= 2 * SUBSET_MIN:
            size = max(1, n_train)
        else:
            size = min(SUBSET_MAX, max(SUBSET_MIN, math.ceil(SUBSET_FRACTION * n_train)))
    actual = max(1, min(size, n_train))
    return size, max(SUBSET_MARGIN_MIN, round(0.5 / math.sqrt(actual), 3))


def resolve_subset(config: RunConfig, n_train: int) -> RunConfig:
    """``config`` with ``subset_size`` and ``subset_margin`` that say ``auto`` replaced by
    :func:`subset_defaults` for ``n_train`` train instances (values given stay as they are)."""
    size, margin = config.subset_size, config.subset_margin
    if size != "auto" and margin != "auto":
        return config
    auto_size, auto_margin = subset_defaults(n_train, None if size == "auto" else size)
    return config.model_copy(
        update={
            "subset_size": auto_size,
            "subset_margin": auto_margin if margin == "auto" else margin,
        }
    )


class Pruner(Protocol):
    """Decides whether a child stops after its train-subset stage."""

    def prune(self, score: float, parent_score: float | None) -> str | None:
        """Why a child with train-subset ``score`` is pruned (None: it goes on).

        Args:
            score: The child's train-subset score.
            parent_score: Its parent's train-subset score (None: the parent has none).
        """
        ...


@dataclass(frozen=True)
class SubsetPruner:
    """Prunes a child whose train-subset score is below an absolute threshold, or more than a
    margin (a fraction of the task's score range) below its parent's.

    Attributes:
        threshold: The lowest train-subset score that goes on (None: no threshold).
        margin: How far below the parent's score a child may fall, as a fraction of the score
            range (None: no margin).
        score_range: The task's ``(low, high)`` scores.
    """

    threshold: float | None = None
    margin: float | None = None
    score_range: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def from_config(cls, config: RunConfig, score_range: tuple[float, float]) -> SubsetPruner:
        """The pruner a run's ``subset_threshold`` and ``subset_margin`` describe (resolved:
        see :func:`resolve_subset`).

        Raises:
            ConfigError: ``subset_margin`` is still ``auto``.
        """
        margin = config.subset_margin
        if margin == "auto":
            raise ConfigError("subset_margin 'auto' is resolved when the run is created")
        return cls(config.subset_threshold, margin, score_range)

    def prune(self, score: float, parent_score: float | None) -> str | None:
        """Why a child with train-subset ``score`` is pruned (None: it goes on)."""
        if self.threshold is not None and score < self.threshold:
            return f"train-subset score {score:.6g} below the threshold {self.threshold:g}"
        if self.margin is not None and parent_score is not None:
            low, high = self.score_range
            floor = parent_score - self.margin * (high - low)
            if score < floor:
                return (
                    f"train-subset score {score:.6g} more than {self.margin:g} of the range "
                    f"below the parent's {parent_score:.6g}"
                )
        return None


class StagePlan:
    """The stages of a run's evaluation: their order, their instances, running and recording.

    Args:
        ctx: The run context.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._timeouts = AdaptiveTimeouts(ctx)
        #: Train-subset results of children in progress (the full train score merges them).
        self._subset_results: dict[int, StageResult] = {}

    def pending(self, variant: VariantRecord, *, recheck: bool) -> list[str]:
        """The stages ``variant`` still lacks, in order (``recheck`` last when it is due)."""
        stages = [*_EVALUATION_ORDER, "recheck"] if recheck else list(_EVALUATION_ORDER)
        return [s for s in stages if s not in variant.scores]

    def instances(self, stage: str, variant: VariantRecord) -> tuple[Split, list[Instance]]:
        """The split and the instances of ``stage`` for ``variant``."""
        ctx = self._ctx
        if stage in ("train_subset", "train"):
            subset = set(ctx.subset())
            inside = stage == "train_subset"
            chosen = [i for i in ctx.instances(Split.TRAIN) if (i.id in subset) is inside]
            return Split.TRAIN, chosen
        if stage == "recheck":
            fresh = ctx.task.holdout_instances(ctx.derive_seed(variant.generation, "holdout"))
            return Split.VAL, list(fresh) if fresh else list(ctx.instances(Split.VAL))
        split = Split(stage)
        return split, list(ctx.instances(split))

    def run(self, variant: VariantRecord, stage: str) -> tuple[StageResult, float]:
        """Evaluate ``variant`` on ``stage`` (``train`` merged with its subset's results).

        Returns:
            The stage's result and the seconds spent in the sandbox.

        Raises:
            SandboxError: The sandbox kept breaking.
        """
        ctx = self._ctx
        program, split, instances = self._work(variant, stage)
        timeouts = self._timeouts.limits(variant, stage, instances)
        wall = self._timeouts.stage_wall(instances, timeouts)
        if instances:
            holdout = stage == "recheck" and instances[0].id.startswith("holdout")
            result = ctx.retry(
                lambda: evaluate_stage(
                    program,
                    task=ctx.task,
                    instances=instances,
                    stage=stage,
                    split="holdout" if holdout else split.value,
                    sandbox=ctx.sandbox,
                    limits=ctx.limits(wall),
                    llm=ctx.llm_handler(variant.id, variant.generation, stage),
                    timeouts=timeouts,
                ),
                f"evaluating {variant.id} on {stage}",
            )
        else:  # e.g. the train subset already covers all of train: nothing to run
            result = StageResult(stage, split.value, ctx.task.aggregate([]), [], {"n": 0})
        sandbox = float(result.metrics.get("wall_seconds", 0.0))
        if stage == "train":
            result = self._with_subset(variant, result)
        return result, sandbox

    def run_validated(
        self, variant: VariantRecord, *, prune: Callable[[float], str | None]
    ) -> tuple[ValidationResult, list[StageResult], float]:
        """Validate a recorded child and evaluate it on its first stage that has instances, in
        one sandbox run.

        That stage is the train subset, unless it has no instances: then its (empty) result is
        known without a run, and so, unless ``prune`` stops the child on it, is the next one's,
        up to the first stage with instances (``val`` at the latest). The stages before it are
        returned scored as empty, exactly as :meth:`run` scores them; if ``prune`` stops the
        child on its empty subset, the run validates with the subset, as always.

        Its wall-clock limit comes in two parts: the validation has ``validate_timeout`` from
        the start, as when it ran alone; the stage then has its own limit (``instance_timeout``
        per instance plus ``eval_overhead``) from the validation's message. A hang is thus
        killed, and reported, exactly as before, and no run lasts longer than the two together.

        Args:
            variant: The child.
            prune: Why a child with this train-subset score stops there (None: it goes on).

        Returns:
            The validation, the results of the stages it covers in order (none: invalid),
            and the seconds spent in the sandbox.

        Raises:
            SandboxError: The sandbox kept breaking.
        """
        ctx = self._ctx
        stage, before = self._fold_target(variant, prune)
        program, split, instances = self._work(variant, stage)
        timeouts = self._timeouts.limits(variant, stage, instances)
        limits = replace(
            ctx.limits(self._timeouts.stage_wall(instances, timeouts)),
            validate_time=ctx.config.validate_timeout,
        )
        validation, result = ctx.retry(
            lambda: validate_and_evaluate(
                program,
                entry_points=entry_points_of(ctx.task.entry_points, program),
                task=ctx.task,
                instances=instances,
                stage=stage,
                split=split.value,
                sandbox=ctx.sandbox,
                limits=limits,
                llm=ctx.llm_handler(variant.id, variant.generation, stage),
                timeouts=timeouts,
            ),
            f"validating and evaluating {variant.id} on {stage}",
        )
        if result is None:
            return validation, [], validation.wall
        stage_wall = float(result.metrics.get("wall_seconds", 0.0))
        if stage == "train":
            result = self._with_subset(variant, result, subset=before[0])
        return validation, [*before, result], validation.wall + stage_wall

    def _fold_target(
        self, variant: VariantRecord, prune: Callable[[float], str | None]
    ) -> tuple[str, list[StageResult]]:
        """The stage a validation runs with, and the empty stages before it, scored."""
        before: list[StageResult] = []
        for stage in _EVALUATION_ORDER:
            split, instances = self.instances(stage, variant)
            if instances or stage == _EVALUATION_ORDER[-1]:
                return stage, before
            result = StageResult(stage, split.value, self._ctx.task.aggregate([]), [], {"n": 0})
            if stage == "train":
                result = self._with_subset(variant, result, subset=before[0])
            elif prune(result.score) is not None:
                return stage, []  # validated with its (empty) subset; pruned after it
            before.append(result)
        raise AssertionError("unreachable: the last stage is always returned")  # pragma: no cover

    def _work(self, variant: VariantRecord, stage: str) -> tuple[Program, Split, list[Instance]]:
        """What evaluating ``variant`` on ``stage`` takes: its program, the split, the instances."""
        assert variant.program_id is not None
        split, instances = self.instances(stage, variant)
        return self._ctx.program(variant.program_id), split, instances

    def _with_subset(
        self, variant: VariantRecord, rest: StageResult, *, subset: StageResult | None = None
    ) -> StageResult:
        """The full train result: the subset (given, or already evaluated) combined with the
        rest."""
        subset = subset if subset is not None else self._subset_results.get(variant.id)
        if subset is None:  # resumed: read it back
            record = next(
                e
                for e in self._ctx.storage.list_evaluations(variant.id)
                if e.stage == "train_subset"
            )
            subset = StageResult(
                record.stage,
                record.split,
                record.score,
                [dict(r) for r in record.results],
                dict(record.metrics),
            )
        order = {inst.id: k for k, inst in enumerate(self._ctx.instances(Split.TRAIN))}
        merged = sorted([*subset.results, *rest.results], key=lambda r: order[r["id"]])
        merged_results = [dict(r) for r in merged]
        score = self._ctx.task.aggregate([r["score"] for r in merged_results])
        metrics = merge_stage_metrics(subset.metrics, rest.metrics)
        return StageResult("train", rest.split, score, merged_results, metrics)

    def record(self, variant_id: int, result: StageResult, event: EventSpec) -> None:
        """Store a stage's evaluation with ``event`` (a train subset is also kept in memory
        for the full train score).

        Raises:
            DuplicateError: The stage is recorded already.
        """
        self.record_all(variant_id, [(result, event)])

    def record_all(
        self, variant_id: int, recorded: Sequence[tuple[StageResult, EventSpec]]
    ) -> None:
        """Store several stages' evaluations, each with its event, in one storage call (see
        :meth:`record`).

        Raises:
            DuplicateError: A stage is recorded already (then none of them is).
        """
        specs = [
            EvaluationSpec(
                stage=result.stage,
                split=result.split,
                score=result.score,
                n=result.n,
                results=result.results,
                metrics=result.metrics,
                event=event,
            )
            for result, event in recorded
        ]
        self._ctx.storage.add_evaluations(variant_id, specs, **self._ctx.stamp())
        for result, _ in recorded:
            if result.stage == "train_subset":
                self._subset_results[variant_id] = result

    def forget(self, variant_id: int) -> None:
        """Drop what is kept in memory for a variant that reached a final state."""
        self._subset_results.pop(variant_id, None)


def merge_stage_metrics(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics of two parts of one stage, combined (sums, maxima, weighted means)."""
    n_a, n_b = int(a.get("n", 0)), int(b.get("n", 0))
    merged: dict[str, Any] = {"n": n_a + n_b}
    for key in ("wall_seconds", "cpu_seconds", "errors", "timeouts"):
        merged[key] = (a.get(key) or 0) + (b.get(key) or 0)
    merged["peak_memory_mb"] = max(a.get("peak_memory_mb") or 0, b.get("peak_memory_mb") or 0)
    wa, wb = a.get("wall_per_instance"), b.get("wall_per_instance")
    if wa is not None and wb is not None and n_a + n_b:
        merged["wall_per_instance"] = (wa * n_a + wb * n_b) / (n_a + n_b)
    else:
        merged["wall_per_instance"] = wa if wa is not None else wb
    for key in ("sandbox_outcome", "sandbox_reason"):
        if key in b or key in a:
            merged[key] = b.get(key, a.get(key))
    if not math.isfinite(float(merged["peak_memory_mb"])):
        merged["peak_memory_mb"] = 0.0
    return merged

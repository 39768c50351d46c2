"""The advance side: drive one variant from whatever is recorded to a final state.

improvement (when its program is not recorded yet) → the training step (when the child plans a
weight update, see :mod:`hyperagents.runs._training`) → the constitution → validation and the
first evaluation stage (the train subset), in one sandbox run → the other stages, pruned after
the train subset when the pruner says so → the gate's settlement (complete, quarantined, or
waiting for approval). Every step is committed as it completes, in one transaction (a stage's
evaluation with the final state it leads to), so a variant picked up again after a crash goes
on from its last recorded step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hyperagents.evaluation import StageResult, ValidationResult
from hyperagents.exceptions import DuplicateError
from hyperagents.runs._context import RunContext
from hyperagents.runs._gate import Gate, Settlement
from hyperagents.runs._improve import Improvement
from hyperagents.runs._jobs import Job, Jobs
from hyperagents.runs._stages import Pruner, StagePlan
from hyperagents.runs._training import Training
from hyperagents.storages import EventSpec, VariantRecord, VariantState

__all__ = ["Advancer"]


@dataclass
class _Timing:
    """Where one :meth:`Advancer.advance` call's time went, for the variant's ``timing``
    metrics: written in the transaction that ends the variant's evaluation when there is one,
    else after the call.

    Attributes:
        start: ``time.perf_counter()`` when the call began.
        ask_seconds: The seconds asking for the variant took before it.
        sandbox_seconds: The seconds spent in the sandbox so far.
        written: The metrics are written in the transaction in progress (or committed).
    """

    start: float
    ask_seconds: float
    sandbox_seconds: float = 0.0
    written: bool = False

    def metrics(self) -> dict[str, Any]:
        """The ``timing`` metrics as of now."""
        total = time.perf_counter() - self.start + self.ask_seconds
        return {
            "total_seconds": total,
            "sandbox_seconds": self.sandbox_seconds,
            "engine_seconds": max(0.0, total - self.sandbox_seconds),
        }


class Advancer:
    """Drives variants to final states, and evaluates champions on the test split.

    Args:
        ctx: The run context.
        jobs: The ask side (to rebuild the job of a variant picked up before its improvement).
        improvement: The improvement step.
        plan: The stage plan.
        pruner: The policy that stops a child after its train subset.
        gate: The constitution, quarantine and approval.
    """

    def __init__(
        self,
        ctx: RunContext,
        *,
        jobs: Jobs,
        improvement: Improvement,
        plan: StagePlan,
        pruner: Pruner,
        gate: Gate,
    ) -> None:
        self._ctx = ctx
        self._jobs = jobs
        self._improvement = improvement
        self._plan = plan
        self._pruner = pruner
        self._gate = gate
        self._training = Training(ctx)

    def advance(
        self, variant_id: int, *, job: Job | None = None, record: VariantRecord | None = None
    ) -> None:
        """Drive a variant from whatever is recorded to a terminal state.

        The caller owns the variant while this runs, so after each of its own writes it
        updates its local copy of the record instead of reading it back.

        Args:
            variant_id: The variant.
            job: Its job, when the caller has it (else rebuilt if the improvement is due).
            record: Its record as the caller knows it is (else read).
        """
        timing = _Timing(time.perf_counter(), self._jobs.take_ask_seconds(variant_id))
        variant = record if record is not None else self._ctx.variant(variant_id)
        if variant.state is VariantState.RUNNING and variant.program_id is None:
            variant, seconds = self._improve(variant, job)
            timing.sandbox_seconds += seconds
        if self._training.due(variant):
            variant, seconds = self._training.run(variant)
            timing.sandbox_seconds += seconds
        if variant.state is VariantState.RUNNING and self._gate.judges:
            variant = self._gate.judge(variant)
        if variant.state is VariantState.RUNNING:
            variant = self._validate_and_evaluate(variant, timing)
        while variant.state is VariantState.EVALUATING:
            variant = self._evaluate_next_stage(variant, timing)
        if not timing.written:
            self._ctx.storage.update_variant_metrics(variant_id, {"timing": timing.metrics()})
        self._plan.forget(variant_id)
        if variant.state.is_terminal:
            self._jobs.reviews.after_evaluation(variant_id)  # (when the run has a reviewer)

    def _improve(self, variant: VariantRecord, job: Job | None) -> tuple[VariantRecord, float]:
        """Run the improver for a variant without a program and record what it made."""
        if job is None or job.variant_id != variant.id:
            job = self._jobs.build_job(variant, self._ctx.variants())
        result = self._improvement.run(job)
        self._ctx.check_budget(variant.id)
        return self._improvement.record(variant, job, result), float(
            result.metrics.get("wall", 0.0)
        )

    def _validate_and_evaluate(self, variant: VariantRecord, timing: _Timing) -> VariantRecord:
        """Validate a recorded child and evaluate its first stage in one sandbox run (the first
        with instances, see :meth:`StagePlan.run_validated`), then record it in one commit:
        ``RUNNING`` → ``INVALID`` with the reason, or ``RUNNING`` → ``EVALUATING`` with the
        stages' evaluations (and the final state when they end it).

        A crash before the commit leaves the child ``RUNNING``: it is validated and evaluated
        again.

        Returns:
            The variant's record after the step (``timing``: where the time went, told the
            seconds spent in the sandbox).
        """
        validation, results, seconds = self._plan.run_validated(
            variant, prune=lambda score: self._prune_reason(variant, score)
        )
        timing.sandbox_seconds += seconds
        self._ctx.check_budget(variant.id)

        def record() -> VariantRecord:
            current, changed = self._record_validation(variant, validation)
            if changed and results and current.state is VariantState.EVALUATING:
                current = self._record_stages(current, results, timing)
            return current

        return self._ctx.storage.atomically(record)

    def _prune_reason(self, variant: VariantRecord, score: float) -> str | None:
        """Why ``variant`` stops after a train-subset ``score`` (None: it goes on)."""
        if variant.parent_id is None:
            return None
        parent = self._ctx.terminal(variant.parent_id)
        return self._pruner.prune(score, parent.scores.get("train_subset"))

    def _record_validation(
        self, variant: VariantRecord, validation: ValidationResult
    ) -> tuple[VariantRecord, bool]:
        """Move a ``RUNNING`` child to ``EVALUATING`` if it is valid, else to ``INVALID`` with
        the reason; return its record and whether this engine made the change."""
        ctx = self._ctx
        if validation.ok:
            new_state = VariantState.EVALUATING
            changed = ctx.storage.set_variant_state(
                variant.id,
                new_state,
                expected=VariantState.RUNNING,
                event=EventSpec("variant.validated", "compiles, imports, entry points present"),
            )
        else:
            new_state = VariantState.INVALID
            changed = ctx.storage.set_variant_state(
                variant.id,
                new_state,
                expected=VariantState.RUNNING,
                reason=validation.reason,
                release=True,
                event=EventSpec(
                    "variant.invalid", validation.reason, {"errors": list(validation.errors)}
                ),
            )
        variant = replace(variant, state=new_state) if changed else ctx.variant(variant.id)
        return variant, changed

    def _evaluate_next_stage(self, variant: VariantRecord, timing: _Timing) -> VariantRecord:
        """Run the next missing stage of an ``EVALUATING`` variant (or finish it).

        Returns:
            The variant's record after the step (``timing``: where the time went, told the
            seconds spent in the sandbox).
        """
        # A would-be champion is re-checked on held-out data once it has its val score.
        recheck = "val" in variant.scores and self._gate.rechecks(variant)
        pending = self._plan.pending(variant, recheck=recheck)
        if not pending:
            return self._finish(variant, VariantState.COMPLETE, "evaluated")
        stage = pending[0]
        if stage == "train":
            # Checked here rather than right after the subset, so that a resumed variant whose
            # subset score was recorded just before a crash is judged the same way.
            why = self._prune_reason(variant, variant.scores["train_subset"])
            if why is not None:
                return self._finish(variant, VariantState.PRUNED, why)
        result, sandbox = self._plan.run(variant, stage)
        timing.sandbox_seconds += sandbox
        self._ctx.check_budget(variant.id)
        return self._ctx.storage.atomically(lambda: self._record_stages(variant, [result], timing))

    def _record_stages(
        self, variant: VariantRecord, results: Sequence[StageResult], timing: _Timing
    ) -> VariantRecord:
        """Record an ``EVALUATING`` variant's stage results in order, in one storage call, up
        to the one that ends its evaluation (then finish it, its ``timing`` written in the same
        transaction); the rest are not recorded."""
        timing.written = False  # (a retried transaction writes it again)
        recorded: list[StageResult] = []
        for result in results:
            recorded.append(result)
            if self._ends_evaluation(result.stage):
                break
        self._plan.record_all(
            variant.id,
            [
                (
                    result,
                    EventSpec(
                        "variant.evaluated",
                        f"{result.stage}: {result.score:.6g}",
                        {"stage": result.stage, "score": result.score, "n": result.n},
                    ),
                )
                for result in recorded
            ],
        )
        scores = {**variant.scores, **{result.stage: result.score for result in recorded}}
        variant = replace(variant, scores=scores)
        if self._ends_evaluation(recorded[-1].stage):
            variant = self._finish(variant, VariantState.COMPLETE, "evaluated", timing)
        return variant

    def _ends_evaluation(self, stage: str) -> bool:
        """Whether a variant is evaluated once ``stage`` is recorded (with quarantine on, the
        step after val decides whether a recheck is due)."""
        return stage == "recheck" or (stage == "val" and not self._ctx.config.quarantine)

    def _finish(
        self,
        variant: VariantRecord,
        state: VariantState,
        why: str,
        timing: _Timing | None = None,
    ) -> VariantRecord:
        """Move an evaluated variant to its final state: pruned, or what the gate settles
        (``timing``: where the time went, to write with the state, inside the caller's
        transaction)."""
        settled = (
            self._gate.settle(variant, why)
            if state is VariantState.COMPLETE
            else Settlement(state, "variant.pruned", why, why)
        )
        state, reason = settled.state, settled.reason
        if self._ctx.storage.set_variant_state(
            variant.id,
            state,
            expected=VariantState.EVALUATING,
            reason=reason,
            release=True,
            event=EventSpec(settled.kind, settled.message),
        ):
            if timing is not None:
                self._ctx.storage.update_variant_metrics(variant.id, {"timing": timing.metrics()})
                timing.written = True
            return replace(variant, state=state, reason=reason, owner=None)
        return self._ctx.variant(variant.id)

    def evaluate_test(self, variant_id: int) -> None:
        """Score a champion on the test split (for reporting only; once per variant)."""
        variant = self._ctx.variant(variant_id)
        if "test" in variant.scores:
            return
        result, _ = self._plan.run(variant, "test")
        self._ctx.check_budget(variant.id)
        event = EventSpec(
            "champion.test",
            f"new champion; test: {result.score:.6g}",
            {"stage": "test", "score": result.score, "val": variant.scores.get("val")},
        )
        with contextlib.suppress(DuplicateError):  # another engine recorded it first
            self._plan.record(variant.id, result, event)

"""The improvement step: run the improver on a job, and record what it produced.

A child program identical to its parent is never stored: the variant fails with the reason in
one transaction, so a crash cannot leave a clone that a resumed run would evaluate. What the
improver made (the program, its metrics, the variant's program and event) is recorded in one
transaction too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

from hyperagents.evaluation import BaselineImprover
from hyperagents.improvers import Improver, ImproveResult, MetaAgentImprover
from hyperagents.runs._config import Mode
from hyperagents.runs._context import RunContext
from hyperagents.runs._jobs import Job
from hyperagents.runs._training import choose_lever, strip_plan
from hyperagents.storages import EventSpec, VariantRecord, VariantState

__all__ = ["Improvement"]


class Improvement:
    """Runs the improver and records its outcome.

    Args:
        ctx: The run context.
        improver: Override the improver (default: the job program's own meta agent, or in a
            baseline mode the baseline's sampler).
    """

    def __init__(self, ctx: RunContext, improver: Improver | None = None) -> None:
        self._ctx = ctx
        self._improver = improver

    def run(self, job: Job) -> ImproveResult:
        """Run the improver on a job (every attempt with its own LLM handler).

        Raises:
            SandboxError: The sandbox broke (after the configured retries).
        """
        ctx = self._ctx
        improver = self._improver
        if improver is None and ctx.mode.baseline:
            improver = BaselineImprover(ctx.mode.value)  # trusted: runs here, never sandboxed
        elif improver is None:
            improver = MetaAgentImprover(
                sandbox=ctx.sandbox, limits=ctx.limits(ctx.config.meta_timeout)
            )

        def attempt() -> ImproveResult:
            request = job.request
            if request.llm is not None:
                # Every attempt gets its own handler (its own job token in the LLM record).
                handler = ctx.llm_handler(job.variant_id, job.generation, "improve")
                request = dataclasses.replace(request, llm=handler)
            return improver.improve(request)

        return ctx.retry(attempt, f"improving {job.variant_id}")

    def record(self, variant: VariantRecord, job: Job, result: ImproveResult) -> VariantRecord:
        """Store the improver's outcome; return the variant as it now is."""
        ctx = self._ctx
        metrics: dict[str, Any] = {"improve": dict(result.metrics)} if result.metrics else {}
        if result.logs:
            metrics.setdefault("improve", {})["log_tail"] = result.logs[-4000:]
        child = result.program
        changed: list[str] = []
        trains = False
        if child is not None:
            child, plan = strip_plan(child)  # the meta agent's choice, never stored with it
            if ctx.mode is Mode.FROZEN_META:
                # The meta level is frozen: whatever the meta agent did to meta files is dropped.
                child = ctx.with_seed_meta(child)
            parent = ctx.terminal(job.parent_id)
            assert parent.program_id is not None
            parent_program = ctx.program(parent.program_id)
            if not ctx.mode.baseline:
                child, metrics["training"] = choose_lever(ctx, child, parent_program, plan)
                trains = metrics["training"]["state"] == "due"
            changed = parent_program.changed_paths(child)
        if child is None or not (changed or trains):
            return self._fail(variant, result, metrics, unchanged=child is not None)
        stored = child

        def record() -> str:
            program_id = ctx.storage.put_program(stored)
            if metrics:
                ctx.storage.update_variant_metrics(variant.id, metrics)
            ctx.storage.set_variant_program(
                variant.id,
                program_id,
                meta_info=result.meta_info,
                event=EventSpec(
                    "variant.improved", _improved(changed, metrics), {"changed": changed}
                ),
                **ctx.stamp(),
            )
            return program_id

        program_id = ctx.storage.atomically(record)
        ctx.remember_program(program_id, child)  # validation reads it next
        return replace(
            variant,
            program_id=program_id,
            meta_info=dict(result.meta_info),
            metrics={**variant.metrics, **metrics},
        )

    def _fail(
        self,
        variant: VariantRecord,
        result: ImproveResult,
        metrics: dict[str, Any],
        *,
        unchanged: bool,
    ) -> VariantRecord:
        """End a variant whose improver produced no program, or no change, in ``FAILED``."""
        storage = self._ctx.storage
        if not unchanged:
            reason = result.reason or "improver produced no program"
        else:
            reason = "the meta agent made no change"
            info = result.meta_info or {}
            said = info.get("error") or info.get("reason")  # why it says it changed nothing
            if isinstance(said, str) and said.strip():
                reason += f": {said.strip()[:500]}"
        if result.meta_info:
            metrics.setdefault("improve", {})["meta_info"] = dict(result.meta_info)

        def record() -> VariantRecord:
            if metrics:
                storage.update_variant_metrics(variant.id, metrics)
            storage.set_variant_state(
                variant.id,
                VariantState.FAILED,
                expected=VariantState.RUNNING,
                reason=reason,
                release=True,
                event=EventSpec("variant.failed", reason),
            )
            return storage.get_variant(variant.id)

        return storage.atomically(record)


def _improved(changed: list[str], metrics: dict[str, Any]) -> str:
    """The message of a ``variant.improved`` event: what changed, and a weight update due."""
    message = f"changed {', '.join(changed)}" if changed else "no code change"
    training = metrics.get("training") or {}
    if training.get("state") == "due":
        message += f"; lever {training['lever']}: training due"
    return message

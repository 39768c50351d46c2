"""The report a meta agent is given with its job: the task, its parent, the parent's train
results and a window of the archive.

Agents see run-local identities (generation numbers), never storage ids, and never test data
or targets: the same run gives the same report, and so the same LLM prompts, in any storage
(replay relies on it).
"""

from __future__ import annotations

from typing import Any

from hyperagents.archive import ArchiveView
from hyperagents.runs._context import RunContext
from hyperagents.runs._stages import REPORT_STAGES
from hyperagents.storages import VariantRecord, VariantState
from hyperagents.tasks import Split

__all__ = ["Reports", "reported_state"]


def reported_state(variant: VariantRecord) -> str:
    """A variant's state as meta agents see it: one that people may still decide about (or
    decided about after its evaluation) reads "complete", so a job's report, and the prompts
    made from it, never depend on when someone approved or rejected."""
    if variant.state in (VariantState.PENDING, VariantState.REJECTED) and "val" in variant.scores:
        return "complete"
    return variant.state.name.lower()


class Reports:
    """Builds the reports of a run's jobs (caching what never changes).

    Args:
        ctx: The run context.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._evaluations: dict[int, dict[str, Any]] = {}
        self._train_inputs: list[dict[str, Any]] | None = None

    def report(
        self,
        variant: VariantRecord,
        parent: VariantRecord,
        snapshot: ArchiveView,
        target: int | None,
    ) -> dict[str, Any]:
        """The report for ``variant``'s job.

        Args:
            variant: The child being made.
            parent: Its parent.
            snapshot: The generations settled when the child was asked.
            target: The generation target of the drive in progress (None: the stored one).
        """
        ctx = self._ctx
        cfg = ctx.config
        generation_of = {v.id: v.generation for v in snapshot}
        archive = [
            {
                "variant_id": v.generation,
                "generation": v.generation,
                "parent_id": None if v.parent_id is None else generation_of.get(v.parent_id),
                "state": reported_state(v),
                "scores": {k: s for k, s in v.scores.items() if k in REPORT_STAGES},
                "meta_info": dict(v.meta_info),
            }
            for v in snapshot.variants[-cfg.report_archive :]
            if cfg.report_archive
        ]
        if target is None:
            target = ctx.target_generations()
        return {
            "task": {
                "name": ctx.task.name,
                "description": ctx.task.description,
                "score_range": list(ctx.task.score_range),
            },
            "mode": ctx.mode.value,
            "generation": variant.generation,
            "generations_left": None if target is None else max(0, target - variant.generation),
            "seed": ctx.derive_seed(variant.generation, "meta"),
            "parent": {
                "variant_id": parent.generation,
                "generation": parent.generation,
                "scores": {k: s for k, s in parent.scores.items() if k in REPORT_STAGES},
                "meta_info": dict(parent.meta_info),
            },
            "evaluation": self._evaluation(parent.id),
            "train_inputs": self._shown_train_inputs(),
            "archive": archive,
        }

    def _shown_train_inputs(self) -> list[dict[str, Any]]:
        """The first train instances' inputs (cached)."""
        if self._train_inputs is None:
            self._train_inputs = [
                {"id": inst.id, "inputs": inst.inputs}
                for inst in self._ctx.instances(Split.TRAIN)[: self._ctx.config.report_results]
            ]
        return self._train_inputs

    def _evaluation(self, parent_id: int) -> dict[str, Any]:
        """The parent's train results as shown to meta agents (cached: they never change)."""
        cached = self._evaluations.get(parent_id)
        if cached is not None:
            return cached
        evaluations = {e.stage: e for e in self._ctx.storage.list_evaluations(parent_id)}
        source = evaluations.get("train") or evaluations.get("train_subset")
        results = []
        if source is not None:
            for r in list(source.results)[: self._ctx.config.report_results]:
                results.append({k: r.get(k) for k in ("id", "score", "feedback", "output")})
        report = {
            "stage": source.stage if source else None,
            "score": source.score if source else None,
            "results": results,
        }
        if source is not None and source.stage == "train":
            with self._ctx.lock:
                if len(self._evaluations) > 512:
                    self._evaluations.clear()
                self._evaluations[parent_id] = report
        return report

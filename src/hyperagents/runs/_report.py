"""The report a meta agent is given with its job: the task, its parent, the parent's train
results and a summary of the archive's latest variants.

Agents see run-local identities (generation numbers), never storage ids, and never test data
or targets: the same run gives the same report, and so the same LLM prompts, in any storage
(replay relies on it).

With a reviewer (``review`` on), ``reviews`` holds the latest ``review_latest`` reviews of the
generations the job may see (see :mod:`hyperagents.runs._review`), nothing of the history the
reviewer read.

The archive part is bounded: the latest ``report_archive`` variants at most, each summarised
(:func:`archive_entry`: its ids, state, scores and the few keys of its ``meta_info`` that meta
agents read of one another's edits, each of bounded size), as many of the latest as fit in
``report_archive_bytes`` of JSON. The parent's own ``meta_info`` is given whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hyperagents.archive import ArchiveView
from hyperagents.runs._context import RunContext
from hyperagents.runs._stages import REPORT_STAGES
from hyperagents.storages import VariantRecord, VariantState
from hyperagents.tasks import Split

if TYPE_CHECKING:
    from hyperagents.runs._review import Reviews

__all__ = [
    "SUMMARY_KEYS",
    "SUMMARY_TEXT_CHARS",
    "SUMMARY_VALUE_BYTES",
    "Reports",
    "archive_entry",
    "archive_summary",
    "reported_state",
]

#: The keys of a variant's ``meta_info`` an archive entry keeps: what the seed meta agents read
#: of earlier edits (the offline agent: ``operator``, ``changes``, ``params`` and, for an edit of
#: the code, ``structure``: its kind, function, old and new text, each bounded by the agent,
#: which its crossover re-makes on other parents; the LLM agent: ``operator`` and ``summary``,
#: ``reason`` or ``error``).
SUMMARY_KEYS = ("operator", "changes", "params", "structure", "summary", "reason", "error")
#: A string value longer than this (characters) is cut, ending in "…".
SUMMARY_TEXT_CHARS = 500
#: A value whose JSON is longer than this (bytes) is left out and named in ``omitted``.
SUMMARY_VALUE_BYTES = 2048


def reported_state(variant: VariantRecord) -> str:
    """A variant's state as meta agents see it: one that people may still decide about (or
    decided about after its evaluation) reads "complete", so a job's report, and the prompts
    made from it, never depend on when someone approved or rejected."""
    if variant.state in (VariantState.PENDING, VariantState.REJECTED) and "val" in variant.scores:
        return "complete"
    return variant.state.name.lower()


def meta_summary(meta_info: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`SUMMARY_KEYS` of ``meta_info`` that it has, each of bounded size: long
    strings cut, values still too large left out and named in ``omitted``."""
    summary: dict[str, Any] = {}
    omitted: list[str] = []
    for key in SUMMARY_KEYS:
        if key not in meta_info:
            continue
        value = meta_info[key]
        if isinstance(value, str) and len(value) > SUMMARY_TEXT_CHARS:
            value = value[: SUMMARY_TEXT_CHARS - 1] + "…"
        if len(json.dumps(value)) > SUMMARY_VALUE_BYTES:
            omitted.append(key)
        else:
            summary[key] = value
    if omitted:
        summary["omitted"] = omitted
    return summary


def archive_entry(variant: VariantRecord, generation_of: Mapping[int, int]) -> dict[str, Any]:
    """A variant as the report's archive shows it (``generation_of``: storage id → generation,
    for its parent)."""
    parent = variant.parent_id
    return {
        "variant_id": variant.generation,
        "generation": variant.generation,
        "parent_id": None if parent is None else generation_of.get(parent),
        "state": reported_state(variant),
        "scores": {k: s for k, s in variant.scores.items() if k in REPORT_STAGES},
        "meta_info": meta_summary(variant.meta_info),
    }


#: Archive entries as JSON, by what makes them: the variant's id, its state as reported and its
#: reported scores (a settled variant's entry never changes otherwise).
EntryCache = dict[tuple[int, str, tuple[tuple[str, float], ...]], str]


def archive_summary(
    variants: Sequence[VariantRecord],
    *,
    entries: int,
    max_bytes: int,
    cache: EntryCache | None = None,
) -> list[dict[str, Any]]:
    """The archive part of a report: the latest ``entries`` of ``variants`` at most, in order,
    as many of the latest as fit in ``max_bytes`` of JSON (``json.dumps`` of the list).

    Args:
        variants: The settled variants, in order.
        entries: How many of the latest to show at most.
        max_bytes: How much JSON they may take.
        cache: The entries of earlier reports, as JSON (read and filled; None: none kept).
            The entries returned are always fresh objects, whoever changes them.
    """
    if entries <= 0:
        return []
    generation_of = {v.id: v.generation for v in variants}
    shown: list[str] = []
    used = len("[]")
    for variant in reversed(variants[-entries:]):
        text = _entry_json(variant, generation_of, cache)
        size = len(text) + (len(", ") if shown else 0)
        if used + size > max_bytes:
            break
        shown.append(text)
        used += size
    shown.reverse()
    summary: list[dict[str, Any]] = json.loads("[" + ", ".join(shown) + "]")
    return summary


def _entry_json(
    variant: VariantRecord, generation_of: Mapping[int, int], cache: EntryCache | None
) -> str:
    """A variant's archive entry as JSON (from ``cache`` when it is there)."""
    scores = tuple(sorted((k, s) for k, s in variant.scores.items() if k in REPORT_STAGES))
    key = (variant.id, reported_state(variant), scores)
    text = cache.get(key) if cache is not None else None
    if text is None:
        text = json.dumps(archive_entry(variant, generation_of))
        if cache is not None:
            cache[key] = text
    return text


class Reports:
    """Builds the reports of a run's jobs (caching what never changes).

    Args:
        ctx: The run context.
        reviews: The run's reviewer, whose latest reviews a report shows (``reviews``) when
            the run has one.
    """

    def __init__(self, ctx: RunContext, reviews: Reviews | None = None) -> None:
        self._ctx = ctx
        self._reviews = reviews
        self._evaluations: dict[int, dict[str, Any]] = {}
        self._train_inputs: list[dict[str, Any]] | None = None
        self._entries: EntryCache = {}

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
        with ctx.lock:
            if len(self._entries) > 4 * max(cfg.report_archive, 256):
                self._entries.clear()  # bounded: the next reports make their entries again
            archive = archive_summary(
                snapshot.variants,
                entries=cfg.report_archive,
                max_bytes=cfg.report_archive_bytes,
                cache=self._entries,
            )
        if target is None:
            target = ctx.target_generations()
        report: dict[str, Any] = {
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
        if self._reviews is not None and self._reviews.enabled:
            report["reviews"] = self._reviews.latest(snapshot)
        feedback = list(ctx.task.feedback_examples())[: cfg.report_results]
        if feedback:  # only then: the reports (and prompts) of other runs stay as they were
            report["feedback_examples"] = [dict(example) for example in feedback]
        return report

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
        evaluations = {e.stage: e for e in self._ctx.parent_evaluations(parent_id)}
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

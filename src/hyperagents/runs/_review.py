"""The reviewer of runs with ``review`` on (level ``feedback``): after each child's benchmark,
its program's ``reviewer.py`` reads the run's whole history and returns a review; the meta
agents that come after are shown only the latest reviews.

Who sees what:

* the **reviewer** of generation *g* gets the history of every variant the run had settled when
  *g* was asked (generations ``<= g - parallel_generations``, at most ``review_history`` of the
  latest): each one's scores, state, the change that made it (files with lines added and
  removed, and what its meta agent said it did), its failing train instances, and every earlier
  review; and the child itself, with its evaluation. It runs in the sandbox, in a copy of the
  child's program (its parent's when the child has none), like any agent code, with the run's
  model through the sandbox's ``llm`` bridge;
* the **worker** (the meta agent of the next generations) gets ``reviews`` in its report: the
  latest ``review_latest`` reviews of the generations its job may see, nothing more.

A review is ``{issue_type, severity, fix_suggestion, confidence, pattern_detected}`` (and an
optional ``source``), parsed with bounds (:func:`parse_review`). Whatever the reviewer does —
crash, loop past its time limit, print or return too much, return something that is not a
review — is recorded as a ``variant.review_failed`` event and the run goes on; a review is a
``variant.reviewed`` event. Each child is reviewed once: right after its evaluation, or, where
a crash came between the two, before the next job that could be shown it is built.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hyperagents._validation import error_text
from hyperagents.archive import ArchiveView
from hyperagents.exceptions import SandboxError
from hyperagents.improvers import REVIEWER_FILE
from hyperagents.program import Program
from hyperagents.runs._context import RunContext
from hyperagents.runs._diffs import compare
from hyperagents.runs._report import meta_summary, reported_state
from hyperagents.runs._stages import REPORT_STAGES
from hyperagents.sandbox import InvalidMessage, loads_bounded, workspace
from hyperagents.storages import BaseStorage, VariantRecord

__all__ = [
    "REVIEW_BYTES",
    "REVIEW_KINDS",
    "SEVERITIES",
    "Review",
    "ReviewError",
    "Reviews",
    "parse_review",
    "stored_reviews",
]

SEVERITIES = ("none", "low", "medium", "high", "critical")
#: The events a review leaves: one of them per reviewed child.
REVIEWED, REVIEW_FAILED = "variant.reviewed", "variant.review_failed"
REVIEW_KINDS = (REVIEWED, REVIEW_FAILED)
#: The largest review (bytes of JSON) accepted from a reviewer.
REVIEW_BYTES = 16 * 1024
#: Failing train instances listed per variant, and those of the reviewed child with feedback.
_FAILED_IDS, _FEEDBACK = 50, 20


def _cut(limit: int) -> Any:
    """A validator that cuts a string to ``limit`` characters (ending in "…")."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > limit:
            return value[: limit - 1] + "…"
        return value

    return cut


class Review(BaseModel):
    """A reviewer's answer, as stored and shown (strings cut to their limits)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    issue_type: str = Field(min_length=1)
    severity: Literal["none", "low", "medium", "high", "critical"]
    fix_suggestion: str
    confidence: float = Field(ge=0.0, le=1.0)
    pattern_detected: str | None = None
    source: str | None = None

    _issue = field_validator("issue_type", mode="before")(_cut(64))
    _fix = field_validator("fix_suggestion", mode="before")(_cut(2000))
    _pattern = field_validator("pattern_detected", mode="before")(_cut(500))
    _source = field_validator("source", mode="before")(_cut(200))

    @field_validator("confidence", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        """An int counts as a float (a bool does not)."""
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ReviewError(ValueError):
    """A reviewer's output is not a review."""


def parse_review(value: Any) -> dict[str, Any]:
    """A reviewer's result (a dict, or JSON text of one) as a bounded review.

    Raises:
        ReviewError: It is too large, too deep, not JSON, or not a review (the message says
            which field).
    """
    try:
        text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
        parsed = loads_bounded(text, max_depth=4, max_bytes=REVIEW_BYTES)
    except (InvalidMessage, TypeError, ValueError) as exc:
        raise ReviewError(f"not a review: {str(exc)[:300]}") from None
    if not isinstance(parsed, dict):
        raise ReviewError(f"not a review: a {type(parsed).__name__}, not an object")
    try:
        return Review.model_validate(parsed).model_dump()
    except ValidationError as exc:
        text = error_text(exc, where="review", written_only=False)
        raise ReviewError(f"not a review: {text}") from None


class Reviews:
    """Runs a run's reviewer and reads its reviews back (caching what never changes).

    Args:
        ctx: The run context.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._outcomes: dict[int, dict[str, Any]] = {}  # variant id → review or {"error"}
        self._entries: dict[int, dict[str, Any]] = {}  # settled variant id → history entry

    @property
    def enabled(self) -> bool:
        """Whether the run has a reviewer (``review`` on)."""
        return self._ctx.config.review

    # -- reading -------------------------------------------------------------------------------
    def outcomes(self) -> dict[int, dict[str, Any]]:
        """Every reviewed child's outcome by variant id: its review, or ``{"error": why}``
        (the first recorded, where a crash left two)."""
        ctx = self._ctx
        found = stored_reviews(ctx.storage, ctx.run_id)
        with ctx.lock:
            for variant_id, outcome in found.items():
                self._outcomes.setdefault(variant_id, outcome)
            return dict(self._outcomes)

    def latest(self, snapshot: ArchiveView) -> list[dict[str, Any]]:
        """The latest ``review_latest`` reviews of ``snapshot``'s variants, oldest first, each
        with its variant's generation (what a meta agent's report shows)."""
        count = self._ctx.config.review_latest
        outcomes = self.outcomes()
        found = [
            {"generation": v.generation, **outcomes[v.id]}
            for v in snapshot
            if v.id in outcomes and "error" not in outcomes[v.id]
        ]
        return found[-count:] if count else []

    # -- reviewing -----------------------------------------------------------------------------
    def ensure(self, snapshot: ArchiveView) -> None:
        """Review the settled children of ``snapshot`` that have no recorded outcome (a crash
        came between their evaluation and their review), oldest first."""
        if not self.enabled:
            return
        done = self.outcomes()
        for variant in snapshot:
            if variant.generation > 0 and variant.state.is_terminal and variant.id not in done:
                self.review(variant)

    def after_evaluation(self, variant_id: int) -> None:
        """Review a child that has just reached its final state (when the run has a reviewer
        and it has not been reviewed)."""
        if not self.enabled:
            return
        variant = self._ctx.variant(variant_id)
        settled = variant.generation > 0 and variant.state.is_terminal
        if settled and variant_id not in self.outcomes():
            self.review(variant)

    def review(self, variant: VariantRecord) -> None:
        """Run the reviewer on a settled child and record its review (or why there is none)."""
        ctx = self._ctx
        start = time.perf_counter()
        history = self.history(variant)
        outcome: dict[str, Any]
        try:
            result = self._run(variant, history)
            outcome = parse_review(result)
        except ReviewError as exc:
            outcome = {"error": str(exc)}
        seconds = time.perf_counter() - start  # what the review cost (reports count it)
        ctx.storage.update_variant_metrics(variant.id, {"review": {"seconds": seconds}})
        if "error" in outcome:
            ctx.event(REVIEW_FAILED, outcome["error"][:1000], variant.id, reason=outcome["error"])
        else:
            message = f"{outcome['severity']} {outcome['issue_type']}: {outcome['fix_suggestion']}"
            ctx.event(REVIEWED, message[:500], variant.id, review=outcome)
        with ctx.lock:
            self._outcomes.setdefault(variant.id, outcome)

    def _run(self, variant: VariantRecord, history: dict[str, Any]) -> Any:
        """The reviewer's result, run in the sandbox in a copy of the child's program.

        Raises:
            ReviewError: The program has no reviewer, or the reviewer failed.
        """
        ctx = self._ctx
        program = self._program(variant)
        if program is None or REVIEWER_FILE not in program:
            raise ReviewError(f"the program has no {REVIEWER_FILE}")
        request = {
            "action": "improve",  # the harness calls module.function(workspace, report)
            "module": REVIEWER_FILE.removesuffix(".py"),
            "function": "review",
            "report": history,
            "seed": ctx.derive_seed(variant.generation, "review"),
        }
        llm = ctx.llm_handler(variant.id, variant.generation, "review")
        extra = {"llm": llm} if llm is not None else {}
        limits = ctx.limits(ctx.config.review_timeout)
        try:
            with workspace(program) as path:
                result = ctx.retry(
                    lambda: ctx.sandbox.run(path, request, limits=limits, **extra),
                    f"reviewing {variant.id}",
                )
        except SandboxError as exc:  # the run goes on without this review
            raise ReviewError(f"the sandbox broke while reviewing: {str(exc)[:300]}") from None
        if not result.ok:
            raise ReviewError(f"the reviewer failed: {result.reason[:500]}")
        return result.result

    def _program(self, variant: VariantRecord) -> Program | None:
        """The program the reviewer runs in: the child's, else its parent's."""
        ctx = self._ctx
        if variant.program_id is not None:
            return ctx.program(variant.program_id)
        if variant.parent_id is None:
            return None
        parent = ctx.terminal(variant.parent_id)
        return ctx.program(parent.program_id) if parent.program_id is not None else None

    # -- what the reviewer reads ---------------------------------------------------------------
    def history(self, variant: VariantRecord) -> dict[str, Any]:
        """What the reviewer of ``variant`` is given (see the module docstring)."""
        ctx = self._ctx
        horizon = ctx.horizon(variant.generation)
        variants = ArchiveView.of(ctx.variants()).settled(horizon).variants
        earlier = list(variants[-ctx.config.review_history :])
        generation_of = {v.id: v.generation for v in variants}
        generation_of[variant.id] = variant.generation
        outcomes = self.outcomes()
        child = self.entry(variant, generation_of)
        child["feedback"] = self._feedback(variant)
        return {
            "task": {
                "name": ctx.task.name,
                "description": ctx.task.description,
                "score_range": list(ctx.task.score_range),
            },
            "llm": ctx.llm is not None,
            "variant": child,
            "history": [self.entry(v, generation_of) for v in earlier],
            "reviews": [
                {"generation": v.generation, **outcomes[v.id]}
                for v in earlier
                if v.id in outcomes and "error" not in outcomes[v.id]
            ],
        }

    def entry(self, variant: VariantRecord, generation_of: Mapping[int, int]) -> dict[str, Any]:
        """A variant as the reviewer's history shows it (cached once it has settled)."""
        cached = self._entries.get(variant.id)
        if cached is not None:
            return dict(cached)
        parent = variant.parent_id
        entry = {
            "generation": variant.generation,
            "parent": None if parent is None else generation_of.get(parent),
            "state": reported_state(variant),
            "reason": (variant.reason or "")[:300],
            "scores": {k: s for k, s in variant.scores.items() if k in REPORT_STAGES},
            "change": self._change(variant),
            "failed": self._failed_ids(variant),
        }
        if variant.state.is_terminal:
            with self._ctx.lock:
                if len(self._entries) > 8192:
                    self._entries.clear()
                self._entries[variant.id] = entry
        return dict(entry)

    def _change(self, variant: VariantRecord) -> dict[str, Any]:
        """The change that made ``variant``: files with lines added and removed, and what its
        meta agent said it did (the bounded summary meta agents see of each other)."""
        ctx = self._ctx
        change: dict[str, Any] = dict(meta_summary(variant.meta_info))
        if variant.parent_id is None or variant.program_id is None:
            return change
        parent = ctx.terminal(variant.parent_id)
        if parent.program_id is None:
            return change
        diff = compare(ctx.program(parent.program_id), ctx.program(variant.program_id))
        change["files"] = {f.path: [f.added, f.removed] for f in diff.files[:50]}
        return change

    def _train_results(self, variant: VariantRecord) -> list[Mapping[str, Any]]:
        """The variant's per-instance train results (its train stage, else its subset)."""
        stages = {e.stage: e for e in self._ctx.storage.list_evaluations(variant.id)}
        source = stages.get("train") or stages.get("train_subset")
        return list(source.results) if source is not None else []

    def _failed_ids(self, variant: VariantRecord) -> list[str] | None:
        """The train instances the variant did not get the top score on (None: not evaluated)."""
        results = self._train_results(variant)
        if not results:
            return None
        top = self._ctx.task.score_range[1] - 1e-9
        failed = [str(r.get("id")) for r in results if float(r.get("score") or 0.0) < top]
        return failed[:_FAILED_IDS]

    def _feedback(self, variant: VariantRecord) -> list[dict[str, Any]]:
        """The reviewed child's lowest-scoring train instances with their feedback."""
        results = sorted(self._train_results(variant), key=lambda r: float(r.get("score") or 0.0))
        top = self._ctx.task.score_range[1] - 1e-9
        return [
            {"id": r.get("id"), "score": r.get("score"), "feedback": str(r.get("feedback"))[:300]}
            for r in results[:_FEEDBACK]
            if float(r.get("score") or 0.0) < top
        ]


def stored_reviews(storage: BaseStorage, run_id: int) -> dict[int, dict[str, Any]]:
    """Every reviewed child's outcome in a run, by variant id: its review, or
    ``{"error": why}`` (the first recorded, where a crash left two)."""
    outcomes: dict[int, dict[str, Any]] = {}
    for event in storage.list_events(run_id, kinds=list(REVIEW_KINDS)):
        if event.variant_id is None or event.variant_id in outcomes:
            continue
        review = event.data.get("review")
        outcomes[event.variant_id] = (
            dict(review)
            if event.kind == REVIEWED and isinstance(review, Mapping)
            else {"error": event.message}
        )
    return outcomes

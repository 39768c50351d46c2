"""What a report reads from storage: one row per run and generation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperagents.archive import search_evaluations
from hyperagents.arena import HELDOUT_EVENT
from hyperagents.exceptions import RunNotFoundError
from hyperagents.reports._experiment import experiment_runs
from hyperagents.runs import stored_reviews
from hyperagents.storages import BaseStorage, RunRecord, VariantRecord, VariantState
from hyperagents.tasks import stored_task_options, task_label

__all__ = [
    "GENERATION_COLUMNS",
    "ReportData",
    "arm_of",
    "collect",
    "flatten_numbers",
    "search_evaluations",
]

#: The columns of the per-generation table, in order.
GENERATION_COLUMNS = (
    "experiment",
    "run",
    "task",
    "mode",
    "arm",
    "seed",
    "generation",
    "evaluations",
    "variant_id",
    "parent_generation",
    "state",
    "train_subset",
    "train",
    "val",
    "test",
    "best_val",
    "champion_generation",
    "champion_val",
    "champion_test",
    "seconds",
    "sandbox_seconds",
    "llm_calls",
    "llm_tokens",
    "llm_cost",
    "operator",
    "review_issue",
    "review_severity",
)


@dataclass
class ReportData:
    """The runs a report covers and their per-generation rows.

    Attributes:
        name: The run or experiment reported on.
        runs: The run records.
        variants: Each run's variants (by run id), ascending generation.
        rows: One row per run and generation (keys: :data:`GENERATION_COLUMNS`);
            ``evaluations`` counts the stage evaluations of the run's generations up to the
            row's (see :func:`search_evaluations`).
        heldout: Each run's latest champion score on the held-out adversarial suite (by run
            id; the data of its ``level.heldout`` event), for the runs that have one.
    """

    name: str
    runs: list[RunRecord]
    variants: dict[int, list[VariantRecord]]
    rows: list[dict[str, Any]]
    heldout: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def modes(self) -> list[str]:
        """The arms compared (a run's mode, or e.g. ``"frozen-meta+transfer"``), in order."""
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.setdefault(arm_of(run), None)
        return list(seen)

    def runs_of(self, arm: str) -> list[RunRecord]:
        """The runs of one arm."""
        return [run for run in self.runs if arm_of(run) == arm]

    def rows_of(self, run: RunRecord) -> list[dict[str, Any]]:
        """The rows of one run."""
        return [row for row in self.rows if row["run"] == run.name]

    def equal_budget(self) -> int | None:
        """The stage evaluations every run reached: the fewest any run made (None: no rows).
        Arms are compared at this many evaluations, so an arm that spends fewer on each
        generation is not judged at a smaller budget."""
        totals = [rows[-1]["evaluations"] for run in self.runs if (rows := self.rows_of(run))]
        return min(totals) if totals else None


def arm_of(run: RunRecord) -> str:
    """The group a run is compared in: its ``arm``, else its mode."""
    return run.arm or run.mode


def _score(variant: VariantRecord, stage: str) -> float | None:
    value = variant.scores.get(stage)
    return float(value) if value is not None else None


def _run_rows(
    store: BaseStorage, run: RunRecord, variants: list[VariantRecord]
) -> Iterator[dict[str, Any]]:
    generation_of = {v.id: v.generation for v in variants}
    name = run.task_name if run.task_name is not None else run.task
    task = task_label(name, stored_task_options(run.config))  # with the options it was made with
    llm: dict[int, dict[str, Any]] = {}
    for call in store.list_llm_calls(run.id):
        if call.variant_id is None:
            continue
        totals = llm.setdefault(call.variant_id, {"calls": 0, "tokens": 0, "cost": 0.0})
        if call.error is None:
            totals["calls"] += 1
        if call.error is None and not call.cached:
            totals["tokens"] += call.prompt_tokens + call.completion_tokens
            totals["cost"] += call.cost
    reviews = stored_reviews(store, run.id)
    champion: VariantRecord | None = None
    evaluations = 0
    for v in variants:
        evaluations += search_evaluations(v)
        val = _score(v, "val")
        if v.state is VariantState.COMPLETE and val is not None:
            best = _score(champion, "val") if champion is not None else None
            if best is None or val > best:
                champion = v
        timing = v.metrics.get("timing") if isinstance(v.metrics, Mapping) else None
        timing = timing if isinstance(timing, Mapping) else {}
        usage = llm.get(v.id, {"calls": 0, "tokens": 0, "cost": 0.0})
        yield {
            "experiment": run.experiment,
            "run": run.name,
            "task": task,
            "mode": run.mode,
            "arm": arm_of(run),
            "seed": run.seed,
            "generation": v.generation,
            "evaluations": evaluations,
            "variant_id": v.id,
            "parent_generation": generation_of.get(v.parent_id) if v.parent_id else None,
            "state": v.state.name.lower(),
            "train_subset": _score(v, "train_subset"),
            "train": _score(v, "train"),
            "val": _score(v, "val"),
            "test": _score(v, "test"),
            "best_val": _score(champion, "val") if champion else None,
            "champion_generation": champion.generation if champion else None,
            "champion_val": _score(champion, "val") if champion else None,
            "champion_test": _score(champion, "test") if champion else None,
            "seconds": _seconds(timing, v.metrics),
            "sandbox_seconds": timing.get("sandbox_seconds"),
            "llm_calls": usage["calls"],
            "llm_tokens": usage["tokens"],
            "llm_cost": usage["cost"],
            "operator": v.meta_info.get("operator") if isinstance(v.meta_info, Mapping) else None,
            **_review_cells(reviews.get(v.id)),
        }


def _seconds(timing: Mapping[str, Any], metrics: Any) -> float | None:
    """A variant's engine seconds: its making and evaluation, and its review (if any)."""
    total = timing.get("total_seconds")
    review = metrics.get("review") if isinstance(metrics, Mapping) else None
    spent = review.get("seconds") if isinstance(review, Mapping) else None
    if not isinstance(spent, int | float):
        return total if isinstance(total, int | float) else None
    return float(total or 0.0) + float(spent)


def _review_cells(review: Mapping[str, Any] | None) -> dict[str, Any]:
    """A row's review columns: the reviewer's issue and severity (``no review`` where the
    reviewer gave none; None where the run has no reviewer)."""
    if review is None:
        return {"review_issue": None, "review_severity": None}
    if "error" in review:
        return {"review_issue": "no review", "review_severity": None}
    return {"review_issue": review.get("issue_type"), "review_severity": review.get("severity")}


def collect(store: BaseStorage, name: str) -> ReportData:
    """Read an experiment (by name) or a single run (by name or id).

    Raises:
        RunNotFoundError: Neither an experiment nor a run has that name.
    """
    runs = experiment_runs(store, name)
    if not runs:
        try:
            runs = [store.get_run_by_name(name)]
        except RunNotFoundError:
            if not name.isdigit():
                raise RunNotFoundError(f"no experiment or run named {name!r}") from None
            runs = [store.get_run(int(name))]
    variants = {
        run.id: sorted(store.list_variants(run.id), key=lambda v: v.generation) for run in runs
    }
    rows = [row for run in runs for row in _run_rows(store, run, variants[run.id])]
    heldout = {}
    for run in runs:
        events = store.list_events(run.id, kinds=[HELDOUT_EVENT], newest_first=True, limit=1)
        if events:
            heldout[run.id] = dict(events[0].data)
    return ReportData(name, runs, variants, rows, heldout)


def flatten_numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """The finite numbers in nested mappings, keyed by dotted path (booleans excluded)."""
    found: dict[str, float] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            found.update(flatten_numbers(item, path))
    elif (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    ):
        found[prefix] = float(value)
    return found

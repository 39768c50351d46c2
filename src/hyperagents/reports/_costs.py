"""What each arm cost per task: evaluations, LLM calls, tokens and dollars, and time, per run
(one run is one attempt at the task) and per variant; and what the reviewers said.

Every number is read from the rows of :mod:`hyperagents.reports._data`: a run's stage
evaluations are those the search made (test evaluations, which only champions get for the
report, are not counted), its LLM use is every call recorded against its variants (the meta
agents', the reviewer's, the task agents'), cached answers counted as calls but not as tokens or
dollars. An arm's figure is the median over its runs.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any

from hyperagents.reports._data import ReportData

__all__ = ["COST_HEADER", "arm_costs", "cost_table", "review_table"]

#: The columns of the cost table.
COST_HEADER = [
    "arm",
    "runs",
    "evaluations / task",
    "variants / task",
    "evaluations / variant",
    "LLM calls / task",
    "LLM tokens / task",
    "LLM $ / task",
    "LLM $ / variant",
    "seconds / task",
]


def _run_costs(rows: list[dict[str, Any]]) -> dict[str, float]:
    """One run's totals (``rows``: its rows, ascending generation)."""
    children = sum(1 for row in rows if row["generation"] > 0)
    evaluations = float(rows[-1]["evaluations"]) if rows else 0.0
    cost = sum(float(row["llm_cost"] or 0.0) for row in rows)
    return {
        "evaluations": evaluations,
        "variants": float(children),
        "evaluations_per_variant": evaluations / len(rows) if rows else 0.0,
        "llm_calls": float(sum(int(row["llm_calls"] or 0) for row in rows)),
        "llm_tokens": float(sum(int(row["llm_tokens"] or 0) for row in rows)),
        "llm_cost": cost,
        "llm_cost_per_variant": cost / children if children else 0.0,
        "seconds": sum(float(row["seconds"] or 0.0) for row in rows),
    }


def arm_costs(data: ReportData) -> dict[str, dict[str, Any]]:
    """Per arm: the number of runs and the median over its runs of each total (JSON-ready).

    ``evaluations_per_variant`` counts the seed too (it is evaluated like any variant);
    ``llm_cost_per_variant`` divides by the children (the seed costs no model call).
    """
    out: dict[str, dict[str, Any]] = {}
    for arm in data.modes:
        totals = [_run_costs(data.rows_of(run)) for run in data.runs_of(arm)]
        entry: dict[str, Any] = {"runs": len(totals)}
        for key in totals[0] if totals else ():
            entry[key] = float(median(t[key] for t in totals))
        out[arm] = entry
    return out


def _num(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def cost_table(costs: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The cost table (:data:`COST_HEADER`, then one row per arm) of :func:`arm_costs`."""
    table = [list(COST_HEADER)]
    for arm, c in costs.items():
        if c["runs"] == 0:
            continue
        table.append(
            [
                arm,
                str(c["runs"]),
                _num(c["evaluations"]),
                _num(c["variants"]),
                _num(c["evaluations_per_variant"], 2),
                _num(c["llm_calls"]),
                _num(c["llm_tokens"], 0),
                f"{c['llm_cost']:.4f}",
                f"{c['llm_cost_per_variant']:.4f}",
                _num(c["seconds"]),
            ]
        )
    return table


def review_table(data: ReportData) -> list[list[str]] | None:
    """Per arm with a reviewer: the children reviewed, those without a review, and the issues
    found most often (None: no run had a reviewer)."""
    table = [["arm", "reviewed", "no review", "issues (most frequent first)"]]
    for arm in data.modes:
        cells = [row for run in data.runs_of(arm) for row in data.rows_of(run)]
        issues = Counter(r["review_issue"] for r in cells if r["review_issue"] is not None)
        if not issues:
            continue
        failed = issues.pop("no review", 0)
        shown = ", ".join(f"{issue} {n}" for issue, n in issues.most_common(6))
        table.append([arm, str(sum(issues.values())), str(failed), shown or "–"])
    return table if len(table) > 1 else None

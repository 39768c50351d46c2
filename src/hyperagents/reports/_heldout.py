"""Every arm's champions on the held-out adversarial suite, beside their score on the task's
fixed tests (the issue-19 comparison of the levels: a champion that looks fine on the fixed
tests and falls on inputs the arena's oracle labels).

Read from the ``level.heldout`` events an experiment of levels records on a task with a trusted
oracle (see :mod:`hyperagents.reports._driven`); an arm's figure is the median over its runs.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from hyperagents.reports._data import ReportData

__all__ = ["HELDOUT_HEADER", "HELDOUT_NOTE", "heldout_statistics", "heldout_table"]

#: The columns of the held-out table.
HELDOUT_HEADER = [
    "arm",
    "runs scored",
    "champion test (fixed): median",
    "held-out adversarial: median",
    "drop: median",
    "suite size",
]

HELDOUT_NOTE = (
    "Each run's champion (its best val variant at the equal evaluation budget, the same rule "
    "for every arm) scored on the task's fixed test split and on a held-out adversarial suite made "
    "and labelled by the trusted oracle for the run's seed, which no agent sees; the drop is "
    "the fixed test score minus the held-out score. Medians over each arm's runs."
)


def heldout_statistics(data: ReportData) -> dict[str, dict[str, Any]]:
    """Per arm with held-out scores: the runs scored, each run's values, and the medians of
    the champions' fixed test and held-out scores and of their drops (JSON-ready)."""
    out: dict[str, dict[str, Any]] = {}
    for arm in data.modes:
        scored = [data.heldout[run.id] for run in data.runs_of(arm) if run.id in data.heldout]
        if not scored:
            continue
        heldout = [float(entry["heldout"]) for entry in scored]
        tests = [float(entry["test"]) for entry in scored if entry.get("test") is not None]
        drops = [
            float(entry["test"]) - float(entry["heldout"])
            for entry in scored
            if entry.get("test") is not None
        ]
        out[arm] = {
            "runs": len(scored),
            "heldout": heldout,
            "heldout_median": float(median(heldout)),
            "test_median": float(median(tests)) if tests else None,
            "drop_median": float(median(drops)) if drops else None,
            "size": max(int(entry["size"]) for entry in scored),
        }
    return out


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def heldout_table(stats: dict[str, dict[str, Any]]) -> list[list[str]] | None:
    """The held-out table (:data:`HELDOUT_HEADER`, a row per arm), None without scores."""
    if not stats:
        return None
    table = [list(HELDOUT_HEADER)]
    for arm, entry in stats.items():
        table.append(
            [
                arm,
                str(entry["runs"]),
                _cell(entry["test_median"]),
                _cell(entry["heldout_median"]),
                _cell(entry["drop_median"]),
                str(entry["size"]),
            ]
        )
    return table

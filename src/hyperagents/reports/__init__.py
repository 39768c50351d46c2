"""Experiments and reports: grids of runs (modes × seeds), statistics, figures, HTML."""

from __future__ import annotations

from hyperagents.reports._experiment import (
    DEFAULT_MODES,
    EXPERIMENT_ATTR,
    Arm,
    ExperimentRequest,
    ExperimentSpec,
    experiment_progress,
    experiment_runs,
    progress_unit,
    run_experiment,
)
from hyperagents.reports._report import MIN_SEEDS, Report, build_report, statistics
from hyperagents.reports._stats import (
    ConfidenceInterval,
    RankTest,
    bootstrap_ci,
    cliffs_delta,
    holm,
    imp_at_k,
    mann_whitney_u,
    vargha_delaney_a12,
)

__all__ = [
    "DEFAULT_MODES",
    "EXPERIMENT_ATTR",
    "MIN_SEEDS",
    "Arm",
    "ConfidenceInterval",
    "ExperimentRequest",
    "ExperimentSpec",
    "RankTest",
    "Report",
    "bootstrap_ci",
    "build_report",
    "cliffs_delta",
    "experiment_progress",
    "experiment_runs",
    "holm",
    "imp_at_k",
    "mann_whitney_u",
    "progress_unit",
    "run_experiment",
    "statistics",
    "vargha_delaney_a12",
]

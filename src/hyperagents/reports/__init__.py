"""Experiments and reports: grids of runs (modes × seeds) and the statistics to compare them."""

from __future__ import annotations

from hyperagents.reports._experiment import (
    EXPERIMENT_ATTR,
    ExperimentSpec,
    experiment_runs,
    run_experiment,
)
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
    "EXPERIMENT_ATTR",
    "ConfidenceInterval",
    "ExperimentSpec",
    "RankTest",
    "bootstrap_ci",
    "cliffs_delta",
    "experiment_runs",
    "holm",
    "imp_at_k",
    "mann_whitney_u",
    "run_experiment",
    "vargha_delaney_a12",
]

"""Reports on runs and experiments: statistics (more to come: grids, plots, HTML)."""

from __future__ import annotations

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
    "ConfidenceInterval",
    "RankTest",
    "bootstrap_ci",
    "cliffs_delta",
    "holm",
    "imp_at_k",
    "mann_whitney_u",
    "vargha_delaney_a12",
]

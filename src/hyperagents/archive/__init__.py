"""The archive of variants: a frozen view with pure functions over it, and parent selection."""

from __future__ import annotations

from hyperagents.archive._selectors import (
    BestSelector,
    RandomSelector,
    ScoreChildSelector,
    Selector,
    TournamentSelector,
    make_selector,
)
from hyperagents.archive._tree import tree_rows
from hyperagents.archive._view import (
    ArchiveEntry,
    ArchiveView,
    ancestry,
    best_entry,
    champion_of,
    search_evaluations,
)

__all__ = [
    "ArchiveEntry",
    "ArchiveView",
    "BestSelector",
    "RandomSelector",
    "ScoreChildSelector",
    "Selector",
    "TournamentSelector",
    "ancestry",
    "best_entry",
    "champion_of",
    "make_selector",
    "search_evaluations",
    "tree_rows",
]

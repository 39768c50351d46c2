"""The archive of variants and parent selection."""

from __future__ import annotations

from hyperagents.archive._selectors import (
    ArchiveEntry,
    BestSelector,
    RandomSelector,
    ScoreChildSelector,
    Selector,
    TournamentSelector,
    make_selector,
)
from hyperagents.archive._tree import ancestry, tree_rows

__all__ = [
    "ArchiveEntry",
    "BestSelector",
    "RandomSelector",
    "ScoreChildSelector",
    "Selector",
    "TournamentSelector",
    "ancestry",
    "make_selector",
    "tree_rows",
]

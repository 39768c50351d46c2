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

__all__ = [
    "ArchiveEntry",
    "BestSelector",
    "RandomSelector",
    "ScoreChildSelector",
    "Selector",
    "TournamentSelector",
    "make_selector",
]

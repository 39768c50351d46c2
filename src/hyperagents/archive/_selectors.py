"""The parent selectors: each picks the next parent among the eligible entries of an
:class:`~hyperagents.archive.ArchiveView` (see :meth:`ArchiveView.entries`)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from hyperagents.archive._view import ArchiveEntry, best_entry
from hyperagents.exceptions import ConfigError

__all__ = [
    "BestSelector",
    "RandomSelector",
    "ScoreChildSelector",
    "Selector",
    "TournamentSelector",
    "make_selector",
]


@runtime_checkable
class Selector(Protocol):
    """Picks the next parent among eligible archive entries."""

    name: str

    def select(self, entries: Sequence[ArchiveEntry], rng: random.Random) -> int:
        """Return the ``variant_id`` of the chosen parent (``entries`` is non-empty)."""
        ...


class ScoreChildSelector:
    """DGM-H's score × child-count weighting.

    For each eligible parent *i* with normalised score ``α_i`` and ``n_i`` children::

        α_mid = mean of the top-m scores in the archive   (m = 3)
        s_i   = 1 / (1 + exp(-λ (α_i - α_mid)))            (λ = 10)
        h_i   = 1 / (1 + n_i)
        P(i)  = s_i · h_i / Σ_j s_j · h_j

    High scorers are preferred, and a parent's weight decays as it is used, which spreads the
    search over the archive's stepping stones (Darwin Gödel Machine, App. A; HyperAgents §3).

    Args:
        lam: Sigmoid sharpness λ.
        top_m: Number of top scores averaged into the midpoint.
    """

    name = "score_child"

    def __init__(self, *, lam: float = 10.0, top_m: int = 3) -> None:
        self.lam, self.top_m = lam, top_m

    def weights(self, entries: Sequence[ArchiveEntry]) -> list[float]:
        """Unnormalised weights ``s_i · h_i`` in the order of ``entries``."""
        top = sorted((e.score for e in entries), reverse=True)[: self.top_m]
        mid = math.fsum(top) / len(top)
        out = []
        for e in entries:
            z = max(-60.0, min(60.0, -self.lam * (e.score - mid)))
            out.append((1.0 / (1.0 + math.exp(z))) * (1.0 / (1.0 + e.children)))
        return out

    def select(self, entries: Sequence[ArchiveEntry], rng: random.Random) -> int:
        """Sample a parent with probability ``P(i)`` (see the class docstring)."""
        weights = self.weights(entries)
        total = math.fsum(weights)
        if total <= 0:
            return rng.choice(list(entries)).variant_id
        return rng.choices(list(entries), weights=weights, k=1)[0].variant_id


class BestSelector:
    """Always the highest-scoring variant (greedy hill climbing)."""

    name = "best"

    def select(self, entries: Sequence[ArchiveEntry], rng: random.Random) -> int:
        """Return the best entry (ties: earliest generation)."""
        return best_entry(entries).variant_id


class RandomSelector:
    """Uniformly random among eligible variants."""

    name = "random"

    def select(self, entries: Sequence[ArchiveEntry], rng: random.Random) -> int:
        """Return a uniformly random entry."""
        return rng.choice(list(entries)).variant_id


class TournamentSelector:
    """Best of ``size`` entries drawn uniformly without replacement."""

    name = "tournament"

    def __init__(self, *, size: int = 3) -> None:
        if size < 1:
            raise ConfigError("tournament size must be >= 1")
        self.size = size

    def select(self, entries: Sequence[ArchiveEntry], rng: random.Random) -> int:
        """Return the winner of one tournament."""
        pool = rng.sample(list(entries), k=min(self.size, len(entries)))
        return best_entry(pool).variant_id


def make_selector(name: str, *, tournament_size: int = 3) -> Selector:
    """Build a built-in selector by name (``program`` is handled by the engine).

    Raises:
        ConfigError: Unknown name.
    """
    if name == "score_child":
        return ScoreChildSelector()
    if name == "best":
        return BestSelector()
    if name == "random":
        return RandomSelector()
    if name == "tournament":
        return TournamentSelector(size=tournament_size)
    raise ConfigError(f"unknown selector {name!r}")

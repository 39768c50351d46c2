"""Parent selectors."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from hyperagents.archive import (
    ArchiveEntry,
    BestSelector,
    RandomSelector,
    ScoreChildSelector,
    TournamentSelector,
    make_selector,
)
from hyperagents.exceptions import ConfigError

ENTRIES = [
    ArchiveEntry(1, 0, 0.50, 4),
    ArchiveEntry(2, 1, 0.70, 0),
    ArchiveEntry(3, 2, 0.90, 1),
    ArchiveEntry(4, 3, 0.90, 0),
    ArchiveEntry(5, 4, 0.20, 0),
]


def test_score_child_weights_follow_the_documented_formula() -> None:
    selector = ScoreChildSelector()
    mid = (0.9 + 0.9 + 0.7) / 3
    expected = [1 / (1 + math.exp(-10 * (e.score - mid))) / (1 + e.children) for e in ENTRIES]
    assert selector.weights(ENTRIES) == pytest.approx(expected)


def test_score_child_sampling_matches_probabilities() -> None:
    selector = ScoreChildSelector()
    weights = selector.weights(ENTRIES)
    total = sum(weights)
    rng = random.Random(0)
    counts = Counter(selector.select(ENTRIES, rng) for _ in range(20000))
    for entry, weight in zip(ENTRIES, weights, strict=True):
        assert counts[entry.variant_id] / 20000 == pytest.approx(weight / total, abs=0.015)


def test_children_lower_the_weight() -> None:
    selector = ScoreChildSelector()
    a = selector.weights([ArchiveEntry(1, 0, 0.8, 0), ArchiveEntry(2, 1, 0.8, 3)])
    assert a[0] == pytest.approx(4 * a[1])


def test_best_prefers_earliest_on_ties() -> None:
    assert BestSelector().select(ENTRIES, random.Random(0)) == 3


def test_random_and_tournament_are_seeded() -> None:
    for selector in (RandomSelector(), TournamentSelector(size=2)):
        a = [selector.select(ENTRIES, random.Random(5)) for _ in range(3)]
        b = [selector.select(ENTRIES, random.Random(5)) for _ in range(3)]
        assert a == b
    assert TournamentSelector(size=10).select(ENTRIES, random.Random(1)) == 3


def test_make_selector() -> None:
    assert make_selector("tournament", tournament_size=4).size == 4  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        make_selector("nope")

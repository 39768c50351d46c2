"""The ``surrogate`` mechanism: model-based proposals from the archive's history.

A tree-structured Parzen estimator (TPE, Bergstra et al. 2011) in the parameters' unit
coordinates: the archive members whose ``meta_info`` carries their ``params`` are split into the
best fraction (``good``) and the rest (``bad``, failed children included); each side gets a
density per parameter (Gaussian kernels on ``[0, 1]`` for numbers, smoothed frequencies for
bools and choices, each mixed with a flat prior); candidates are drawn around good points and
the one with the largest ``log l(x) - log g(x)`` (the expected-improvement proxy) is proposed.

Parameters a member does not name (an older member, before a constant was lifted) count at the
parent's value. With fewer than ``min_points`` usable members there is no model and the
mechanism falls back to the ordinary operators. Pure Python on purpose: importing numpy would
cost every sandboxed call about 50 ms, more than the whole model on a few dozen points. The
training set is the latest ``_MAX_POINTS`` members, so the cost stays a few milliseconds
whatever the archive's size.
"""

from __future__ import annotations

import math
from typing import Any

from meta_history import FAILED_STATES, History, sort_key
from meta_source import round_sig
from meta_space import Dim, as_float

#: At most this many of the latest archive members train the model (bounds the cost).
_MAX_POINTS = 64
#: How many candidates are drawn from the good density and ranked by the acquisition.
_CANDIDATES = 16
#: Smallest kernel width in unit coordinates.
_MIN_WIDTH = 0.03
#: Weight of the flat prior in each density (as if that many points were spread evenly).
_PRIOR = 1.0


def training_set(
    history: History, space: dict[str, Dim], current: dict[str, Any]
) -> tuple[list[list[float]], list[float | None]]:
    """The archive's members as unit vectors over ``space`` with their quality.

    Returns:
        Rows (one coordinate per parameter of ``space``, in its order: numbers in ``[0, 1]``,
        a bool as 0/1, a choice as its index) and their qualities (``None`` for a failed child,
        which always counts as bad).
    """
    rows: list[list[float]] = []
    values: list[float | None] = []
    for vid in sorted(history.variants, key=sort_key)[-_MAX_POINTS:]:
        entry = history.variants[vid]
        params = History.meta_info(entry).get("params")
        if not isinstance(params, dict):
            continue
        state = str(entry.get("state", "complete")).lower()
        quality = history.quality(entry)
        if quality is None:
            scores = entry.get("scores")
            subset = scores.get("train_subset") if isinstance(scores, dict) else None
            quality = as_float(subset)
        if state in FAILED_STATES:
            quality = None
        elif quality is None:
            continue
        rows.append([encode(dim, params.get(name, current[name])) for name, dim in space.items()])
        values.append(quality)
    return rows, values


def encode(dim: Dim, value: Any) -> float:
    """One parameter's value as a model coordinate."""
    if dim.kind == "bool":
        return 1.0 if bool(value) else 0.0
    if dim.kind == "choice":
        return float(dim.choices.index(value)) if value in dim.choices else 0.0
    return dim.to_unit(value)


def decode(dim: Dim, coordinate: float) -> Any:
    """A model coordinate as a value of the parameter."""
    if dim.kind == "bool":
        return coordinate >= 0.5
    if dim.kind == "choice":
        return dim.choices[min(max(round(coordinate), 0), len(dim.choices) - 1)]
    return dim.from_unit(coordinate)


class Density:
    """One side's density over one parameter (kernels on numbers, frequencies on categories).

    Args:
        dim: The parameter.
        points: The side's coordinates of it.
    """

    def __init__(self, dim: Dim, points: list[float]) -> None:
        self.categorical = dim.kind in ("bool", "choice")
        self.points = points
        if self.categorical:
            size = 2 if dim.kind == "bool" else len(dim.choices)
            counts = [_PRIOR / size] * size
            for point in points:
                counts[int(point)] += 1.0
            total = sum(counts)
            self.probs = [count / total for count in counts]
            return
        n = len(points)
        mean = sum(points) / n if n else 0.5
        std = math.sqrt(sum((p - mean) ** 2 for p in points) / n) if n > 1 else 0.25
        self.width = max(_MIN_WIDTH, 1.06 * max(std, 0.05) * (n + 1) ** -0.2)

    def log_pdf(self, x: float) -> float:
        """Log density at coordinate ``x``."""
        if self.categorical:
            return math.log(self.probs[int(x)])
        total = _PRIOR  # the flat prior on [0, 1]
        inv = 1.0 / self.width
        norm = inv / math.sqrt(2.0 * math.pi)
        for point in self.points:
            z = (x - point) * inv
            total += norm * math.exp(-0.5 * z * z)
        return math.log(total / (len(self.points) + _PRIOR))

    def sample(self, rng: Any, center: float) -> float:
        """A coordinate drawn around ``center`` (a good point's) from this density's kernel."""
        if self.categorical:
            if rng.random() < 0.8:
                return center
            return float(rng.choices(range(len(self.probs)), weights=self.probs)[0])
        value = rng.gauss(center, self.width)
        value = value % 2.0
        return 2.0 - value if value > 1.0 else value


def propose_tpe(
    rows: list[list[float]],
    values: list[float | None],
    dims: list[Dim],
    rng: Any,
    *,
    gamma: float = 0.25,
    min_points: int = 8,
) -> tuple[list[float], dict[str, Any]] | None:
    """The TPE proposal from ``rows`` (see the module docstring); None with too few points.

    Args:
        rows: Unit vectors of earlier members (:func:`training_set`).
        values: Their qualities (higher is better; ``None``: failed, always bad).
        dims: The parameters, in the rows' order.
        rng: The source of randomness (``random.Random``).
        gamma: Fraction of the scored members that form the good side.
        min_points: Fewest members needed to fit a model.

    Returns:
        The proposed coordinates and a summary (sizes, acquisition of the pick).
    """
    scored = sorted(
        (i for i, v in enumerate(values) if v is not None),
        key=lambda i: (-(values[i] or 0.0), i),
    )
    if len(rows) < min_points or len(scored) < 2:
        return None
    n_good = max(2, min(len(scored) - 1, math.ceil(gamma * len(scored))))
    good_ids = set(scored[:n_good])
    good = [rows[i] for i in sorted(good_ids)]
    bad = [rows[i] for i in range(len(rows)) if i not in good_ids]
    l_side = [Density(dim, [row[d] for row in good]) for d, dim in enumerate(dims)]
    g_side = [Density(dim, [row[d] for row in bad]) for d, dim in enumerate(dims)]
    best: tuple[float, list[float]] | None = None
    for _ in range(_CANDIDATES):
        center = good[rng.randrange(len(good))]
        candidate = [l_side[d].sample(rng, center[d]) for d in range(len(dims))]
        score = sum(
            l_side[d].log_pdf(candidate[d]) - g_side[d].log_pdf(candidate[d])
            for d in range(len(dims))
        )
        if best is None or score > best[0]:
            best = (score, candidate)
    assert best is not None
    summary = {"points": len(rows), "good": n_good, "acquisition": round_sig(best[0], 4)}
    return best[1], summary


def propose_surrogate(
    history: History,
    space: dict[str, Dim],
    current: dict[str, Any],
    rng: Any,
    min_points: int = 8,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """New values for every parameter of ``space`` from the TPE model of the archive.

    Returns:
        The proposed parameters and a summary for ``meta_info``, or None when the archive holds
        fewer than ``min_points`` usable members (no model: the caller falls back).
    """
    rows, values = training_set(history, space, current)
    dims = list(space.values())
    result = propose_tpe(rows, values, dims, rng, min_points=min_points)
    if result is None:
        return None
    coordinates, summary = result
    new = {dim.name: decode(dim, coordinates[d]) for d, dim in enumerate(dims)}
    return new, summary

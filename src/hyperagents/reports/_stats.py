"""Statistics for comparing runs: bootstrap confidence intervals, rank tests, effect sizes, imp@k.

Plain numpy and the standard library (no scipy at run time); the test suite checks every
function against scipy and against values worked out by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hyperagents.exceptions import ConfigError

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

_NORMAL = NormalDist()

Statistic = Callable[[NDArray[np.float64]], float]
Alternative = Literal["two-sided", "greater", "less"]


def _sample(data: ArrayLike, name: str = "sample") -> NDArray[np.float64]:
    values = np.asarray(data, dtype=float).ravel()
    if values.size == 0:
        raise ConfigError(f"the {name} is empty")
    if not np.all(np.isfinite(values)):
        raise ConfigError(f"the {name} holds NaN or infinite values")
    return values


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a confidence interval.

    Attributes:
        estimate: The statistic on the sample itself.
        low: The interval's lower end.
        high: The interval's upper end.
        confidence: The confidence level (e.g. 0.95).
        method: ``"BCa"`` or ``"percentile"``.
        n: The sample size.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int

    def __str__(self) -> str:
        pct = f"{self.confidence:.0%}"
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] ({pct} {self.method})"


def bootstrap_ci(
    data: ArrayLike,
    statistic: Statistic = np.median,
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    method: Literal["BCa", "percentile"] = "BCa",
    seed: int = 0,
) -> ConfidenceInterval:
    """A bootstrap confidence interval of a statistic of one sample.

    Resamples with replacement ``n_resamples`` times (from ``numpy.random.default_rng(seed)``)
    and takes percentiles of the resampled statistics: directly (``"percentile"``), or corrected
    for bias and skew (``"BCa"``, Efron 1987: bias ``z0`` from the share of resampled statistics
    below the estimate, acceleration from the jackknife), as ``scipy.stats.bootstrap`` does.

    Args:
        data: The sample (e.g. final test scores of the seeds of one mode).
        statistic: A function of a 1-d array returning a number (default: the median).
        confidence: The confidence level, in (0, 1).
        n_resamples: Bootstrap resamples.
        method: ``"BCa"`` (default) or ``"percentile"``.
        seed: Seed of the resampling.

    Returns:
        The estimate and interval. A sample of one value, or one whose resamples all give the
        same statistic, has the degenerate interval ``[estimate, estimate]``.

    Raises:
        ConfigError: An empty or non-finite sample, or an out-of-range argument.
    """
    values = _sample(data)
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples!r}")
    if method not in ("BCa", "percentile"):
        raise ConfigError(f"unknown bootstrap method {method!r}; use 'BCa' or 'percentile'")
    estimate = float(statistic(values))
    n = values.size
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n, size=(n_resamples, n))
    resampled = np.array([statistic(values[row]) for row in indices], dtype=float)
    if n == 1 or np.all(resampled == resampled[0]):
        return ConfidenceInterval(estimate, estimate, estimate, confidence, method, n)
    alpha = (1 - confidence) / 2
    quantiles = np.array([alpha, 1 - alpha])
    if method == "BCa":
        quantiles = _bca_levels(values, statistic, estimate, resampled, quantiles)
    low, high = np.percentile(resampled, quantiles * 100)
    return ConfidenceInterval(estimate, float(low), float(high), confidence, method, n)


def _bca_levels(
    values: NDArray[np.float64],
    statistic: Statistic,
    estimate: float,
    resampled: NDArray[np.float64],
    levels: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The BCa-adjusted percentile levels (falls back to the plain ones when undefined)."""
    below = float(np.mean(resampled < estimate))
    if not 0 < below < 1:
        return levels  # the bias correction is infinite: no adjustment is defined
    z0 = _NORMAL.inv_cdf(below)
    jack = np.array([statistic(np.delete(values, i)) for i in range(values.size)], dtype=float)
    spread = jack.mean() - jack
    denominator = 6.0 * float(np.sum(spread**2)) ** 1.5
    acceleration = float(np.sum(spread**3)) / denominator if denominator > 0 else 0.0
    adjusted = []
    for level in levels:
        z = _NORMAL.inv_cdf(float(level))
        shifted = z0 + (z0 + z) / (1 - acceleration * (z0 + z))
        adjusted.append(_NORMAL.cdf(shifted))
    return np.array(adjusted)


@dataclass(frozen=True)
class RankTest:
    """The result of a Wilcoxon rank-sum (Mann–Whitney U) test.

    Attributes:
        u: The U statistic of the first sample (pairs in which it is larger, ties counting
            one half).
        p_value: The p-value.
        method: ``"exact"`` or ``"asymptotic"`` (normal approximation with tie and continuity
            corrections).
        alternative: ``"two-sided"``, ``"greater"`` (the first sample tends to be larger) or
            ``"less"``.
    """

    u: float
    p_value: float
    method: str
    alternative: str


def _ranks(values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Mid-ranks (1-based) of ``values`` and the sizes of its groups of ties."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=float)
    sorted_values = values[order]
    tie_sizes: list[int] = []
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        tie_sizes.append(end - start + 1)
        start = end + 1
    return ranks, np.array(tie_sizes, dtype=np.int64)


def _u_counts(m: int, n: int) -> list[int]:
    """How many of the C(m+n, m) orderings give each U = 0..m·n (no ties).

    The coefficients of the Gaussian binomial [m+n choose m]_q, built by multiplying by
    (1 - q^(n+i)) and dividing by (1 - q^i) for i = 1..m, in exact integers.
    """
    size = m * n + 1
    poly = [0] * size
    poly[0] = 1
    for i in range(1, m + 1):
        shift = n + i
        for k in range(size - 1, shift - 1, -1):  # multiply by (1 - q^shift)
            poly[k] -= poly[k - shift]
        for k in range(i, size):  # divide by (1 - q^i)
            poly[k] += poly[k - i]
    return poly


def mann_whitney_u(
    x: ArrayLike,
    y: ArrayLike,
    *,
    alternative: Alternative = "two-sided",
    method: Literal["auto", "exact", "asymptotic"] = "auto",
) -> RankTest:
    """The Wilcoxon rank-sum (Mann–Whitney U) test of two independent samples.

    Follows ``scipy.stats.mannwhitneyu`` (same statistic, same p-values): ``"auto"`` uses the
    exact null distribution when either sample has at most 8 values and there are no ties,
    else the normal approximation with tie correction and continuity correction.

    Args:
        x: The first sample (e.g. final test scores of hyperagent mode, one per seed).
        y: The second sample.
        alternative: ``"two-sided"``, ``"greater"`` (``x`` tends to be larger) or ``"less"``.
        method: ``"auto"``, ``"exact"`` (no ties allowed) or ``"asymptotic"``.

    Returns:
        U of ``x`` and the p-value.

    Raises:
        ConfigError: An empty or non-finite sample, an unknown argument, or ``"exact"`` with
            ties.
    """
    xs, ys = _sample(x, "first sample"), _sample(y, "second sample")
    if alternative not in ("two-sided", "greater", "less"):
        raise ConfigError(f"unknown alternative {alternative!r}")
    if method not in ("auto", "exact", "asymptotic"):
        raise ConfigError(f"unknown method {method!r}")
    n1, n2 = xs.size, ys.size
    ranks, ties = _ranks(np.concatenate([xs, ys]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u2 = n1 * n2 - u1
    has_ties = bool(np.any(ties > 1))
    if method == "auto":
        method = "asymptotic" if (n1 > 8 and n2 > 8) or has_ties else "exact"
    if method == "exact" and has_ties:
        raise ConfigError("the exact Mann-Whitney test needs samples without ties")
    if alternative == "greater":
        u, factor = u1, 1
    elif alternative == "less":
        u, factor = u2, 1
    else:
        u, factor = max(u1, u2), 2
    if method == "exact":
        counts = _u_counts(min(n1, n2), max(n1, n2))
        at_least = sum(counts[round(u) :])
        p = at_least / math.comb(n1 + n2, n1)
    else:
        n = n1 + n2
        tie_term = float(np.sum(ties.astype(float) ** 3 - ties))
        variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
        if variance <= 0:  # every value is the same: no evidence either way
            p = 1.0
        else:
            z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
            p = 1 - _NORMAL.cdf(z)
    return RankTest(u1, float(min(1.0, max(0.0, p * factor))), method, alternative)


def vargha_delaney_a12(x: ArrayLike, y: ArrayLike) -> float:
    """The probability that a value of ``x`` exceeds one of ``y`` (ties count one half).

    Args:
        x: The first sample.
        y: The second sample.

    Returns:
        A12 in [0, 1]; 0.5 means no effect (0.56, 0.64, 0.71 are the usual small, medium and
        large thresholds).

    Raises:
        ConfigError: An empty or non-finite sample.
    """
    xs, ys = _sample(x, "first sample"), _sample(y, "second sample")
    greater = np.sum(xs[:, None] > ys[None, :])
    equal = np.sum(xs[:, None] == ys[None, :])
    return float((greater + 0.5 * equal) / (xs.size * ys.size))


def cliffs_delta(x: ArrayLike, y: ArrayLike) -> float:
    """Cliff's delta, P(x > y) − P(x < y): the rank-biserial correlation of the U test.

    Args:
        x: The first sample.
        y: The second sample.

    Returns:
        Delta in [−1, 1]; 0 means no effect.

    Raises:
        ConfigError: An empty or non-finite sample.
    """
    return 2 * vargha_delaney_a12(x, y) - 1


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (family-wise error control for several tests).

    Args:
        p_values: The raw p-values.

    Returns:
        The adjusted p-values, in the input order.

    Raises:
        ConfigError: A p-value outside [0, 1].
    """
    values = [float(p) for p in p_values]
    if any(not 0 <= p <= 1 for p in values):
        raise ConfigError("p-values must lie in [0, 1]")
    order = sorted(range(len(values)), key=lambda i: values[i])
    adjusted = [0.0] * len(values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(values) - rank) * values[index]))
        adjusted[index] = running
    return adjusted


def imp_at_k(scores: Sequence[float], seed_score: float, k: int) -> float:
    """imp@k (DGM-H): the best of the first ``k`` scores minus the seed's score.

    In the DGM-H paper, a frozen meta agent produces ``k`` task agents; imp@k is the best test
    score among them minus the initial agent's. Fewer than ``k`` scores use those there are.

    Args:
        scores: Test scores of the task agents, in the order they were produced.
        seed_score: The seed (initial) agent's test score.
        k: How many agents count.

    Returns:
        The improvement (negative if none of them beats the seed).

    Raises:
        ConfigError: ``k`` < 1 or no scores.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k!r}")
    first = [float(s) for s in scores[:k]]
    if not first:
        raise ConfigError("imp@k needs at least one score")
    return max(first) - float(seed_score)

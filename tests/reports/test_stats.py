"""Statistics against scipy and against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from hyperagents.exceptions import ConfigError
from hyperagents.reports import (
    bootstrap_ci,
    cliffs_delta,
    holm,
    imp_at_k,
    mann_whitney_u,
    vargha_delaney_a12,
)

SAMPLES = [
    ([0.71, 0.74, 0.69, 0.77, 0.73], [0.65, 0.70, 0.66, 0.68, 0.64]),  # exact, no ties
    ([0.7, 0.7, 0.72, 0.75, 0.68], [0.7, 0.66, 0.69, 0.7, 0.61]),  # ties: asymptotic
    (list(np.linspace(0, 1, 12)), list(np.linspace(0.2, 1.3, 11))),  # both > 8: asymptotic
    ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0]),  # exact, 3 vs 10
    ([0.5] * 4, [0.5] * 6),  # all tied
]


@pytest.mark.parametrize("x, y", SAMPLES)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mann_whitney_matches_scipy(x: list[float], y: list[float], alternative: str) -> None:
    ours = mann_whitney_u(x, y, alternative=alternative)  # type: ignore[arg-type]
    theirs = sp.mannwhitneyu(x, y, alternative=alternative, method="auto")
    assert ours.u == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-12)


def test_mann_whitney_exact_by_hand_and_method_choice() -> None:
    # x entirely above y, 3 vs 3: U = 9, P(U >= 9) = 1 / C(6, 3) = 1/20; two-sided 0.1.
    result = mann_whitney_u([4, 5, 6], [1, 2, 3])
    assert (result.u, result.method) == (9.0, "exact")
    assert result.p_value == pytest.approx(0.1)
    assert mann_whitney_u([4, 5, 6], [1, 2, 3], alternative="greater").p_value == pytest.approx(
        0.05
    )
    assert mann_whitney_u([1, 2, 2], [3, 4, 5]).method == "asymptotic"  # ties
    with pytest.raises(ConfigError, match="ties"):
        mann_whitney_u([1, 2, 2], [3, 4, 5], method="exact")
    for bad in ([], [1.0, math.nan]):
        with pytest.raises(ConfigError):
            mann_whitney_u(bad, [1.0, 2.0])


def test_effect_sizes_by_hand_and_against_the_u_statistic() -> None:
    x, y = [3, 4, 5], [1, 2, 3]
    # Of the 9 pairs, x wins 8 and ties 1 (3 vs 3); it loses none.
    assert vargha_delaney_a12(x, y) == pytest.approx((8 + 0.5) / 9)
    assert cliffs_delta(x, y) == pytest.approx((8 - 0) / 9)
    assert cliffs_delta(y, x) == pytest.approx(-cliffs_delta(x, y))
    assert vargha_delaney_a12([1, 1], [1, 1]) == 0.5
    for a, b in SAMPLES:
        u = sp.mannwhitneyu(a, b).statistic
        assert vargha_delaney_a12(a, b) == pytest.approx(u / (len(a) * len(b)))


def test_bootstrap_of_a_fixed_sample_is_reproducible_and_close_to_scipy() -> None:
    rng = np.random.default_rng(42)
    sample = rng.normal(10.0, 2.0, size=40)
    ours = bootstrap_ci(sample, np.mean, n_resamples=20000, seed=1)
    again = bootstrap_ci(sample, np.mean, n_resamples=20000, seed=1)
    assert ours == again  # same seed, same interval
    theirs = sp.bootstrap(
        (sample,), np.mean, n_resamples=20000, method="BCa", random_state=1
    ).confidence_interval
    # Different resamples: the ends agree to well within the Monte Carlo error.
    assert ours.low == pytest.approx(theirs.low, abs=0.05)
    assert ours.high == pytest.approx(theirs.high, abs=0.05)
    # ...and both are close to the t interval of a normal mean.
    half = sp.t.ppf(0.975, 39) * sample.std(ddof=1) / math.sqrt(40)
    assert ours.low == pytest.approx(sample.mean() - half, abs=0.08)
    assert ours.high == pytest.approx(sample.mean() + half, abs=0.08)
    assert ours.estimate == pytest.approx(sample.mean())


def test_percentile_bootstrap_equals_the_percentiles_of_the_resampled_statistics() -> None:
    sample = np.array([0.61, 0.65, 0.70, 0.72, 0.80])
    ci = bootstrap_ci(sample, np.median, method="percentile", n_resamples=5000, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 5, size=(5000, 5))
    medians = np.median(sample[idx], axis=1)
    assert (ci.low, ci.high) == pytest.approx(tuple(np.percentile(medians, [2.5, 97.5])))
    assert ci.estimate == 0.70 and ci.low <= 0.70 <= ci.high
    assert ci.low >= 0.61 and ci.high <= 0.80  # a median cannot leave the sample's range


def test_degenerate_and_bad_bootstrap_inputs() -> None:
    flat = bootstrap_ci([0.5, 0.5, 0.5])
    assert (flat.estimate, flat.low, flat.high) == (0.5, 0.5, 0.5)
    one = bootstrap_ci([0.7])
    assert (one.low, one.high) == (0.7, 0.7)
    for kwargs in ({"confidence": 1.0}, {"n_resamples": 0}, {"method": "basic"}):
        with pytest.raises(ConfigError):
            bootstrap_ci([1.0, 2.0], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        bootstrap_ci([])


def test_holm_matches_the_textbook_example() -> None:
    # Raw p-values 0.01, 0.04, 0.03, 0.005 -> sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 (monotone).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ConfigError):
        holm([1.5])


def test_imp_at_k() -> None:
    scores = [0.60, 0.72, 0.65, 0.80]
    assert imp_at_k(scores, 0.65, 1) == pytest.approx(-0.05)
    assert imp_at_k(scores, 0.65, 2) == pytest.approx(0.07)
    assert imp_at_k(scores, 0.65, 50) == pytest.approx(0.15)  # fewer than k: all of them
    with pytest.raises(ConfigError):
        imp_at_k(scores, 0.65, 0)
    with pytest.raises(ConfigError):
        imp_at_k([], 0.65, 3)

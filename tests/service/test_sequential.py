"""The sequential A/B test: decisions on clear-better, clear-worse and equal candidates, its
error rates over seeded repeats, the shadow phase, and a state that resumes through JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.service import (
    Arm,
    Phase,
    SequentialSettings,
    SequentialTest,
    Verdict,
    assign_arm,
    confidence_halfwidth,
)

AB = SequentialSettings(shadow_samples=0, max_samples=2000)


def run_ab(
    seed: int, champion: float, candidate: float, settings: SequentialSettings = AB
) -> SequentialTest:
    """Alternate the arms with 0/1 feedback at the given levels until a decision."""
    rng = np.random.default_rng(seed)
    test = SequentialTest(settings=settings)
    while test.verdict is Verdict.CONTINUE:
        test.observe(Arm.CHAMPION, float(rng.random() < champion))
        if test.verdict is Verdict.CONTINUE:
            test.observe(Arm.CANDIDATE, float(rng.random() < candidate))
    return test


def test_a_clearly_better_candidate_is_promoted() -> None:
    for seed in range(20):
        test = run_ab(seed, 0.6, 0.8)
        assert test.verdict is Verdict.PROMOTE and test.phase is Phase.DONE
        assert test.reason.startswith("better: effect +0.")
        assert test.counts["candidate"] < 600


def test_a_clearly_worse_candidate_is_rolled_back() -> None:
    for seed in range(20):
        test = run_ab(seed, 0.8, 0.6)
        assert test.verdict is Verdict.ROLLBACK and test.reason.startswith("worse: effect -0.")
        assert test.counts["candidate"] < 600


@pytest.mark.slow
def test_error_rates_over_seeded_repeats() -> None:
    # equal arms: promoted (or rolled back as worse) at most alpha of the time
    verdicts = [run_ab(1000 + seed, 0.7, 0.7) for seed in range(100)]
    promoted = sum(t.verdict is Verdict.PROMOTE for t in verdicts)
    worse = sum(t.reason.startswith("worse") for t in verdicts)
    assert promoted <= 5 and worse <= 5, (promoted, worse)
    inconclusive = [t for t in verdicts if t.reason.startswith("inconclusive")]
    assert all(
        t.verdict is Verdict.ROLLBACK and t.counts["candidate"] == 2000 for t in inconclusive
    )
    # a small real gain (+0.05) with a margin of 0.05 to beat is not promoted either
    margin = AB.model_copy(update={"promote_margin": 0.05})
    promoted = sum(
        run_ab(2000 + s, 0.7, 0.75, margin).verdict is Verdict.PROMOTE for s in range(50)
    )
    assert promoted <= 3


def test_a_tolerated_regression_is_not_rolled_back_as_worse() -> None:
    tolerant = AB.model_copy(update={"rollback_margin": 0.1})
    for seed in range(10):
        test = run_ab(seed, 0.8, 0.75, tolerant)
        assert not test.reason.startswith("worse"), test.reason


def test_the_interval_is_where_the_msprt_reaches_one_over_alpha() -> None:
    variance, tau, alpha = 0.002, 0.1, 0.05
    half = confidence_halfwidth(variance, tau=tau, alpha=alpha)
    t2 = tau * tau
    ratio = math.sqrt(variance / (variance + t2)) * math.exp(
        t2 * half * half / (2 * variance * (variance + t2))
    )
    assert ratio == pytest.approx(1 / alpha)
    with pytest.raises(ConfigError):
        confidence_halfwidth(0.0, tau=tau, alpha=alpha)


def test_shadow_then_ab() -> None:
    settings = SequentialSettings(shadow_samples=100, min_samples=30)
    rng = np.random.default_rng(5)
    test = SequentialTest(settings=settings)
    with pytest.raises(ConfigError, match="shadow phase"):
        test.observe(Arm.CANDIDATE, 1.0)
    for _ in range(100):
        right = float(rng.random() < 0.7)
        assert test.observe_pair(champion=right, candidate=right) is Verdict.CONTINUE
    assert test.phase is Phase.AB and test.counts == {"pairs": 100, "champion": 0, "candidate": 0}
    with pytest.raises(ConfigError, match="ab phase"):
        test.observe_pair(champion=1.0, candidate=1.0)
    assert test.interval() is None  # the A/B phase starts its own count


def test_a_worse_candidate_is_rolled_back_in_shadow() -> None:
    rng = np.random.default_rng(6)
    test = SequentialTest(settings=SequentialSettings(shadow_samples=500))
    while test.verdict is Verdict.CONTINUE:
        right = rng.random() < 0.8
        test.observe_pair(champion=float(right), candidate=float(right and rng.random() < 0.7))
    assert test.verdict is Verdict.ROLLBACK and test.reason.startswith("worse in shadow")
    assert test.counts["pairs"] < 500 and test.interval() is not None


def test_state_round_trips_through_json_and_resumes() -> None:
    rng = np.random.default_rng(8)
    values = [(float(rng.random() < 0.6), float(rng.random() < 0.75)) for _ in range(3000)]
    settings = SequentialSettings(shadow_samples=50)

    def feed(test: SequentialTest, part: list[tuple[float, float]]) -> None:
        for champion, candidate in part:
            if test.phase is Phase.SHADOW:
                test.observe_pair(champion=champion, candidate=candidate)
            elif test.phase is Phase.AB:
                test.observe(Arm.CHAMPION, champion)
                test.observe(Arm.CANDIDATE, candidate)

    whole = SequentialTest(settings=settings)
    feed(whole, values)
    assert whole.verdict is Verdict.PROMOTE
    first = SequentialTest(settings=settings)
    feed(first, values[:70])
    assert first.phase is Phase.AB
    resumed = SequentialTest.from_json(json.loads(json.dumps(first.to_json())))
    assert resumed.to_json() == first.to_json()
    feed(resumed, values[70:])
    assert resumed.to_json() == whole.to_json()
    with pytest.raises(ConfigError, match="invalid sequential test state"):
        SequentialTest.from_json({"phase": "later"})


def test_assign_arm_is_deterministic_and_shares_the_traffic() -> None:
    arms = [assign_arm(f"request-{i}", share=0.3, salt="cand-1") for i in range(10000)]
    assert arms == [assign_arm(f"request-{i}", share=0.3, salt="cand-1") for i in range(10000)]
    assert 0.28 < arms.count(Arm.CANDIDATE) / len(arms) < 0.32
    other = [assign_arm(f"request-{i}", share=0.3, salt="cand-2") for i in range(100)]
    assert other != arms[:100]
    with pytest.raises(ConfigError):
        assign_arm("x", share=1.5)


def test_bad_values_are_refused() -> None:
    test = SequentialTest(settings=AB)
    with pytest.raises(ConfigError, match="quality"):
        test.observe(Arm.CANDIDATE, 2.0)
    with pytest.raises(ConfigError, match="quality"):
        test.observe(Arm.CANDIDATE, True)

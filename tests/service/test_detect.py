"""Degradation detection: delay after a drop, no alarm on stationary series, the goal's two
kinds, the run-length approximation, determinism and a resumed state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.service import (
    Detector,
    DetectorSettings,
    Goal,
    average_run_length,
    parse_settings,
)

METHODS = ("page-hinkley", "cusum")


def bernoulli(seed: int, levels: list[tuple[float, int]]) -> list[float]:
    """0/1 quality values: ``n`` values at each ``(p, n)`` level, in order."""
    rng = np.random.default_rng(seed)
    return [float(x) for p, n in levels for x in (rng.random(n) < p)]


def first_alarm(detector: Detector, values: list[float]) -> int | None:
    for value in values:
        if detector.update(value):
            return detector.n
    return None


@pytest.mark.parametrize("method", METHODS)
def test_a_drop_of_0_2_is_detected_within_400_observations(method: str) -> None:
    settings = DetectorSettings(method=method)
    for seed in range(5):
        values = bernoulli(seed, [(0.8, 1000), (0.6, 1000)])
        alarm = first_alarm(Detector(goal=Goal(), settings=settings), values)
        assert alarm is not None and 1000 < alarm <= 1400, (seed, alarm)


@pytest.mark.parametrize("method", METHODS)
def test_no_alarm_on_five_stationary_series_of_2000(method: str) -> None:
    settings = DetectorSettings(method=method)
    for seed in range(5):
        for p in (0.5, 0.8, 0.95):
            values = bernoulli(100 + seed, [(p, 2000)])
            detector = Detector(goal=Goal(), settings=settings)
            assert first_alarm(detector, values) is None, (seed, p, detector.statistic)


def test_a_threshold_goal_alarms_below_the_threshold_only() -> None:
    goal = Goal(kind="threshold", threshold=0.8)
    for seed in range(5):
        held = bernoulli(seed, [(0.88, 2000)])
        assert first_alarm(Detector(goal=goal), held) is None
        # quality drops to 0.7, below the goal: detected within about level / (0.1 - delta)
        dropped = bernoulli(seed, [(0.88, 500), (0.7, 1000)])
        alarm = first_alarm(Detector(goal=goal), dropped)
        assert alarm is not None and 500 < alarm <= 500 + 700, (seed, alarm)
    # a drop that stays above the threshold is no degradation for this goal
    above = bernoulli(7, [(0.98, 500), (0.9, 1500)])
    assert first_alarm(Detector(goal=goal), above) is None
    assert first_alarm(Detector(goal=Goal()), above) is not None  # but it is a drop


def test_methods_coincide_against_a_threshold() -> None:
    goal = Goal(kind="threshold", threshold=0.7)
    values = bernoulli(3, [(0.8, 300), (0.5, 300)])
    # (a level the 0/1 increments cannot sum to exactly: no tie for rounding to settle)
    ph = Detector(goal=goal, settings=DetectorSettings(method="page-hinkley", level=29.99))
    cusum = Detector(goal=goal, settings=DetectorSettings(method="cusum", level=29.99))
    for value in values:
        ph.update(value)
        cusum.update(value)
        assert ph.statistic == pytest.approx(cusum.statistic)
    assert ph.alarm_at == cusum.alarm_at is not None


def test_no_alarm_during_the_warmup_and_one_alarm_per_reset() -> None:
    detector = Detector(
        goal=Goal(kind="threshold", threshold=0.9), settings=DetectorSettings(warmup=50)
    )
    fired = [detector.update(0.0) for _ in range(60)]
    assert fired.index(True) == 49 and sum(fired) == 1 and detector.alarmed
    detector.reset()
    assert not detector.alarmed and detector.n == 0 and detector.statistic == 0


def test_cusum_learns_its_reference_over_the_warmup() -> None:
    detector = Detector(goal=Goal(), settings=DetectorSettings(method="cusum", reference_size=4))
    for value in (1.0, 0.0, 1.0, 1.0):
        detector.update(value)
    reference = 0.75 - np.std([1, 0, 1, 1], ddof=1) / 2  # the mean less one standard error
    assert detector.reference == pytest.approx(reference) and detector.statistic == 0
    detector.update(0.0)
    assert detector.statistic == pytest.approx(reference - 0.025)


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_and_resumable_through_json(method: str) -> None:
    values = bernoulli(11, [(0.8, 700), (0.55, 700)])
    settings = DetectorSettings(method=method)
    whole = Detector(goal=Goal(), settings=settings)
    expected = first_alarm(whole, values)
    assert expected is not None
    again = Detector(goal=Goal(), settings=settings)
    assert first_alarm(again, values) == expected
    first = Detector(goal=Goal(), settings=settings)
    cut = expected - 40  # after the change, before the alarm
    for value in values[:cut]:
        first.update(value)
    resumed = Detector.from_json(json.loads(json.dumps(first.to_json())))
    assert resumed.to_json() == first.to_json()
    assert first_alarm(resumed, values[cut:]) == expected


def test_average_run_length_matches_the_cusum_tables() -> None:
    # Standard normal data, k = 0.5, h = 4: ARL 336 in control, 8.4 after a 1-sd shift
    # (Montgomery, Introduction to Statistical Quality Control, table 9.3).
    assert average_run_length(-0.5, 1.0, 4.0) == pytest.approx(336, rel=0.02)
    assert average_run_length(0.5, 1.0, 4.0) == pytest.approx(8.38, rel=0.02)
    assert average_run_length(0.0, 1.0, 4.0) == pytest.approx(5.166**2 + 5.166)
    # the defaults' figures quoted in the module docstring
    assert average_run_length(-0.025, 0.46, 30.0) == pytest.approx(230_000, rel=0.02)
    assert average_run_length(0.1 - 0.025, 0.46, 30.0) == pytest.approx(390, rel=0.02)
    assert average_run_length(0.2 - 0.025, 0.46, 30.0) == pytest.approx(170, rel=0.02)
    with pytest.raises(ConfigError):
        average_run_length(0.1, 0.0, 1.0)


def test_bad_goals_and_settings_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="threshold goal needs `threshold`"):
        parse_settings(Goal, {"kind": "threshold"})
    with pytest.raises(ConfigError, match="maximise goal takes no `threshold`"):
        parse_settings(Goal, {"threshold": 0.5})
    with pytest.raises(ConfigError, match=r"DetectorSettings: level: .*greater than 0"):
        parse_settings(DetectorSettings, {"level": 0})
    with pytest.raises(ConfigError, match="method"):
        parse_settings(DetectorSettings, method="ewma")
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        Detector(goal=Goal()).update(1.5)

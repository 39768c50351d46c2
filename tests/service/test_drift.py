"""Input drift: PSI, KS and unseen rates against hand-computed values and scipy, the feature
declaration, and the drift monitor on the simulated stream."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hyperagents.exceptions import ConfigError
from hyperagents.service import (
    DriftMonitor,
    DriftSettings,
    StreamSettings,
    declared_features,
    input_features,
    ks_2samp,
    psi_categorical,
    psi_numeric,
    simulated_stream,
    unseen_rate,
)
from hyperagents.tasks.support import SupportTask


def test_psi_of_a_numeric_feature_by_hand() -> None:
    # one edge at the reference's median (2.5): shares (0.5, 0.5) against (0.75, 0.25)
    expected = 0.25 * math.log(1.5) - 0.25 * math.log(0.5)
    assert psi_numeric([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(expected)
    assert psi_numeric([1, 2, 3, 4], [4, 3, 2, 1], bins=2) == 0.0
    # an empty bin counts with the floor epsilon
    eps = 1e-4
    empty = (eps - 0.5) * math.log(eps / 0.5) + (1 - 0.5) * math.log(1 / 0.5)  # shares (0, 1)
    assert psi_numeric([1, 2, 3, 4], [3, 4, 3, 4], bins=2, epsilon=eps) == pytest.approx(empty)


def test_psi_of_a_categorical_feature_by_hand() -> None:
    eps = 1e-4
    r = {"a": 0.5, "b": 0.5, "c": eps}
    c = {"a": 0.75, "b": eps, "c": 0.25}
    expected = sum((c[k] - r[k]) * math.log(c[k] / r[k]) for k in r)
    value = psi_categorical(["a", "a", "b", "b"], ["a", "a", "a", "c"], epsilon=eps)
    assert value == pytest.approx(expected)
    assert psi_categorical(["x", "y"], ["y", "x"]) == 0.0
    with pytest.raises(ConfigError):
        psi_categorical([], ["a"])


def test_ks_against_hand_computed_and_scipy() -> None:
    d, p = ks_2samp([1, 2, 3, 4], [3, 4, 5, 6])
    assert d == 0.5
    assert p == pytest.approx(stats.kstwobign.sf(math.sqrt(16 / 8) * 0.5))
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.2, 1.0):
        a, b = rng.normal(size=300), rng.normal(shift, size=200)
        d, p = ks_2samp(a, b)
        reference = stats.ks_2samp(a, b)
        assert d == pytest.approx(reference.statistic)
        assert p == pytest.approx(stats.kstwobign.sf(math.sqrt(300 * 200 / 500) * d), abs=1e-9)
        assert p == pytest.approx(reference.pvalue, abs=0.03)  # scipy's exact small-sample p
    assert ks_2samp([1.0], [1.0]) == (0.0, 1.0)


def test_unseen_rate() -> None:
    assert unseen_rate(["a", "b"], ["a", "c", "c", "d"]) == 0.75
    assert unseen_rate(["a"], []) == 0.0


def test_declaring_features() -> None:
    features = declared_features(SupportTask())
    assert [(f.name, f.key, f.kind) for f in features] == [
        ("channel", "channel", "categorical"),
        ("message.length", "message", "numeric"),
        ("message.words", "message", "words"),
    ]
    inputs = {"message": "Hi, my App 503 crashes!", "channel": "chat"}
    assert [f.value(inputs) for f in features] == [
        "chat",
        23.0,
        ("hi", "my", "app", "crashes"),
    ]
    assert declared_features(object()) == ()
    (amount,) = input_features({"amount": "numeric"})
    assert amount.value({"amount": 3}) == 3.0 and amount.value({"amount": "x"}) is None
    with pytest.raises(ConfigError, match="unknown kind 'date'"):
        input_features({"when": "date"})


def _flagged(settings: StreamSettings) -> dict[str, list[int]]:
    """For each feature, the request indices at which the monitor flagged drift."""
    monitor = DriftMonitor(features=declared_features(SupportTask()), settings=DriftSettings())
    flagged: dict[str, list[int]] = {}
    for request in simulated_stream(settings):
        monitor.observe(request.inputs)
        if request.index % 100 == 99:
            for feature in monitor.report():
                if feature.drifted:
                    flagged.setdefault(feature.name, []).append(request.index)
    return flagged


def test_the_monitor_sees_the_mix_change_and_nothing_on_a_stationary_stream() -> None:
    for seed in range(3):
        mix = StreamSettings(seed=seed, length=3000, change_at=1500, drift="mix")
        assert _flagged(mix.stationary()) == {}
        flagged = _flagged(mix)
        assert min(flagged["channel"]) > 1500  # never before the change
        assert min(flagged["channel"]) < 1500 + 400
        # a change of the routing rule alone does not show in the inputs
        assert _flagged(mix.model_copy(update={"drift": "rule"})) == {}


def test_set_reference_restarts_the_comparison() -> None:
    features = declared_features(SupportTask())
    monitor = DriftMonitor(features=features, settings=DriftSettings(min_current=10))
    chat = [{"message": "The app crashes.", "channel": "chat"}] * 20
    email = [{"message": "The app crashes.", "channel": "email"}] * 20
    monitor.set_reference(chat)
    for inputs in email:
        monitor.observe(inputs)
    channel = next(f for f in monitor.report() if f.name == "channel")
    assert channel.drifted and channel.unseen_rate == 1.0
    assert "unseen rate 1.000" in " ".join(channel.reasons)
    monitor.set_reference(email)
    assert monitor.report() == ()  # the current window starts empty

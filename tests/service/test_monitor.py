"""Observations and the monitor: checked values, rolling windows, late feedback, alarms,
drift in the dashboard summary, and a rebuild by replay."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.service import (
    DetectorSettings,
    DriftSettings,
    Goal,
    Monitor,
    MonitorSettings,
    Observation,
    StreamSettings,
    declared_features,
    simulated_stream,
)
from hyperagents.tasks.support import SupportTask


def test_observations_are_checked_frozen_and_round_trip() -> None:
    inputs = {"message": "hi", "channel": "chat"}
    obs = Observation(time=5.0, quality=1.0, latency_s=0.2, cost_usd=0.001, inputs=inputs)
    inputs["channel"] = "email"
    assert obs.inputs["channel"] == "chat"  # a copy
    with pytest.raises(TypeError):
        obs.inputs["channel"] = "web form"  # type: ignore[index]
    again = Observation.from_json(json.loads(json.dumps(obs.to_json())))
    assert again == obs
    assert obs.with_quality(None).quality is None and obs.with_quality(0.5).latency_s == 0.2
    for bad, match in (
        ({"quality": 1.5}, "quality must be <= 1.0"),
        ({"latency_s": -1.0}, "latency_s must be >= 0.0"),
        ({"cost_usd": math.nan}, "cost_usd must be a finite number"),
        ({"error": "no"}, "error must be a bool"),
        ({"inputs": ["x"]}, "inputs must be a mapping"),
    ):
        with pytest.raises(ConfigError, match=match):
            Observation(time=0.0, **bad)
    with pytest.raises(ConfigError, match="unknown fields"):
        Observation.from_json({"time": 1.0, "label": "x"})
    with pytest.raises(ConfigError, match="time is missing"):
        Observation.from_json({})


def test_rolling_windows() -> None:
    monitor = Monitor(settings=MonitorSettings(window=4, quality_window=3))
    latencies = [0.1, 0.5, 0.2, 0.9, 0.3, 0.4]
    for i, latency in enumerate(latencies):
        quality = None if i % 2 else float(i < 4)  # feedback on requests 0, 2, 4: 1, 1, 0
        obs = Observation(
            time=float(i), quality=quality, latency_s=latency, error=i == 5, cost_usd=0.5
        )
        monitor.observe(obs)
    monitor.feedback(1.0, time=6.0)  # late feedback on request 1
    summary = monitor.summary()
    window = summary["window"]
    assert summary["requests"] == 6 and summary["feedback"] == 4 and summary["errors"] == 1
    assert summary["cost_usd"] == 3.0 and summary["last_time"] == 5.0
    assert window["requests"] == 4 and window["error_rate"] == 0.25
    assert window["latency_p50_s"] == pytest.approx(np.percentile([0.2, 0.9, 0.3, 0.4], 50))
    assert window["latency_p99_s"] == pytest.approx(np.percentile([0.2, 0.9, 0.3, 0.4], 99))
    assert window["quality"] == pytest.approx(2 / 3) and window["quality_n"] == 3
    assert window["cost_usd_mean"] == 0.5
    json.dumps(summary)
    empty = Monitor().summary()["window"]
    assert empty["quality"] is None and empty["latency_p50_s"] is None


def test_a_degradation_alarm_and_a_reset() -> None:
    settings = MonitorSettings(goal=Goal(kind="threshold", threshold=0.8))
    monitor = Monitor(settings=settings)
    rng = np.random.default_rng(0)
    fired_at = None
    for i in range(1500):
        quality = float(rng.random() < (0.9 if i < 500 else 0.6))
        if monitor.observe(Observation(time=10.0 * i, quality=quality)):
            fired_at = i
    assert fired_at is not None and 500 < fired_at < 800
    summary = monitor.summary()
    assert summary["degraded"] and summary["alarm_time"] == 10.0 * fired_at
    assert summary["detector"]["alarm_at"] == fired_at + 1
    monitor.reset()
    assert not monitor.degraded and monitor.summary()["window"]["quality"] is None
    assert monitor.requests == 1500  # the counts are the service's history, kept


def test_drift_in_the_summary_and_a_rebuild_by_replay() -> None:
    settings = MonitorSettings(
        drift=DriftSettings(reference_size=300, window=300, min_current=200),
        detector=DetectorSettings(method="cusum"),
    )
    features = declared_features(SupportTask())
    stream = StreamSettings(seed=2, length=1200, change_at=600, drift="mix")
    observations = [
        Observation(time=r.time, quality=float(r.index < 600), inputs=r.inputs)
        for r in simulated_stream(stream)
    ]

    def replay() -> Monitor:
        monitor = Monitor(settings=settings, features=features)
        for obs in observations:
            monitor.observe(obs)
        return monitor

    monitor = replay()
    drift = {f["name"]: f for f in monitor.summary()["drift"]}
    assert set(drift) == {"channel", "message.length", "message.words"}
    assert drift["channel"]["drifted"] and drift["channel"]["psi"] > 0.2
    assert monitor.drifted() and monitor.degraded
    assert replay().summary() == monitor.summary()  # same observations, same state

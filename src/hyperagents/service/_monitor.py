"""The live monitor: rolling quality, latency, errors and cost, input drift, degradation alarms.

A :class:`Monitor` is fed :class:`~hyperagents.service.Observation` s one at a time (and
feedback that arrives after its request through :meth:`Monitor.feedback`). It keeps bounded
rolling windows, runs the degradation :class:`~hyperagents.service.Detector` on every quality
value and the :class:`~hyperagents.service.DriftMonitor` on every request's inputs, and gives a
JSON-able :meth:`Monitor.summary` for the dashboard. It stores nothing: rebuilt after a restart
by feeding it the recorded observations again (same order, same alarms).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from hyperagents.service._detect import Detector, DetectorSettings, Goal
from hyperagents.service._drift import DriftMonitor, DriftSettings, InputFeature
from hyperagents.service._observations import Observation
from hyperagents.service._settings import Settings

__all__ = ["Monitor", "MonitorSettings"]


class MonitorSettings(Settings):
    """What the monitor keeps and watches for."""

    window: int = Field(
        default=500, ge=1, description="requests in the rolling latency, error and cost windows"
    )
    quality_window: int = Field(
        default=200, ge=1, description="feedback values in the rolling quality window"
    )
    goal: Goal = Field(default_factory=Goal, description="the operator's goal for quality")
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)


class Monitor:
    """Rolling live metrics of one serving champion (see the module docstring).

    Args:
        settings: Windows, goal and detector and drift parameters (defaults when None).
        features: The input features whose drift is watched (none: no drift figures).
    """

    def __init__(
        self, *, settings: MonitorSettings | None = None, features: Sequence[InputFeature] = ()
    ) -> None:
        self.settings = settings or MonitorSettings()
        s = self.settings
        self.detector = Detector(goal=s.goal, settings=s.detector)
        self.drift = DriftMonitor(features=features, settings=s.drift)
        self._latency: deque[float] = deque(maxlen=s.window)
        self._errors: deque[bool] = deque(maxlen=s.window)
        self._cost: deque[float] = deque(maxlen=s.window)
        self._quality: deque[float] = deque(maxlen=s.quality_window)
        self.requests = 0
        self.feedback_count = 0
        self.errors = 0
        self.cost_usd = 0.0
        self.last_time: float | None = None
        self.alarm_time: float | None = None

    def observe(self, observation: Observation) -> bool:
        """Count one answered request (and its feedback, when it has some).

        Returns:
            True when its quality raised the degradation alarm.
        """
        self.requests += 1
        self.errors += observation.error
        self.cost_usd += observation.cost_usd
        self._latency.append(observation.latency_s)
        self._errors.append(observation.error)
        self._cost.append(observation.cost_usd)
        self.last_time = observation.time
        self.drift.observe(observation.inputs)
        if observation.quality is None:
            return False
        return self.feedback(observation.quality, time=observation.time)

    def feedback(self, quality: float, *, time: float) -> bool:
        """Count feedback on an answer (given with its request or later).

        Args:
            quality: The answer's quality in [0, 1].
            time: When the feedback arrived (seconds, as observations' times).

        Returns:
            True when it raised the degradation alarm.

        Raises:
            ConfigError: ``quality`` is not in [0, 1].
        """
        fired = self.detector.update(quality)
        self.feedback_count += 1
        self._quality.append(float(quality))
        if fired:
            self.alarm_time = time
        return fired

    @property
    def degraded(self) -> bool:
        """Whether the degradation alarm stands (since the last :meth:`reset`)."""
        return self.detector.alarmed

    def drifted(self) -> bool:
        """Whether any watched input feature has drifted now."""
        return any(feature.drifted for feature in self.drift.report())

    def reset(self, *, reference_inputs: Iterable[Mapping[str, Any]] | None = None) -> None:
        """Start watching afresh (after an improvement is promoted): the detector forgets,
        the quality window empties and, with ``reference_inputs``, these become the drift
        reference."""
        self.detector.reset()
        self._quality.clear()
        self.alarm_time = None
        if reference_inputs is not None:
            self.drift.set_reference(reference_inputs)

    def summary(self) -> dict[str, Any]:
        """A JSON-able snapshot for the dashboard: counts, rolling figures, detector, drift."""
        latency = np.asarray(self._latency, dtype=float)
        return {
            "requests": self.requests,
            "feedback": self.feedback_count,
            "errors": self.errors,
            "cost_usd": self.cost_usd,
            "last_time": self.last_time,
            "window": {
                "requests": len(self._latency),
                "quality": _mean(self._quality),
                "quality_n": len(self._quality),
                "latency_p50_s": float(np.percentile(latency, 50)) if latency.size else None,
                "latency_p99_s": float(np.percentile(latency, 99)) if latency.size else None,
                "error_rate": _mean(self._errors),
                "cost_usd_mean": _mean(self._cost),
            },
            "goal": self.settings.goal.model_dump(),
            "degraded": self.degraded,
            "alarm_time": self.alarm_time,
            "detector": self.detector.to_json(),
            "drift": [feature.to_json() for feature in self.drift.report()],
        }


def _mean(values: Iterable[float | bool]) -> float | None:
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else None

"""Degradation detection on live quality: Page-Hinkley and one-sided CUSUM.

Both detectors watch the stream of per-request quality values ``x_1, x_2, ...`` (feedback in
[0, 1], higher is better) for a *drop*, against the operator's :class:`Goal`:

* ``Goal(kind="threshold", threshold=t)``: hold ``E[x] >= t``. The reference is ``r = t``.
* ``Goal(kind="maximise")``: keep the metric where it was. The reference is the level the
  detector learnt: the running mean of everything seen since the last reset (Page-Hinkley),
  or a conservative estimate learnt over the first ``reference_size`` values after a reset,
  then frozen (CUSUM): their mean less one standard error, so that the estimation error of
  the learnt level (0.029 for 300 values of 0/1 feedback at 0.5) seldom turns into false
  alarms, at the price of a slightly longer delay.

Each value adds the increment ``g_t = r - x_t - delta``: positive on average once the mean
has dropped by more than ``delta`` below the reference, negative while it holds.

* **One-sided CUSUM** (Page 1954): ``S_t = max(0, S_{t-1} + g_t)``; alarm when
  ``S_t > level``.
* **Page-Hinkley** (Page 1954; Hinkley 1971; as in Gama et al. 2014, with the running mean
  ``r = mean(x_1..x_t)``): ``m_t = m_{t-1} + g_t``, ``M_t = min(M_{t-1}, m_t)``; alarm when
  ``m_t - M_t > level``. Against a fixed reference (a threshold goal) ``m_t - M_t`` is exactly
  the CUSUM statistic, so the two methods differ only for a ``maximise`` goal.

No alarm is raised before ``warmup`` values have been seen since the last reset. Everything is
deterministic: the same values give the same alarms.

False alarms and delay
----------------------
With in-control increments of mean ``-delta`` (quality at the reference) and standard deviation
``sd`` (for 0/1 feedback at level p, ``sd = sqrt(p(1-p))``, at most 0.5), the average run length
to a false alarm is about :func:`average_run_length` ``(-delta, sd, level)`` (Siegmund's
approximation for CUSUM, also a good guide for Page-Hinkley once its mean has settled); after a
drop of ``d`` the average delay is about ``average_run_length(d - delta, sd, level)``, roughly
``level / (d - delta)`` observations. The defaults (``delta = 0.025``, ``level = 30``) give,
for ``sd = 0.46`` (quality 0.7), an in-control average run length near 230 000 observations
and a delay near 390 observations after a drop of 0.1 (near 170 after a drop of 0.2).
Page-Hinkley's running mean is noisy over its first values, so it alarms falsely more often
than that: ``benchmarks/bench_detect.py`` measured 1 false trigger in 20 stationary streams of
4000 requests (2 in 20 with ``level = 25``). Raise ``level`` for fewer false alarms at the
price of a longer delay (the delay grows about linearly in ``level``, the run length about
exponentially).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from hyperagents.exceptions import ConfigError
from hyperagents.service._settings import Settings, parse_settings

__all__ = ["Detector", "DetectorSettings", "Goal", "average_run_length"]


class Goal(Settings):
    """The operator's goal for live quality: a threshold to hold, or a metric to maximise."""

    kind: Literal["threshold", "maximise"] = Field(
        default="maximise",
        description="threshold: alarm when quality falls below `threshold`; maximise: alarm on "
        "a drop from the level learnt since the last reset",
    )
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="the quality to hold (kind=threshold only)"
    )

    @model_validator(mode="after")
    def _threshold_matches_kind(self) -> Goal:
        if self.kind == "threshold" and self.threshold is None:
            raise ValueError("a threshold goal needs `threshold` (the quality to hold, in [0, 1])")
        if self.kind == "maximise" and self.threshold is not None:
            raise ValueError("a maximise goal takes no `threshold`; use kind='threshold'")
        return self


class DetectorSettings(Settings):
    """Parameters of the degradation detector (see the module docstring for their effect)."""

    method: Literal["page-hinkley", "cusum"] = Field(
        default="page-hinkley", description="the sequential statistic"
    )
    delta: float = Field(
        default=0.025,
        ge=0.0,
        le=1.0,
        description="drop below the reference tolerated without alarm",
    )
    level: float = Field(
        default=30.0, gt=0.0, description="alarm level of the statistic (lambda of Page-Hinkley, h)"
    )
    warmup: int = Field(default=100, ge=1, description="values after a reset before any alarm")
    reference_size: int = Field(
        default=300,
        ge=2,
        description="values over which CUSUM learns its reference for a maximise goal",
    )


def average_run_length(drift: float, sd: float, level: float) -> float:
    """Siegmund's approximation of a one-sided CUSUM's average run length to an alarm.

    The increments ``g_t`` have mean ``drift`` and standard deviation ``sd``; the alarm level
    is ``level``. ``ARL = (exp(-2 D b) + 2 D b - 1) / (2 D^2)`` with ``D = drift / sd`` and
    ``b = level / sd + 1.166`` (``b^2 + b`` when ``drift`` is 0).

    Args:
        drift: Mean increment (negative in control, positive after a drop).
        sd: Standard deviation of the increments (> 0).
        level: The alarm level (> 0).

    Returns:
        The approximate expected number of values until an alarm.

    Raises:
        ConfigError: ``sd`` or ``level`` is not positive.
    """
    if sd <= 0 or level <= 0:
        raise ConfigError(f"average_run_length needs sd > 0 and level > 0, not {sd}, {level}")
    b = level / sd + 1.166
    d = drift / sd
    if abs(d) < 1e-9:
        return b * b + b
    return (math.exp(-2.0 * d * b) + 2.0 * d * b - 1.0) / (2.0 * d * d)


class Detector:
    """A sequential drop detector fed one quality value at a time (see the module docstring).

    Args:
        goal: The operator's goal.
        settings: The detector's parameters (defaults when None).
    """

    def __init__(self, *, goal: Goal, settings: DetectorSettings | None = None) -> None:
        self.goal = goal
        self.settings = settings or DetectorSettings()
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (after an improvement or a promotion)."""
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0
        self._cum = 0.0
        self._low = 0.0
        self.statistic = 0.0
        self.reference: float | None = self.goal.threshold
        self.alarm_at: int | None = None

    @property
    def alarmed(self) -> bool:
        """Whether an alarm has fired since the last reset."""
        return self.alarm_at is not None

    def update(self, value: float) -> bool:
        """Add one quality value.

        Args:
            value: The quality of one answer, in [0, 1].

        Returns:
            True when this value raised the alarm (once per reset; later values return False
            while the alarm stands).

        Raises:
            ConfigError: ``value`` is not a number in [0, 1].
        """
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"quality must be a number in [0, 1], not {value!r}")
        s = self.settings
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (value - self.mean)
        reference = self._reference()
        if reference is None:
            return False
        increment = reference - value - s.delta
        if s.method == "cusum":
            self.statistic = max(0.0, self.statistic + increment)
        else:
            self._cum += increment
            self._low = min(self._low, self._cum)
            self.statistic = self._cum - self._low
        if self.alarm_at is None and self.n >= s.warmup and self.statistic > s.level:
            self.alarm_at = self.n
            return True
        return False

    def _reference(self) -> float | None:
        """The reference for the value just counted (None: none yet, no increment)."""
        if self.goal.kind == "threshold":
            return self.reference
        if self.settings.method == "page-hinkley":
            self.reference = self.mean
            return self.reference
        if self.n == self.settings.reference_size:
            # learnt over the first values, then frozen: their mean less one standard error
            sd = math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 0.0
            self.reference = self.mean - sd / math.sqrt(self.n)
            return None
        return self.reference  # None while it is learnt

    def to_json(self) -> dict[str, Any]:
        """The detector's state and parameters as a JSON-able dict (also its dashboard view)."""
        return {
            "goal": self.goal.model_dump(),
            "settings": self.settings.model_dump(),
            "n": self.n,
            "mean": self.mean,
            "m2": self._m2,
            "cum": self._cum,
            "low": self._low,
            "statistic": self.statistic,
            "reference": self.reference,
            "alarm_at": self.alarm_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Detector:
        """The detector :meth:`to_json` described, in the same state.

        Raises:
            ConfigError: The goal or the settings are invalid, or a state field is missing.
        """
        detector = cls(
            goal=parse_settings(Goal, data.get("goal")),
            settings=parse_settings(DetectorSettings, data.get("settings")),
        )
        try:
            detector.n = int(data["n"])
            detector.mean = float(data["mean"])
            detector._m2 = float(data["m2"])
            detector._cum = float(data["cum"])
            detector._low = float(data["low"])
            detector.statistic = float(data["statistic"])
            ref, alarm = data["reference"], data["alarm_at"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid detector state: {exc!r}") from exc
        detector.reference = None if ref is None else float(ref)
        detector.alarm_at = None if alarm is None else int(alarm)
        return detector

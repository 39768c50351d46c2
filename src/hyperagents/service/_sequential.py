"""A/B on live feedback: an always-valid sequential test deciding promote, roll back or go on.

The candidate first runs in **shadow**: it answers the same requests as the champion (whose
answers are the ones served), and each request with feedback on both answers gives a paired
difference ``d = q_candidate - q_champion``. Then, unless it was rolled back, it takes a share
of the traffic (**A/B**): each request is answered by one arm (:func:`assign_arm`), and each
arm's feedback is a sample of its quality. The A/B phase counts its own values: the shadow's
pairs only guard against a worse candidate (it may be rolled back there, never promoted).

The effect ``theta`` (mean candidate quality minus mean champion quality) is estimated by
``est`` with variance ``V`` (shadow: ``var(d) / n``; A/B: ``var_a / n_a + var_b / n_b``,
plug-in variances floored at ``min_variance``). The mixture sequential probability ratio test
(mSPRT, Robbins 1970; Johari et al., "Always valid inference", 2017) with a normal mixture
``N(0, tau^2)`` over ``theta`` rejects ``theta = theta0`` when

    Lambda = sqrt(V / (V + tau^2)) exp(tau^2 (est - theta0)^2 / (2 V (V + tau^2))) >= 1 / alpha,

and the values it does not reject form an always-valid confidence sequence
``est +- sqrt(2 V (V + tau^2) / tau^2 * (ln(1 / alpha) + ln((V + tau^2) / V) / 2))``: with
probability at least ``1 - alpha`` it holds ``theta`` *at every look*, however often one looks
and whenever one stops. The decisions, once every arm has ``min_samples`` values:

* **promote** (A/B only) when the lower bound exceeds ``promote_margin``;
* **roll back** when the upper bound is below ``-rollback_margin`` (significantly worse by more
  than the tolerated regression), in shadow as in A/B;
* **roll back** as inconclusive when every arm has ``max_samples`` values without a decision
  (the champion stays: a candidate must prove itself);
* otherwise **continue**.

Error rates: a candidate no better than ``promote_margin`` is promoted with probability at
most ``alpha``, and one no worse than ``-rollback_margin`` is rolled back as worse with
probability at most ``alpha`` (together at most ``alpha``), up to the normal approximation of
``est`` (the plug-in variance, the 0/1 feedback); ``min_samples`` keeps the approximation
honest. Measured (the tests' setting: 0/1 feedback, equal arms at 0.7, the arms alternating,
up to 2000 values per arm, ``alpha = 0.05``): 200 seeded repeats gave 5 promotions and 3
rollbacks as worse (4% together), 100 repeats at 0.5 gave 2 and 2: about ``alpha``, not far
below it. A gain of 0.2 (0.6 against 0.8) is promoted within 600 values per arm, a gain of
0.05 (0.7 against 0.75) in 42 of 50 repeats, after a median near 800 values per arm.
``tau`` should be of the order of the effects that matter (default
0.1: ten points of quality). The state is JSON-able (:meth:`SequentialTest.to_json`), so a
restart resumes the test where it was.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import Field

from hyperagents.exceptions import ConfigError
from hyperagents.service._settings import Settings, parse_settings

__all__ = [
    "Arm",
    "Interval",
    "Phase",
    "SequentialSettings",
    "SequentialTest",
    "Verdict",
    "assign_arm",
    "confidence_halfwidth",
]


class Arm(StrEnum):
    """Who answers a request in the A/B phase."""

    CHAMPION = "champion"
    CANDIDATE = "candidate"


class Phase(StrEnum):
    """Where the candidate is."""

    SHADOW = "shadow"
    AB = "ab"
    DONE = "done"


class Verdict(StrEnum):
    """The test's decision."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class SequentialSettings(Settings):
    """Parameters of the sequential test (see the module docstring)."""

    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="error rate of the confidence sequence"
    )
    tau: float = Field(
        default=0.1, gt=0, le=1, description="sd of the normal mixture over the effect"
    )
    min_samples: int = Field(
        default=50, ge=2, description="values per arm (or pairs) before deciding"
    )
    max_samples: int = Field(
        default=5000,
        ge=2,
        description="values per arm without a decision: roll back (inconclusive)",
    )
    shadow_samples: int = Field(
        default=200,
        ge=0,
        description="feedback pairs in shadow before the A/B phase (0: no shadow)",
    )
    traffic_share: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="the candidate's share of the requests in the A/B phase",
    )
    promote_margin: float = Field(
        default=0.0, ge=0, le=1, description="the effect the candidate must exceed to be promoted"
    )
    rollback_margin: float = Field(
        default=0.0, ge=0, le=1, description="the regression tolerated before rolling back as worse"
    )
    min_variance: float = Field(
        default=0.01, gt=0, le=1, description="floor of the plug-in variance of one value"
    )


def confidence_halfwidth(variance: float, *, tau: float, alpha: float) -> float:
    """Half-width of the always-valid confidence sequence of an estimate of variance
    ``variance`` (the module docstring's formula).

    Raises:
        ConfigError: ``variance`` or ``tau`` is not positive, or ``alpha`` not in (0, 1).
    """
    if variance <= 0 or tau <= 0 or not 0 < alpha < 1:
        raise ConfigError(f"bad confidence sequence parameters: {variance}, {tau}, {alpha}")
    t2 = tau * tau
    log_term = math.log(1.0 / alpha) + 0.5 * math.log((variance + t2) / variance)
    return math.sqrt(2.0 * variance * (variance + t2) / t2 * log_term)


def assign_arm(key: str, *, share: float, salt: str = "") -> Arm:
    """The arm that answers the request ``key`` in the A/B phase: the candidate for a share
    ``share`` of keys, by a hash (deterministic: the same key always gets the same arm).

    Raises:
        ConfigError: ``share`` is not in [0, 1].
    """
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"traffic share must be in [0, 1], not {share}")
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return Arm.CANDIDATE if u < share else Arm.CHAMPION


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations (Welford)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def variance(self, floor: float) -> float:
        return max(floor, self.m2 / (self.n - 1)) if self.n > 1 else max(floor, 0.25)

    def to_json(self) -> list[float]:
        return [self.n, self.mean, self.m2]

    @classmethod
    def from_json(cls, data: Any) -> _Moments:
        n, mean, m2 = data
        return cls(int(n), float(mean), float(m2))


@dataclass(frozen=True)
class Interval:
    """The always-valid confidence interval of the effect now."""

    estimate: float
    lower: float
    upper: float
    n: int  # pairs in shadow, the smaller arm's count in A/B


class SequentialTest:
    """The shadow then A/B test of one candidate against the champion (module docstring).

    Args:
        settings: The test's parameters (defaults when None).
    """

    def __init__(self, *, settings: SequentialSettings | None = None) -> None:
        self.settings = settings or SequentialSettings()
        self.phase = Phase.SHADOW if self.settings.shadow_samples > 0 else Phase.AB
        self.verdict = Verdict.CONTINUE
        self.reason = ""
        self._pairs = _Moments()
        self._arms = {arm: _Moments() for arm in Arm}

    @property
    def counts(self) -> dict[str, int]:
        """Values counted: shadow pairs and each arm's A/B values."""
        return {"pairs": self._pairs.n, **{arm.value: m.n for arm, m in self._arms.items()}}

    def observe_pair(self, *, champion: float, candidate: float) -> Verdict:
        """Count the feedback on both answers to one request, in the shadow phase.

        Returns:
            The verdict after it (CONTINUE also when the phase moved on to A/B).

        Raises:
            ConfigError: The test is not in its shadow phase, or a quality is not in [0, 1].
        """
        if self.phase is not Phase.SHADOW:
            raise ConfigError(f"a shadow pair was given in the {self.phase.value} phase")
        self._pairs.add(_quality(candidate) - _quality(champion))
        interval = self.interval()
        s = self.settings
        if interval is not None and interval.upper < -s.rollback_margin:
            return self._finish(Verdict.ROLLBACK, f"worse in shadow: {_show(interval)}")
        if self._pairs.n >= s.shadow_samples:
            self.phase = Phase.AB
        return self.verdict

    def observe(self, arm: Arm, quality: float) -> Verdict:
        """Count the feedback on one answer of ``arm``, in the A/B phase.

        Returns:
            The verdict after it.

        Raises:
            ConfigError: The test is not in its A/B phase, or ``quality`` is not in [0, 1].
        """
        if self.phase is not Phase.AB:
            raise ConfigError(f"an A/B value was given in the {self.phase.value} phase")
        self._arms[Arm(arm)].add(_quality(quality))
        interval = self.interval()
        s = self.settings
        if interval is None:
            return self.verdict
        if interval.lower > s.promote_margin:
            return self._finish(Verdict.PROMOTE, f"better: {_show(interval)}")
        if interval.upper < -s.rollback_margin:
            return self._finish(Verdict.ROLLBACK, f"worse: {_show(interval)}")
        if interval.n >= s.max_samples:
            return self._finish(Verdict.ROLLBACK, f"inconclusive: {_show(interval)}")
        return self.verdict

    def interval(self) -> Interval | None:
        """The confidence interval of the effect in the current phase (None before
        ``min_samples``)."""
        s = self.settings
        if self.phase is Phase.SHADOW or (self.phase is Phase.DONE and self._arms_empty()):
            n, estimate = self._pairs.n, self._pairs.mean
            variance = self._pairs.variance(s.min_variance) / max(n, 1)
        else:
            a, b = self._arms[Arm.CHAMPION], self._arms[Arm.CANDIDATE]
            n, estimate = min(a.n, b.n), b.mean - a.mean
            variance = a.variance(s.min_variance) / max(a.n, 1)
            variance += b.variance(s.min_variance) / max(b.n, 1)
        if n < s.min_samples:
            return None
        half = confidence_halfwidth(variance, tau=s.tau, alpha=s.alpha)
        return Interval(estimate, estimate - half, estimate + half, n)

    def _arms_empty(self) -> bool:
        return all(m.n == 0 for m in self._arms.values())

    def _finish(self, verdict: Verdict, reason: str) -> Verdict:
        self.phase, self.verdict, self.reason = Phase.DONE, verdict, reason
        return verdict

    def summary(self) -> dict[str, Any]:
        """Where the test stands, as the service's log records it: phase, verdict, reason,
        counts and the interval (``[lower, upper]`` or None)."""
        interval = self.interval()
        return {
            "phase": self.phase.value,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "counts": self.counts,
            "interval": None if interval is None else [interval.lower, interval.upper],
        }

    def to_json(self) -> dict[str, Any]:
        """The settings and the state as a JSON-able dict (also the dashboard's view)."""
        interval = self.interval()
        return {
            "settings": self.settings.model_dump(),
            "phase": self.phase.value,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "pairs": self._pairs.to_json(),
            "arms": {arm.value: m.to_json() for arm, m in self._arms.items()},
            "interval": None if interval is None else interval.__dict__,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SequentialTest:
        """The test :meth:`to_json` described, in the same state (``interval`` is recomputed).

        Raises:
            ConfigError: The settings or a state field is invalid.
        """
        test = cls(settings=parse_settings(SequentialSettings, data.get("settings")))
        try:
            test.phase = Phase(data["phase"])
            test.verdict = Verdict(data["verdict"])
            test.reason = str(data["reason"])
            test._pairs = _Moments.from_json(data["pairs"])
            test._arms = {arm: _Moments.from_json(data["arms"][arm.value]) for arm in Arm}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid sequential test state: {exc!r}") from exc
        return test


def _quality(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"quality must be a number in [0, 1], not {value!r}")
    return float(value)


def _show(interval: Interval) -> str:
    return (
        f"effect {interval.estimate:+.3f} in [{interval.lower:+.3f}, {interval.upper:+.3f}] "
        f"after {interval.n}"
    )

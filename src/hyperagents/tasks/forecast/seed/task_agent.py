"""Seed task agent of the ``forecast`` task: a parametrised blend of three demand forecasters.

``solve(inputs)`` receives twelve weeks of daily demand (``history``), the promotion and holiday
calendars of the history and the next ``horizon`` days (``promo``, ``holiday``: 0/1 flags), and
the weekday of the first history day (``first_weekday``, 0 = Monday). It returns ``horizon``
non-negative numbers. Steps:

1. **Events**: a log effect per day, ``promo_uplift`` on promotion days (``promo_first_day``
   more on the first day of a spell), ``post_promo_dip`` the day after a spell,
   ``holiday_effect`` on holidays and ``pre_holiday_effect`` the day before one. The history is
   divided by these effects and capped at ``clip_ratio`` times its median.
2. **Weekly profile**: the mean of each weekday over the last ``season_weeks`` weeks relative to
   their overall mean, shrunk towards the prior profile ``dow_0`` (Monday) .. ``dow_6``
   (``season_shrink`` = 1 trusts the data only); the history is divided by it.
3. **Three forecasts** of the de-seasonalised demand: *weekly*, the weighted mean of the last six
   weekly means (``week_w1``, the latest week, .. ``week_w6``) plus ``trend_weight`` times the
   slope over ``trend_weeks`` weeks, damped by ``trend_damp`` per day; *smooth*, damped Holt
   exponential smoothing (``alpha``, ``beta``, ``phi``); *naive*, the same weekday last week.
4. **Blend**: ``w_weekly``, ``w_smooth`` and ``w_naive`` times the three (not normalised), times
   the profile and the events of each future day and ``exp(bias)``.

Deterministic; numpy and the standard library only; reads ``PARAMS`` at call time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PARAMS = {
    "week_w1": 1.0,
    "week_w2": 1.0,
    "week_w3": 1.0,
    "week_w4": 1.0,
    "week_w5": 1.0,
    "week_w6": 1.0,
    "trend_weeks": 4,
    "trend_weight": 0.0,
    "trend_damp": 0.9,
    "alpha": 0.2,
    "beta": 0.05,
    "phi": 0.9,
    "w_weekly": 0.34,
    "w_smooth": 0.33,
    "w_naive": 0.33,
    "season_weeks": 4,
    "season_shrink": 0.5,
    "dow_0": 1.0,
    "dow_1": 1.0,
    "dow_2": 1.0,
    "dow_3": 1.0,
    "dow_4": 1.0,
    "dow_5": 1.0,
    "dow_6": 1.0,
    "promo_uplift": 0.0,
    "promo_first_day": 0.0,
    "post_promo_dip": 0.0,
    "holiday_effect": 0.0,
    "pre_holiday_effect": 0.0,
    "clip_ratio": 10.0,
    "bias": 0.0,
}

PARAM_SPACE = {
    "week_w1": {"type": "float", "low": 0.0, "high": 3.0, "feature": "history"},
    "week_w2": {"type": "float", "low": 0.0, "high": 3.0, "feature": "history"},
    "week_w3": {"type": "float", "low": 0.0, "high": 3.0, "feature": "history"},
    "week_w4": {"type": "float", "low": 0.0, "high": 3.0, "feature": "history"},
    "week_w5": {"type": "float", "low": 0.0, "high": 3.0, "feature": "history"},
    "week_w6": {"type": "float", "low": 0.0, "high": 3.0, "feature": "history"},
    "trend_weeks": {"type": "int", "low": 2, "high": 12, "feature": "history"},
    "trend_weight": {"type": "float", "low": -1.0, "high": 2.0, "feature": "history"},
    "trend_damp": {"type": "float", "low": 0.5, "high": 1.0, "feature": "history"},
    "alpha": {"type": "float", "low": 0.01, "high": 1.0, "scale": "log", "feature": "history"},
    "beta": {"type": "float", "low": 0.0, "high": 0.5, "feature": "history"},
    "phi": {"type": "float", "low": 0.5, "high": 1.0, "feature": "history"},
    "w_weekly": {"type": "float", "low": -0.5, "high": 1.5},
    "w_smooth": {"type": "float", "low": -0.5, "high": 1.5},
    "w_naive": {"type": "float", "low": -0.5, "high": 1.5},
    "season_weeks": {"type": "int", "low": 1, "high": 12, "feature": "first_weekday"},
    "season_shrink": {"type": "float", "low": 0.0, "high": 1.0, "feature": "first_weekday"},
    "dow_0": {"type": "float", "low": 0.2, "high": 2.0, "feature": "first_weekday"},
    "dow_1": {"type": "float", "low": 0.2, "high": 2.0, "feature": "first_weekday"},
    "dow_2": {"type": "float", "low": 0.2, "high": 2.0, "feature": "first_weekday"},
    "dow_3": {"type": "float", "low": 0.2, "high": 2.0, "feature": "first_weekday"},
    "dow_4": {"type": "float", "low": 0.2, "high": 2.0, "feature": "first_weekday"},
    "dow_5": {"type": "float", "low": 0.2, "high": 2.0, "feature": "first_weekday"},
    "dow_6": {"type": "float", "low": 0.2, "high": 2.0, "feature": "first_weekday"},
    "promo_uplift": {"type": "float", "low": -1.0, "high": 2.0, "feature": "promo"},
    "promo_first_day": {"type": "float", "low": -1.0, "high": 1.0, "feature": "promo"},
    "post_promo_dip": {"type": "float", "low": -1.0, "high": 1.0, "feature": "promo"},
    "holiday_effect": {"type": "float", "low": -2.0, "high": 2.0, "feature": "holiday"},
    "pre_holiday_effect": {"type": "float", "low": -1.0, "high": 1.0, "feature": "holiday"},
    "clip_ratio": {"type": "float", "low": 1.2, "high": 20.0, "scale": "log", "feature": "history"},
    "bias": {"type": "float", "low": -0.5, "high": 0.5},
}


def _events(promo: np.ndarray, holiday: np.ndarray) -> np.ndarray:
    """Log effect of promotions and holidays on every day (history and future)."""
    p: dict[str, Any] = PARAMS
    before = np.concatenate([[0.0], promo[:-1]])
    next_holiday = np.concatenate([holiday[1:], [0.0]])
    effect = p["promo_uplift"] * promo
    effect = effect + p["promo_first_day"] * promo * (1.0 - before)
    effect = effect + p["post_promo_dip"] * before * (1.0 - promo)
    effect = effect + p["holiday_effect"] * holiday
    return np.asarray(effect + p["pre_holiday_effect"] * next_holiday * (1.0 - holiday))


def _profile(clean: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Multiplicative weekday profile (mean 1), the data's shrunk towards the prior."""
    p: dict[str, Any] = PARAMS
    prior = np.array([max(float(p[f"dow_{d}"]), 1e-3) for d in range(7)])
    prior = prior / prior.mean()
    span = min(len(clean), 7 * max(1, int(p["season_weeks"])))
    recent, days = clean[-span:], weekday[-span:]
    overall = max(float(recent.mean()), 1e-9)
    data = np.array([recent[days == d].mean() if (days == d).any() else overall for d in range(7)])
    data = data / overall
    shrink = min(max(float(p["season_shrink"]), 0.0), 1.0)
    return np.asarray(np.maximum(shrink * data + (1.0 - shrink) * prior, 1e-3))


def _damped_sum(damp: float, steps: np.ndarray) -> np.ndarray:
    """``sum(damp ** i for i in 1..steps)`` for each (possibly fractional) number of steps."""
    if abs(1.0 - damp) < 1e-9:
        return steps.astype(float)
    return np.asarray(damp * (1.0 - damp**steps) / (1.0 - damp))


def _week_means(level: np.ndarray, count: int) -> np.ndarray:
    """The means of the last ``count`` whole weeks, the latest first."""
    end = len(level)
    return np.array([level[end - 7 * (k + 1) : end - 7 * k].mean() for k in range(count)])


def _weekly(level: np.ndarray, horizon: int) -> np.ndarray:
    """Weighted mean of the last six weekly means, plus a damped trend."""
    p: dict[str, Any] = PARAMS
    means = _week_means(level, min(6, len(level) // 7))
    weights = np.array([max(float(p[f"week_w{k + 1}"]), 0.0) for k in range(len(means))])
    base = float(means @ weights / weights.sum()) if weights.sum() > 0 else float(means.mean())
    recent = _week_means(level, min(max(2, int(p["trend_weeks"])), len(level) // 7))
    slope = (recent[0] - recent[-1]) / (7.0 * (len(recent) - 1)) if len(recent) >= 2 else 0.0
    steps = np.arange(1, horizon + 1) + 3.0
    damp = min(max(float(p["trend_damp"]), 0.0), 1.0)
    return np.asarray(base + float(p["trend_weight"]) * slope * _damped_sum(damp, steps))


def _smooth(level: np.ndarray, horizon: int) -> np.ndarray:
    """Damped Holt exponential smoothing, forecast ``horizon`` days ahead."""
    p: dict[str, Any] = PARAMS
    alpha = min(max(float(p["alpha"]), 0.0), 1.0)
    beta = min(max(float(p["beta"]), 0.0), 1.0)
    phi = min(max(float(p["phi"]), 0.0), 1.0)
    value, slope = float(level[:7].mean()), 0.0
    for y in level.tolist():
        previous = value
        value = alpha * y + (1.0 - alpha) * (value + phi * slope)
        slope = beta * (value - previous) + (1.0 - beta) * phi * slope
    return np.asarray(value + slope * _damped_sum(phi, np.arange(1, horizon + 1)))


def solve(inputs: dict[str, Any]) -> list[float]:
    """Return the forecast of the next ``horizon`` days of demand."""
    p: dict[str, Any] = PARAMS
    history = np.asarray(inputs["history"], dtype=float)
    horizon = int(inputs["horizon"])
    n = len(history)
    events = _events(
        np.asarray(inputs["promo"], dtype=float), np.asarray(inputs["holiday"], dtype=float)
    )
    weekday = (int(inputs["first_weekday"]) + np.arange(n + horizon)) % 7
    clean = history / np.exp(events[:n])
    clean = np.minimum(clean, float(p["clip_ratio"]) * max(float(np.median(clean)), 1.0))
    profile = _profile(clean, weekday[:n])
    level = clean / profile[weekday[:n]]
    naive = level[n - 7 + np.arange(horizon) % 7]
    base = (
        p["w_weekly"] * _weekly(level, horizon)
        + p["w_smooth"] * _smooth(level, horizon)
        + p["w_naive"] * naive
    )
    future = base * profile[weekday[n:]] * np.exp(events[n:] + float(p["bias"]))
    return [round(max(float(v), 0.0), 3) if math.isfinite(v) else 0.0 for v in future]

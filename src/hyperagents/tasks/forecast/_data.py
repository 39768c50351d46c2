"""The seeded generative model behind the ``forecast`` task (see the package docstring).

Everything here is deterministic given ``seed``: each split draws from its own
``numpy.random.default_rng([seed, split_index])`` stream, so changing one split's size never
changes the series of another split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "HISTORY_DAYS",
    "HOLIDAY_FACTOR",
    "HORIZON",
    "STORE_TYPES",
    "Series",
    "generate_split",
]

#: Days of history an instance shows (twelve weeks).
HISTORY_DAYS = 84
#: Days to forecast (two weeks).
HORIZON = 14
#: The weekly profile of each kind of store, Monday first (normalised to mean 1 per series).
STORE_TYPES: dict[str, tuple[float, ...]] = {
    "office": (1.12, 1.15, 1.15, 1.12, 1.05, 0.76, 0.65),
    "leisure": (0.85, 0.82, 0.85, 0.92, 1.1, 1.35, 1.11),
    "neighbourhood": (0.95, 0.92, 0.95, 1.0, 1.12, 1.1, 0.96),
}
_STORE_P = (0.35, 0.3, 0.35)
#: Demand on a public holiday relative to an ordinary day, per kind of store.
HOLIDAY_FACTOR: dict[str, float] = {"office": 0.5, "leisure": 1.5, "neighbourhood": 0.85}
#: Demand the day before a holiday (people stock up), relative to an ordinary day.
PRE_HOLIDAY_FACTOR = 1.2
#: Demand the day after a promotion ends (customers stocked up), relative to an ordinary day.
POST_PROMO_FACTOR = 0.8
#: Median promotion uplift (log-normal across series, log-sd 0.25).
PROMO_UPLIFT = 1.7
#: Shape of the gamma mixing of the Poisson counts (negative binomial demand).
DISPERSION = 40.0


@dataclass(frozen=True)
class Series:
    """One generated instance: what the agent sees and the demand it must forecast."""

    inputs: dict[str, Any]
    future: list[int]
    store: str
    #: The mean demand of each future day (what a forecaster knowing the model would say).
    expected: list[float]


def _spells(rng: np.random.Generator, days: int, start_p: float) -> np.ndarray:
    """0/1 flags of promotion spells of 2..5 days starting with probability ``start_p``."""
    starts = rng.random(days) < start_p
    lengths = rng.integers(2, 6, days)
    flags = np.zeros(days, dtype=int)
    t = 0
    while t < days:
        if starts[t]:
            flags[t : t + lengths[t]] = 1
            t += int(lengths[t]) + 1
        else:
            t += 1
    return flags


def _log_level(rng: np.random.Generator, days: int) -> np.ndarray:
    """Log of the underlying level: drift, a random walk and maybe one level shift."""
    start = rng.normal(np.log(60.0), 0.8)
    drift = rng.normal(0.0, 0.004)
    walk = np.cumsum(rng.normal(0.0, 0.012, days))
    level = start + drift * np.arange(days) + walk
    if rng.random() < 0.3:
        at = int(rng.integers(28, HISTORY_DAYS))
        level[at:] += rng.normal(0.0, 0.35)
    return np.asarray(level)


def _event_factor(store: str, promo: np.ndarray, holiday: np.ndarray, uplift: float) -> np.ndarray:
    """The multiplicative effect of promotions and holidays on each day."""
    before = np.concatenate([[0], promo[:-1]])
    after_holiday = np.concatenate([holiday[1:], [0]])
    factor = np.where(promo == 1, uplift, 1.0)
    factor = factor * np.where((before == 1) & (promo == 0), POST_PROMO_FACTOR, 1.0)
    factor = factor * np.where(holiday == 1, HOLIDAY_FACTOR[store], 1.0)
    pre = (after_holiday == 1) & (holiday == 0)
    return np.asarray(factor * np.where(pre, PRE_HOLIDAY_FACTOR, 1.0))


def _series(rng: np.random.Generator) -> Series:
    """Draw one series (every draw in a fixed order, from the split's stream)."""
    days = HISTORY_DAYS + HORIZON
    store = str(rng.choice(list(STORE_TYPES), p=_STORE_P))
    profile = np.asarray(STORE_TYPES[store]) * np.exp(rng.normal(0.0, 0.1, 7))
    drift = rng.normal(0.0, 0.15, 7)  # the profile moves this far (log) over the 14 weeks
    first_weekday = int(rng.integers(7))
    weekday = (first_weekday + np.arange(days)) % 7
    daily = profile[weekday] * np.exp(drift[weekday] * np.arange(days) / days)
    daily = daily / (profile.mean() * np.exp(drift.mean() * np.arange(days) / days))
    level = np.exp(_log_level(rng, days))
    promo = _spells(rng, days, 0.025)
    holiday = (rng.random(days) < 0.03).astype(int)
    uplift = float(np.exp(rng.normal(np.log(PROMO_UPLIFT), 0.25)))
    mean = level * daily * _event_factor(store, promo, holiday, uplift)
    demand = rng.poisson(mean * rng.gamma(DISPERSION, 1.0 / DISPERSION, days))
    inputs = {
        "history": [int(v) for v in demand[:HISTORY_DAYS]],
        "promo": [int(v) for v in promo],
        "holiday": [int(v) for v in holiday],
        "first_weekday": first_weekday,
        "horizon": HORIZON,
    }
    future = [int(v) for v in demand[HISTORY_DAYS:]]
    return Series(inputs, future, store, [float(v) for v in mean[HISTORY_DAYS:]])


def generate_split(seed: int, split_index: int, n: int) -> list[Series]:
    """The ``n`` series of one split, drawn from ``default_rng([seed, split_index])``."""
    rng = np.random.default_rng([seed, split_index])
    return [_series(rng) for _ in range(n)]

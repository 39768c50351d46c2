"""The ``forecast`` task: forecast two weeks of a store's daily demand from twelve weeks of history.

Each instance is one product at one store. ``inputs``:

* ``history``: 84 daily demand counts (non-negative integers), oldest first;
* ``promo`` and ``holiday``: 98 flags (0/1) each, for the 84 history days and the 14 days to
  forecast (the calendars are known in advance);
* ``first_weekday``: the weekday of the first history day (0 = Monday);
* ``horizon``: 14, the number of days to forecast.

The task agent's ``solve(inputs)`` returns 14 numbers, the forecast of each future day. The score
of an instance is ``1 - WAPE`` floored at 0, where ``WAPE = sum|actual - forecast| / sum(actual)``
(weighted absolute percentage error); a malformed output (not a list of 14 finite numbers;
booleans are not numbers) scores 0 with the reason. The split score is the mean.

Generative model
----------------
Split ``k`` (train 0, val 1, test 2) draws its series from ``numpy.random.default_rng([seed,
k])``, one after the other (:mod:`hyperagents.tasks.forecast._data`). A series has:

* a kind of store, drawn with probabilities .35 / .3 / .35: *office* (busier on weekdays),
  *leisure* (busier at weekends) or *neighbourhood* (a busy Friday and Saturday); a weekly profile
  from its kind with 10% log-normal noise per weekday, which drifts (log-sd 0.15 per weekday over
  the 14 weeks);
* a level: log-normal around 60 a day (log-sd 0.8), a drift (sd 0.4% a day), a random walk (sd
  1.2% a day) and, in 30% of the series, one level shift (log-sd 0.35) somewhere in the last eight
  weeks of history;
* promotions: spells of 2..5 days (about 8% of days) lifting demand by a factor of the series
  (log-normal, median 1.7, log-sd 0.25), and a dip to 0.8 the day after a spell;
* holidays (3% of days): demand times 0.5 in an office store, 1.5 in a leisure one, 0.85 in a
  neighbourhood one, and 1.2 the day before;
* negative binomial counts around that mean (Poisson with gamma mixing, shape 40).

Nothing in the inputs names the kind of store: it shows only in the history. The seed agent's
31 parameters come in groups that act on each other: the event parameters and the weekday
profile clean the history the three forecasters read, and the three forecasts, of nearly the
same quantity, are blended with free weights, so the problem is ill-conditioned (moving two
weights together costs far more than trading one for the other). With the defaults (seed 0;
300 train, 150 val, 150 test) the seed scores 0.746 on val, hill climbs on its parameters
(1,500 to 2,300 steps on train) 0.78 to 0.80, and a forecaster that knows each series' true
mean 0.838: the noise of the counts caps every forecaster there. One effect no parameter can
capture: a holiday lifts or sinks demand by the kind of store.

Instance ids are ``"<split>-<index>"`` (``"val-0042"``), unique across splits. ``target`` is the
list of the 14 actual counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

from hyperagents.program import Program
from hyperagents.tasks._base import Instance, Score
from hyperagents.tasks._generated import GeneratedTask
from hyperagents.tasks._seeds import seed_files
from hyperagents.tasks.forecast._data import HORIZON, generate_split

__all__ = ["ForecastTask", "parse_forecast", "wape"]


def parse_forecast(output: Any, horizon: int = HORIZON) -> tuple[list[float], str]:
    """``horizon`` finite numbers read from ``output``, or ``([], why not)``."""
    if not isinstance(output, (list, tuple)):
        return [], f"expected a list of {horizon} numbers, got {type(output).__name__}"
    if len(output) != horizon:
        return [], f"expected {horizon} numbers, got {len(output)}"
    values: list[float] = []
    for day, value in enumerate(output):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [], f"day {day + 1}: {repr(value)[:40]} is not a number"
        number = float(value)
        if not math.isfinite(number):
            return [], f"day {day + 1}: {value!r} is not finite"
        values.append(number)
    return values, ""


def wape(actual: list[int], forecast: list[float]) -> float:
    """Weighted absolute percentage error (``inf`` when it overflows)."""
    error = sum(abs(a - f) for a, f in zip(actual, forecast, strict=True))
    return error / max(math.fsum(actual), 1.0)


class ForecastTask(GeneratedTask):
    """Two-week daily demand forecasts for store-product series (see the module docstring).

    Options: ``seed`` and the split sizes (see :class:`~hyperagents.tasks.SeededTask`).
    """

    name: ClassVar[str] = "forecast"
    description: ClassVar[str] = (
        "Forecast two weeks of daily store demand from twelve weeks of history, promotions and "
        "holidays (synthetic, seeded; score 1 - WAPE)."
    )
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    instance_timeout: ClassVar[float] = 5.0
    default_sizes: ClassVar[tuple[int, int, int] | None] = (300, 150, 150)
    sandbox_preload: ClassVar[tuple[str, ...]] = ("numpy",)

    def generate(self, split_index: int, n: int) -> Iterable[tuple[Any, Any]]:
        """The inputs and future demand of one split (see the module docstring)."""
        return ((s.inputs, s.future) for s in generate_split(self.seed, split_index, n))

    def score(self, instance: Instance, output: Any) -> Score:
        """``1 - WAPE`` floored at 0, with the error, the bias and the worst day as feedback."""
        actual: list[int] = list(instance.target)
        forecast, reason = parse_forecast(output, len(actual))
        if reason:
            return Score(0.0, f"invalid forecast: {reason}")
        error = wape(actual, forecast)
        if not math.isfinite(error):
            return Score(0.0, "forecast too large: its error overflows")
        total, expected = sum(forecast), math.fsum(actual)
        day = max(range(len(actual)), key=lambda d: abs(actual[d] - forecast[d]))
        return Score(
            max(0.0, 1.0 - error),
            f"WAPE {error:.3f}; forecast total {total:.1f} vs actual {expected:.0f} "
            f"({(total - expected) / max(expected, 1.0):+.0%}); worst day {day + 1}: "
            f"forecast {forecast[day]:.1f}, actual {actual[day]}",
        )

    def seed_program(self) -> Program:
        """The seed hyperagent: the blended forecaster and the offline meta agent."""
        return Program(seed_files("hyperagents.tasks.forecast", "seed/task_agent.py"))

"""How the offline meta agent adapts its own strategy, ``META``, from the outcomes of edits.

Evidence is a list of outcome events (see meta_history.py): the edit that produced the parent
(did the parent beat *its* parent?) with weight 1, plus the outcomes of the parent's existing
children and of its later siblings, with a total weight of at most ``META["context_weight"]``.
All multiplicative updates are clamped to the ranges in ``LIMITS``.

* ``step_scale`` (relative step size, in units of each parameter's range): the per-event
  1/5th success rule, ``step *= growth`` on a success and ``step *= growth ** (-p / (1 - p))``
  on a failure, with ``p = target_success``; a tie (no measurable change, typically an inert
  parameter) leaves it unchanged. The step actually used for the edit is then mutated
  log-normally (``step * exp(tau * N(0, 1))``, self-adaptive ES, in meta_agent.py's ``_adapt``)
  and that mutated value is what the child inherits.
* ``operator_weights``: a Hedge update on the operator that produced the event,
  ``w *= exp(lr * (reward - p))`` with reward 1 for a success and 0 otherwise, then normalised
  with a floor so that no operator dies.
* ``explore`` (probability of a random-reset move): multiplied by ``explore_decay`` on a success
  and by ``explore_growth`` on a failure or tie (stagnation raises exploration).
* ``n_mutations`` (expected number of parameters changed): moves towards the number of
  parameters changed by successful edits.
* counters (``successes``, ``failures``, ``stagnation``) and ``success_ema`` make the history
  self-describing.
"""

from __future__ import annotations

import math
from typing import Any

from meta_history import Event
from meta_operators import OPERATORS
from meta_source import round_sig
from meta_space import as_float

#: Fallback value and valid range of each numeric ``META`` key: ``key: (default, low, high)``.
LIMITS: dict[str, tuple[float, float, float]] = {
    "step_scale": (0.15, 0.01, 0.5),
    "step_growth": (1.5, 1.0, 3.0),
    "target_success": (0.2, 0.01, 0.5),
    "self_adapt_tau": (0.15, 0.0, 1.0),
    "n_mutations": (2.0, 1.0, 64.0),
    "n_mutations_lr": (0.3, 0.0, 1.0),
    "weight_lr": (0.5, 0.0, 5.0),
    "weight_floor": (0.05, 0.0, 0.19),
    "explore": (0.1, 0.02, 0.5),
    "explore_growth": (1.07, 1.0, 2.0),
    "explore_decay": (0.7, 0.1, 1.0),
    "context_weight": (3.0, 0.0, 100.0),
    "ema_lr": (0.2, 0.0, 1.0),
    "success_ema": (0.2, 0.0, 1.0),
    "successes": (0.0, 0.0, 1e12),
    "failures": (0.0, 0.0, 1e12),
    "stagnation": (0.0, 0.0, 1e12),
}


def clamp_limit(key: str, value: Any) -> float:
    """Clamp ``value`` to the valid range of ``META[key]`` (its default if not a number)."""
    default, low, high = LIMITS[key]
    number = as_float(value)
    if number is None:
        number = default
    return min(max(number, low), high)


def sanitize_meta(raw: Any) -> dict[str, Any]:
    """Return a complete, valid ``META`` from whatever the source held (extra keys are kept)."""
    meta: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    for key in LIMITS:
        meta[key] = clamp_limit(key, meta.get(key))
    meta["stagnation"] = int(meta["stagnation"])
    raw_weights = meta.get("operator_weights")
    weights: dict[str, float] = {}
    for op in OPERATORS:
        value = raw_weights.get(op) if isinstance(raw_weights, dict) else None
        number = as_float(value)
        weights[op] = max(number, 0.0) if number is not None else 1.0 / len(OPERATORS)
    meta["operator_weights"] = normalise_weights(weights, float(meta["weight_floor"]))
    return meta


def normalise_weights(weights: dict[str, float], floor: float) -> dict[str, float]:
    """Normalise to sum 1 with every weight at least ``floor`` (rounded for readability)."""
    total = sum(weights.values())
    if total <= 0.0 or not math.isfinite(total):
        probs = {op: 1.0 / len(weights) for op in weights}
    else:
        probs = {op: w / total for op, w in weights.items()}
    floor = min(floor, 1.0 / len(probs))
    # Raise small weights to the floor and take the mass from the others, proportionally.
    low = {op for op, p in probs.items() if p < floor}
    rest = sum(p for op, p in probs.items() if op not in low)
    budget = 1.0 - floor * len(low)
    out = {}
    for op, p in probs.items():
        out[op] = floor if op in low else (p / rest * budget if rest > 0 else floor)
    return {op: round_sig(value, 4) for op, value in out.items()}


def adapt_meta(
    meta: dict[str, Any], events: list[Event]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Apply the adaptation rules (module docstring) for ``events``; return the new ``META``.

    Returns:
        The adapted ``META`` and a record ``{key: [before, after]}`` of what changed.
    """
    new = dict(meta)
    weights = dict(meta["operator_weights"])
    p = float(meta["target_success"])
    log_up = math.log(float(meta["step_growth"]))
    log_down = log_up * p / (1.0 - p)
    lr = float(meta["weight_lr"])
    step = float(meta["step_scale"])
    explore = float(meta["explore"])
    n_mut = float(meta["n_mutations"])
    ema = float(meta["success_ema"])
    for event in events:
        w = event.weight
        success = event.outcome == "success"
        if success:
            step *= math.exp(log_up * w)
            explore *= float(meta["explore_decay"]) ** w
            new["successes"] = float(new["successes"]) + w
            if event.n_changed > 0:
                n_mut += float(meta["n_mutations_lr"]) * w * (event.n_changed - n_mut)
        elif event.outcome == "tie":
            explore *= float(meta["explore_growth"]) ** w
        else:
            step *= math.exp(-log_down * w)
            explore *= float(meta["explore_growth"]) ** w
            new["failures"] = float(new["failures"]) + w
        if event.lineage:
            new["stagnation"] = 0 if success else int(new["stagnation"]) + 1
        ema += float(meta["ema_lr"]) * w * ((1.0 if success else 0.0) - ema)
        if event.operator in weights and event.outcome != "tie":
            reward = 1.0 if success else 0.0
            weights[event.operator] *= math.exp(lr * w * (reward - p))
    new["step_scale"] = round_sig(clamp_limit("step_scale", step))
    new["explore"] = round_sig(clamp_limit("explore", explore))
    new["n_mutations"] = round_sig(clamp_limit("n_mutations", n_mut))
    new["success_ema"] = round_sig(clamp_limit("success_ema", ema))
    new["successes"] = round_sig(float(new["successes"]))
    new["failures"] = round_sig(float(new["failures"]))
    new["operator_weights"] = normalise_weights(weights, float(meta["weight_floor"]))
    record = {
        key: [meta[key], new[key]]
        for key in ("step_scale", "explore", "n_mutations", "success_ema", "operator_weights")
    }
    return new, record

"""The meta agent's strategy portfolio: which proposal mechanism makes an edit, and how often.

The portfolio is part of the state (``META["portfolio"]``, written to ``meta_state.json`` with
the rest), so a child's meta agent starts from its parent's portfolio and a meta agent evolved
on one task carries it to another. Every call adapts it from the outcomes of earlier edits (the
same evidence that adapts the step size, see meta_adapt.py) before drawing this edit's
mechanism; that adaptation is the agent's edit of itself.

Mechanisms (``MECHANISMS``):

* ``tune``: the numeric operators of meta_operators.py, drawn by ``operator_weights``;
* ``surrogate``: the TPE model of the archive (meta_model.py), once it has
  ``surrogate_min_points`` members with parameters;
* ``structure``: an edit of the task agent's code (meta_structure.py), its kind drawn by
  ``structure_kinds``;
* ``restart``: resample half of the parameters uniformly and reset the step size, drawn by its
  share or forced once the lineage went ``restart_after`` edits without an improvement.

Apart from them, where the program carries a model (a ``trainer.py``), each edit is first a
weight update with probability ``weights_share`` (:func:`choose_weights`): the agent then
writes ``training_plan.json`` and the engine trains the child's model on verified data instead
of an edit of the code. ``weights_share`` adapts from the outcomes of earlier weight updates
(``*= exp(share_lr * weight * (reward - target_success))``, kept in its range).

Adaptation: an EXP3-like update of ``shares`` on the mechanism behind each event (``w *= exp(lr
* weight * (reward - target_success) * importance)``, reward 1 for a success, 0 for a failure,
ties skipped, ``importance`` the inverse of the mechanism's share relative to an even share,
capped at 4, since only the mechanism drawn is observed), normalised with the floor
``share_floor`` so that no mechanism dies; the same update of ``structure_kinds`` on the kind
of a structural edit; ``restart_after`` shrinks by 0.8 after a
successful restart and grows by 1.15 after a failed one.
"""

from __future__ import annotations

import math
from typing import Any

from meta_adapt import normalise_weights
from meta_history import Event
from meta_source import round_sig
from meta_space import as_float
from meta_structure import KINDS

#: The mechanisms, in the order of ``shares``.
MECHANISMS = ("tune", "surrogate", "structure", "restart")
#: The operator names (``meta_info["operator"]``) that are not ``tune`` operators.
_OWN_OPERATORS = frozenset({"surrogate", "structure", "restart"})
#: The operator of a weight update (adapts ``weights_share``, not ``shares``).
WEIGHTS = "weights"

#: The largest factor by which the outcome of a rarely drawn mechanism or kind is weighed up.
_IMPORTANCE_CAP = 4.0
#: Valid range of the portfolio's numbers: ``key: (low, high)``.
_RANGES = {
    "share_lr": (0.0, 5.0),
    "share_floor": (0.0, 0.2),
    "restart_after": (3.0, 60.0),
    "surrogate_min_points": (3.0, 100.0),
    "weights_share": (0.05, 0.95),
}


def mechanism_of(operator: str | None) -> str | None:
    """The mechanism behind an edit's operator (None for no edit or an unknown agent's)."""
    if operator in _OWN_OPERATORS:
        return operator
    return None if operator in (None, "none", "llm", WEIGHTS) else "tune"


def sanitize_portfolio(raw: Any, default: dict[str, Any]) -> dict[str, Any]:
    """A complete, valid portfolio from whatever the state held, ``default`` (``META``'s)
    where it holds nothing usable."""
    given = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for key, (low, high) in _RANGES.items():
        number = as_float(given.get(key))
        if number is None:
            number = as_float(default.get(key))
        out[key] = min(max(low if number is None else number, low), high)
    floor = float(out["share_floor"])
    for key, names in (("shares", MECHANISMS), ("structure_kinds", KINDS)):
        fallback = default.get(key)
        known = fallback if isinstance(fallback, dict) else {}
        out[key] = _weights(given.get(key), {n: known.get(n, 1.0) for n in names}, floor)
    return out


def _weights(raw: Any, default: dict[str, Any], floor: float) -> dict[str, float]:
    """The weights of ``default``'s keys read from ``raw`` (a missing one at its default)."""
    weights = {}
    for key, value in default.items():
        number = as_float(raw.get(key)) if isinstance(raw, dict) else None
        if number is None:
            number = as_float(value)
        weights[key] = max(number, 0.0) if number is not None else 0.0
    return normalise_weights(weights, floor)


def adapt_portfolio(
    portfolio: dict[str, Any], events: list[Event], target: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Adapt the portfolio to ``events`` (module docstring); ``target`` is ``target_success``.

    Returns:
        The new portfolio and a record ``{key: [before, after]}`` of what changed.
    """
    shares = dict(portfolio["shares"])
    kinds = dict(portfolio["structure_kinds"])
    restart_after = float(portfolio["restart_after"])
    weights_share = float(portfolio["weights_share"])
    lr = float(portfolio["share_lr"])
    for event in events:
        if event.operator == WEIGHTS and event.outcome != "tie":
            reward = 1.0 if event.outcome == "success" else 0.0
            weights_share *= math.exp(lr * event.weight * (reward - target))
        mechanism = mechanism_of(event.operator)
        if mechanism is None or event.outcome == "tie":
            continue
        reward = 1.0 if event.outcome == "success" else 0.0
        step = lr * event.weight * (reward - target)
        shares[mechanism] *= math.exp(step * _importance(portfolio["shares"], mechanism))
        if mechanism == "structure" and event.kind in kinds:
            kinds[event.kind] *= math.exp(
                step * _importance(portfolio["structure_kinds"], event.kind)
            )
        if mechanism == "restart":
            restart_after *= (0.8 if reward else 1.15) ** event.weight
    floor = float(portfolio["share_floor"])
    new = dict(portfolio)
    new["shares"] = normalise_weights(shares, floor)
    new["structure_kinds"] = normalise_weights(kinds, floor)
    low, high = _RANGES["restart_after"]
    new["restart_after"] = round_sig(min(max(restart_after, low), high), 4)
    low, high = _RANGES["weights_share"]
    new["weights_share"] = round_sig(min(max(weights_share, low), high), 4)
    record = {
        key: [portfolio[key], new[key]]
        for key in ("shares", "structure_kinds", "restart_after", "weights_share")
        if portfolio[key] != new[key]
    }
    return new, record


def _importance(weights: dict[str, float], name: str) -> float:
    """How much one outcome of ``name`` counts: the inverse of its share relative to an even
    share, at most ``_IMPORTANCE_CAP`` (a bandit sees only the mechanism it drew, so a rarely
    drawn one must not lose to a frequent one merely by being tried less)."""
    share = float(weights.get(name, 0.0))
    if share <= 0.0:
        return _IMPORTANCE_CAP
    return min(_IMPORTANCE_CAP, 1.0 / (len(weights) * share))


def choose(portfolio: dict[str, Any], stagnation: float, rng: Any) -> tuple[str, bool]:
    """This edit's mechanism: drawn by ``shares``, or ``restart`` when the lineage has
    stagnated ``restart_after`` times.

    Returns:
        The mechanism and whether the restart was forced.
    """
    if stagnation >= float(portfolio["restart_after"]):
        return "restart", True
    shares = portfolio["shares"]
    names = [name for name in MECHANISMS if shares.get(name, 0.0) > 0.0] or ["tune"]
    return rng.choices(names, weights=[shares.get(n, 1.0) for n in names])[0], False


def choose_weights(portfolio: dict[str, Any], rng: Any) -> bool:
    """Whether this edit is a weight update (drawn with ``weights_share``; only asked where
    the program has a trainer)."""
    return bool(rng.random() < float(portfolio["weights_share"]))

"""What the reviewer's latest reviews make of this edit (runs with a reviewer: level
``feedback``).

The report's ``reviews`` hold the latest reviews of the run's children, oldest first, each
``{generation, issue_type, severity, fix_suggestion, confidence, pattern_detected}``. The
latest one steers this edit, in proportion to its severity and confidence:

* ``regression`` or ``broken_change``: be careful: smaller steps, fewer structural edits and
  restarts, more local tuning;
* ``plateau`` (or a pattern of no new best): be bold: larger steps, more structural edits,
  surrogate proposals and restarts;
* ``persistent_failures``: aim at them: the ``focus`` operator (which targets the input
  features behind failures) is drawn far more often.

The steering changes the draw of this edit only (a copy of the strategy); the state the agent
writes for its child is the adapted state, untouched.
"""

from __future__ import annotations

import copy
from typing import Any

#: How much a review of each severity weighs.
SEVERITY_WEIGHT = {"none": 0.0, "low": 0.5, "medium": 1.0, "high": 1.5, "critical": 2.0}

#: Per issue: (step scale factor, mechanism share factors, operator weight factors).
_STEERING: dict[str, tuple[float, dict[str, float], dict[str, float]]] = {
    "regression": (0.5, {"tune": 1.5, "structure": 0.5, "restart": 0.5}, {"reset": 0.5}),
    "broken_change": (0.5, {"tune": 2.0, "structure": 0.3, "restart": 0.5}, {"reset": 0.5}),
    "plateau": (1.6, {"structure": 2.0, "surrogate": 1.5, "restart": 2.0}, {"reset": 1.5}),
    "persistent_failures": (1.0, {"tune": 1.5}, {"focus": 3.0}),
}


def latest_review(report: dict[str, Any]) -> dict[str, Any] | None:
    """The report's latest review (None when it has none)."""
    reviews = report.get("reviews")
    if not isinstance(reviews, list):
        return None
    found = [r for r in reviews if isinstance(r, dict) and isinstance(r.get("issue_type"), str)]
    return found[-1] if found else None


def _issue(review: dict[str, Any]) -> str:
    """The issue the review steers by (a plateau named only in its pattern counts too)."""
    issue = str(review.get("issue_type"))
    pattern = str(review.get("pattern_detected") or "")
    if issue not in _STEERING and "no new best" in pattern:
        return "plateau"
    return issue


def review_steering(report: dict[str, Any]) -> dict[str, Any] | None:
    """How the latest review steers this edit: ``{issue, strength, step, shares, operators}``
    (factors), or None when there is no review that asks for anything."""
    review = latest_review(report)
    if review is None:
        return None
    issue = _issue(review)
    weight = SEVERITY_WEIGHT.get(str(review.get("severity")), 0.0)
    confidence = review.get("confidence")
    if isinstance(confidence, int | float) and not isinstance(confidence, bool):
        weight *= min(1.0, max(0.0, float(confidence)))
    if issue not in _STEERING or weight <= 0.0:
        return None
    step, shares, operators = _STEERING[issue]

    def scaled(factor: float) -> float:
        return round(1.0 + (factor - 1.0) * min(weight, 2.0), 4)

    return {
        "issue": issue,
        "generation": review.get("generation"),
        "strength": round(weight, 4),
        "step": max(0.1, scaled(step)),
        "shares": {name: max(0.05, scaled(f)) for name, f in shares.items()},
        "operators": {name: max(0.05, scaled(f)) for name, f in operators.items()},
    }


def steered(state: dict[str, Any], steering: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of the strategy ``state`` with ``steering``'s factors applied (``state`` itself
    is left as it is); ``state`` copied unchanged when there is no steering."""
    out = copy.deepcopy(state)
    if not steering:
        return out
    shares = out["portfolio"]["shares"]
    for name, factor in steering["shares"].items():
        if name in shares:
            shares[name] = shares[name] * factor
    weights = out["operator_weights"]
    for name, factor in steering["operators"].items():
        if name in weights:
            weights[name] = weights[name] * factor
    return out

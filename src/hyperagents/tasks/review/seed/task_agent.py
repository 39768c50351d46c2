"""Seed task agent of the ``review`` task: a parametrised rule-based scorer.

``solve(inputs)`` receives one record describing a code submission and returns ``"accept"`` or
``"reject"``. The decision is ``accept`` iff::

    score = bias
          + ci offset (ci_flaky / ci_fail; a passing CI is the reference, 0)
          + change-type offset (type_*; "feature" is the reference, 0)
          - size_penalty * (1 - tests_mitigation if has_tests else 1)
                                  when lines_changed > size_limit
          + coverage_weight * clip(test_coverage_delta, -coverage_cap, coverage_cap)
          - security_penalty      when touches_security
                                  and author_experience_years < security_min_experience
          + experience_weight * min(author_experience_years, 5) / 5
          - rejections_penalty    when prior_rejections >= rejections_limit
          - comments_penalty      when review_comments > comments_limit
          - complexity_penalty    when complexity_delta > complexity_limit
    >= 0

The values in ``PARAMS`` are naive: every weight is 0 except one obvious rule (a failing CI
rejects), and every threshold sits in the middle of its range. ``PARAM_SPACE`` declares the range
of each parameter (and the input field it acts on) for the meta agent that tunes them.
Standalone: standard library only, deterministic, reads ``PARAMS`` at call time.
"""

from __future__ import annotations

from typing import Any

PARAMS = {
    "bias": 0.0,
    "ci_flaky": 0.0,
    "ci_fail": -5.0,
    "type_bugfix": 0.0,
    "type_refactor": 0.0,
    "type_docs": 0.0,
    "type_dependency": 0.0,
    "size_limit": 200.0,
    "size_penalty": 0.0,
    "tests_mitigation": 0.0,
    "coverage_weight": 0.0,
    "coverage_cap": 5.0,
    "security_min_experience": 7.5,
    "security_penalty": 0.0,
    "experience_weight": 0.0,
    "rejections_limit": 5,
    "rejections_penalty": 0.0,
    "comments_limit": 20,
    "comments_penalty": 0.0,
    "complexity_limit": 15,
    "complexity_penalty": 0.0,
}

PARAM_SPACE = {
    "bias": {"type": "float", "low": -5.0, "high": 5.0},
    "ci_flaky": {"type": "float", "low": -5.0, "high": 5.0, "feature": "ci_status"},
    "ci_fail": {"type": "float", "low": -10.0, "high": 5.0, "feature": "ci_status"},
    "type_bugfix": {"type": "float", "low": -5.0, "high": 5.0, "feature": "change_type"},
    "type_refactor": {"type": "float", "low": -5.0, "high": 5.0, "feature": "change_type"},
    "type_docs": {"type": "float", "low": -5.0, "high": 5.0, "feature": "change_type"},
    "type_dependency": {"type": "float", "low": -5.0, "high": 5.0, "feature": "change_type"},
    "size_limit": {
        "type": "float",
        "low": 10.0,
        "high": 5000.0,
        "scale": "log",
        "feature": "lines_changed",
    },
    "size_penalty": {"type": "float", "low": 0.0, "high": 5.0, "feature": "lines_changed"},
    "tests_mitigation": {"type": "float", "low": 0.0, "high": 1.0, "feature": "has_tests"},
    "coverage_weight": {
        "type": "float",
        "low": 0.0,
        "high": 2.0,
        "feature": "test_coverage_delta",
    },
    "coverage_cap": {
        "type": "float",
        "low": 0.5,
        "high": 10.0,
        "feature": "test_coverage_delta",
    },
    "security_min_experience": {
        "type": "float",
        "low": 0.0,
        "high": 15.0,
        "feature": "touches_security",
    },
    "security_penalty": {"type": "float", "low": 0.0, "high": 5.0, "feature": "touches_security"},
    "experience_weight": {
        "type": "float",
        "low": -2.0,
        "high": 2.0,
        "feature": "author_experience_years",
    },
    "rejections_limit": {"type": "int", "low": 1, "high": 8, "feature": "prior_rejections"},
    "rejections_penalty": {"type": "float", "low": 0.0, "high": 5.0, "feature": "prior_rejections"},
    "comments_limit": {"type": "int", "low": 0, "high": 40, "feature": "review_comments"},
    "comments_penalty": {"type": "float", "low": 0.0, "high": 5.0, "feature": "review_comments"},
    "complexity_limit": {"type": "int", "low": -10, "high": 40, "feature": "complexity_delta"},
    "complexity_penalty": {"type": "float", "low": 0.0, "high": 5.0, "feature": "complexity_delta"},
}


def _num(inputs: dict[str, Any], key: str) -> float:
    value = inputs.get(key, 0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def decision_score(inputs: dict[str, Any]) -> float:
    """Return the score of a record; the record is accepted iff it is ``>= 0``."""
    p: dict[str, Any] = PARAMS
    s = float(p["bias"])
    ci = inputs.get("ci_status")
    if ci == "flaky":
        s += p["ci_flaky"]
    elif ci == "fail":
        s += p["ci_fail"]
    change_type = inputs.get("change_type")
    if change_type in ("bugfix", "refactor", "docs", "dependency"):
        s += p["type_" + str(change_type)]
    if _num(inputs, "lines_changed") > p["size_limit"]:
        mitigation = p["tests_mitigation"] if inputs.get("has_tests") else 0.0
        s -= p["size_penalty"] * (1.0 - mitigation)
    cap = p["coverage_cap"]
    s += p["coverage_weight"] * min(max(_num(inputs, "test_coverage_delta"), -cap), cap)
    experience = _num(inputs, "author_experience_years")
    if inputs.get("touches_security") and experience < p["security_min_experience"]:
        s -= p["security_penalty"]
    s += p["experience_weight"] * min(experience, 5.0) / 5.0
    if _num(inputs, "prior_rejections") >= p["rejections_limit"]:
        s -= p["rejections_penalty"]
    if _num(inputs, "review_comments") > p["comments_limit"]:
        s -= p["comments_penalty"]
    if _num(inputs, "complexity_delta") > p["complexity_limit"]:
        s -= p["complexity_penalty"]
    return float(s)


def solve(inputs: dict[str, Any]) -> str:
    """Return ``"accept"`` or ``"reject"`` for one submission record."""
    return "accept" if decision_score(inputs) >= 0.0 else "reject"

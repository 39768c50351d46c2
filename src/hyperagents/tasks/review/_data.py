"""The seeded generative model behind the ``review`` task (see the package docstring).

Everything here is deterministic given ``seed``: each split draws from its own
``numpy.random.default_rng([seed, split_index])`` stream, so changing one split's size never
changes the records of another split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CHANGE_TYPES",
    "CI_STATUSES",
    "LANGUAGES",
    "NOISE_RATE",
    "Example",
    "generate_split",
    "ideal_decision",
    "merit",
]

#: Fraction of labels flipped in every split (exactly ``round(NOISE_RATE * n)`` per split).
NOISE_RATE = 0.07

CHANGE_TYPES: tuple[str, ...] = ("feature", "bugfix", "refactor", "docs", "dependency")
_CHANGE_TYPE_P = (0.35, 0.28, 0.15, 0.10, 0.12)
#: Mean of log(lines_changed) per change type.
_LOG_LINES_MU = {"feature": 5.0, "bugfix": 3.6, "refactor": 5.2, "docs": 3.4, "dependency": 2.8}
_HAS_TESTS_P = {"feature": 0.55, "bugfix": 0.5, "refactor": 0.4, "docs": 0.05, "dependency": 0.2}
_SECURITY_P = {"feature": 0.18, "bugfix": 0.2, "refactor": 0.12, "docs": 0.02, "dependency": 0.25}

CI_STATUSES: tuple[str, ...] = ("pass", "flaky", "fail")
_CI_P = (0.72, 0.15, 0.13)

LANGUAGES: tuple[str, ...] = ("python", "javascript", "go", "java", "rust", "cpp")
_LANGUAGE_P = (0.30, 0.25, 0.15, 0.15, 0.10, 0.05)

#: Offset of the merit per change type.
TYPE_OFFSET: Mapping[str, float] = {
    "feature": 0.0,
    "bugfix": 0.75,
    "refactor": 0.25,
    "docs": 1.5,
    "dependency": -0.5,
}


@dataclass(frozen=True)
class Example:
    """One generated record with its noise-free and (possibly flipped) observed label."""

    record: dict[str, Any]
    clean: str
    label: str


def _record(rng: np.random.Generator) -> dict[str, Any]:
    change_type = CHANGE_TYPES[int(rng.choice(len(CHANGE_TYPES), p=_CHANGE_TYPE_P))]
    language = LANGUAGES[int(rng.choice(len(LANGUAGES), p=_LANGUAGE_P))]
    lines = int(np.clip(round(float(np.exp(rng.normal(_LOG_LINES_MU[change_type], 1.1)))), 1, 5000))
    files = int(min(1 + rng.poisson(np.sqrt(lines) / 3.0), 200))
    has_tests = bool(rng.random() < _HAS_TESTS_P[change_type])
    coverage = float(rng.normal(1.0, 2.0)) if has_tests else float(rng.normal(-1.0, 1.5))
    coverage = round(float(np.clip(coverage, -15.0, 15.0)), 2)
    ci_status = CI_STATUSES[int(rng.choice(len(CI_STATUSES), p=_CI_P))]
    experience = round(float(np.clip(rng.gamma(2.0, 2.5), 0.0, 30.0)), 1)
    prior_rejections = int(min(rng.poisson(1.2), 8))
    touches_security = bool(rng.random() < _SECURITY_P[change_type])
    review_comments = int(min(rng.poisson(1.0 + lines / 80.0), 60))
    if change_type == "feature":
        complexity = rng.normal(lines / 60.0, 3.0)
    elif change_type == "refactor":
        complexity = rng.normal(-lines / 80.0, 3.0)
    elif change_type == "bugfix":
        complexity = rng.normal(0.5, 2.0)
    elif change_type == "dependency":
        complexity = rng.normal(0.0, 1.0)
    else:
        complexity = 0.0
    return {
        "change_type": change_type,
        "language": language,
        "lines_changed": lines,
        "files_touched": files,
        "has_tests": has_tests,
        "test_coverage_delta": coverage,
        "ci_status": ci_status,
        "author_experience_years": experience,
        "prior_rejections": prior_rejections,
        "touches_security": touches_security,
        "review_comments": review_comments,
        "complexity_delta": round(float(np.clip(complexity, -60.0, 60.0))),
    }


def merit(record: Mapping[str, Any]) -> float:
    """The noise-free merit of a record; a record is accepted iff ``merit >= 0``.

    See the package docstring for the formula in words.
    """
    m = TYPE_OFFSET[record["change_type"]]
    ci = record["ci_status"]
    if ci == "fail":
        m -= 5.0
    elif ci == "flaky" and record["change_type"] != "docs":
        m -= 1.0
    lines = record["lines_changed"]
    has_tests = record["has_tests"]
    if lines <= 50:
        m += 0.5
    elif 300 < lines <= 1000:
        m -= 0.25 if has_tests else 1.5
    elif lines > 1000:
        m -= 0.75 if has_tests else 3.0
    m += 0.6 * min(max(record["test_coverage_delta"], -3.0), 1.5)
    experience = record["author_experience_years"]
    if record["touches_security"]:
        if experience < 3.0:
            m -= 3.0
        elif experience < 8.0:
            m -= 0.5
        else:
            m += 0.25
    m += 0.5 * min(experience, 4.0) / 4.0
    rejections = record["prior_rejections"]
    if rejections >= 4:
        m -= 1.5
    elif rejections >= 2:
        m -= 0.5
    if record["review_comments"] > 12:
        m -= 1.0
    complexity = record["complexity_delta"]
    m -= min(max(complexity - 8, 0) / 6.0, 1.5)
    if record["change_type"] == "refactor" and complexity < 0:
        m += 0.5
    return float(m)


def ideal_decision(record: Mapping[str, Any]) -> str:
    """The noise-free label of a record: ``"accept"`` iff :func:`merit` ``>= 0``."""
    return "accept" if merit(record) >= 0.0 else "reject"


def generate_split(seed: int, split_index: int, n: int) -> list[Example]:
    """Generate ``n`` examples of one split.

    Args:
        seed: The task seed.
        split_index: 0 for train, 1 for val, 2 for test (selects an independent stream).
        n: Number of records.
    """
    rng = np.random.default_rng([seed, split_index])
    records = [_record(rng) for _ in range(n)]
    clean = [ideal_decision(r) for r in records]
    n_flip = round(NOISE_RATE * n)
    flipped = set(int(i) for i in rng.choice(n, size=n_flip, replace=False)) if n_flip else set()
    examples = []
    for i, (record, label) in enumerate(zip(records, clean, strict=True)):
        observed = ("reject" if label == "accept" else "accept") if i in flipped else label
        examples.append(Example(record=record, clean=label, label=observed))
    return examples

"""The default reviewer's rules: what it diagnoses from a run's history, offline."""

from __future__ import annotations

import importlib.util
import types
from typing import Any

import pytest

from hyperagents.improvers import default_reviewer
from hyperagents.runs import parse_review


@pytest.fixture(scope="module")
def reviewer(tmp_path_factory: pytest.TempPathFactory) -> types.ModuleType:
    path = tmp_path_factory.mktemp("reviewer") / "reviewer.py"
    path.write_text(default_reviewer())
    spec = importlib.util.spec_from_file_location("default_reviewer_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entry(generation: int, parent: int | None, val: float, **extra: Any) -> dict[str, Any]:
    return {
        "generation": generation,
        "parent": parent,
        "state": extra.pop("state", "complete"),
        "reason": extra.pop("reason", ""),
        "scores": {"val": val},
        "change": {"operator": extra.pop("operator", "perturb")},
        "failed": extra.pop("failed", []),
        **extra,
    }


def history(child: dict[str, Any], earlier: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "task": {"name": "t", "score_range": [0.0, 1.0]},
        "variant": child,
        "history": earlier,
        "reviews": extra.get("reviews", []),
        "llm": False,
    }


def test_a_regression_after_a_kind_of_edit_that_regressed_before_is_a_pattern(
    reviewer: types.ModuleType,
) -> None:
    earlier = [entry(0, None, 0.6), entry(1, 0, 0.5, operator="reset"), entry(2, 0, 0.7)]
    found = reviewer.review("", history(entry(3, 2, 0.55, operator="reset"), earlier))
    assert found["issue_type"] == "regression" and found["severity"] == "high"
    assert "regressions after reset edits (2 times)" in found["pattern_detected"]
    assert parse_review(found) == found  # a valid review as the engine parses it


def test_repeated_failures_plateaus_and_breakage_are_diagnosed(
    reviewer: types.ModuleType,
) -> None:
    earlier = [entry(g, 0, 0.6, failed=["a", "b"]) for g in range(5)]
    found = reviewer.review("", history(entry(5, 0, 0.6, failed=["a", "c"]), earlier))
    assert found["issue_type"] == "plateau"  # five generations without a new best
    assert "instances a fail in most recent variants" in found["pattern_detected"]
    assert "no new best score for 5 generations" in found["pattern_detected"]
    broken = entry(6, 0, 0.0, state="invalid", reason="SyntaxError")
    earlier_broken = [*earlier, entry(5, 0, 0.0, state="failed"), entry(6, 0, 0.0, state="invalid")]
    found = reviewer.review("", history(broken, earlier_broken))
    assert found["issue_type"] == "broken_change" and found["severity"] == "critical"
    assert "SyntaxError" in found["fix_suggestion"]


def test_an_issue_earlier_reviews_keep_raising_is_escalated(reviewer: types.ModuleType) -> None:
    earlier = [entry(0, None, 0.6), entry(1, 0, 0.59)]
    child = entry(2, 0, 0.58)
    alone = reviewer.review("", history(child, earlier))
    assert (alone["issue_type"], alone["severity"]) == ("regression", "low")
    said = [{"generation": g, "issue_type": "regression"} for g in (1, 1)]
    again = reviewer.review("", history(child, earlier, reviews=said))
    assert again["severity"] == "medium"
    assert "regression raised in 3 reviews in a row" in again["pattern_detected"]
    fine = reviewer.review("", history(entry(2, 0, 0.7), earlier))
    assert fine["issue_type"] == "none" and fine["pattern_detected"] is None

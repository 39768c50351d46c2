"""``experiment --levels``: an arm per level (same task, seeds and budgets), and a report that
gives each level's cost per task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.reports import Arm, ExperimentRequest, ExperimentSpec, build_report, run_experiment
from hyperagents.runs import Mode
from hyperagents.storages import InMemoryStorage

from cli_helpers import cli


def test_levels_become_arms_with_their_modes_and_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ExperimentRequest(
        task="shipping", levels="autoresearch,feedback", seeds=2, evaluations=8
    ).spec()
    assert spec.modes == () and spec.levels == ("autoresearch", "feedback")
    assert spec.arms() == [
        Arm(Mode.FROZEN_META, level="autoresearch"),
        Arm(Mode.FROZEN_META, level="feedback"),
    ]
    arm = spec.arms()[1]
    assert spec.run_name(arm, 1) == "shipping-experiment-feedback-s1"
    assert spec.arm_config(arm) == {"max_evaluations": 8, "level": "feedback"}
    # Modes and levels side by side; the default modes only when no level is given.
    both = ExperimentRequest(task="shipping", modes="random", levels="hyperagent").spec()
    assert [a.label for a in both.arms()] == ["random", "hyperagent"]
    assert len(ExperimentRequest(task="shipping").spec().modes) == 4
    with pytest.raises(ConfigError, match="each level may appear once"):
        ExperimentSpec.parse(name="x", task="shipping", levels="feedback,feedback", seeds=1,
                             generations=1)  # fmt: skip
    monkeypatch.setitem(sys.modules, "hyperagents.arena", None)  # (until the arena lands)
    with pytest.raises(ConfigError, match="the arena level needs"):
        ExperimentSpec.parse(name="x", task="shipping", levels="arena", seeds=1, generations=1)
    with pytest.raises(ConfigError, match="sets selector"):
        ExperimentSpec.parse(name="x", task="shipping", levels="autoresearch", seeds=1,
                             generations=1, config={"selector": "random"})  # fmt: skip


def test_an_experiment_of_two_levels_reports_the_cost_per_task(tmp_path: Path) -> None:
    store = InMemoryStorage()
    spec = ExperimentSpec.parse(
        name="lv", task="shipping", levels="autoresearch,feedback", seeds=2, generations=30,
        config={"sandbox": "process", "max_evaluations": 10, "subset_size": 20},
    )  # fmt: skip
    records = run_experiment(spec, storage=store, workers=2)
    assert [(r.name, r.arm, r.mode) for r in records] == [
        ("lv-autoresearch-s0", "autoresearch", "frozen-meta"),
        ("lv-autoresearch-s1", "autoresearch", "frozen-meta"),
        ("lv-feedback-s0", "feedback", "frozen-meta"),
        ("lv-feedback-s1", "feedback", "frozen-meta"),
    ]
    report = build_report("lv", storage=store, out=tmp_path / "report")
    costs = report.statistics["costs"]
    assert set(costs) == {"autoresearch", "feedback"}
    for arm in costs.values():
        assert arm["runs"] == 2
        assert 0 < arm["evaluations"] <= 10  # the same evaluation budget for both levels
        assert arm["variants"] >= 1
        assert arm["llm_cost"] == 0.0 and arm["llm_tokens"] == 0.0  # offline
        assert arm["seconds"] > 0
    saved = json.loads((tmp_path / "report" / "statistics.json").read_text())
    assert saved["costs"] == costs
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Cost per task" in markdown
    assert "| autoresearch | 2 |" in markdown and "| feedback | 2 |" in markdown
    # Only the feedback level had a reviewer: its reviews are counted, per arm.
    reviews = markdown.split("## Reviews", 1)[1].split("##", 1)[0]
    assert "| feedback |" in reviews and "autoresearch" not in reviews
    header = (tmp_path / "report" / "generations.csv").read_text().splitlines()[0]
    assert header.endswith("review_issue,review_severity")


def test_the_command_line_compares_levels(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'e.db'}"
    done = cli(
        "experiment", "--task", "shipping", "--levels", "autoresearch,hyperagent", "--seeds",
        "1", "--evaluations", "6", "-w", "2", "--storage", db, "--sandbox", "process", "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "shipping-experiment-autoresearch-s0" in done.stdout
    assert "shipping-experiment-hyperagent-s0" in done.stdout
    refused = cli("run", "--task", "shipping", "--level", "autoresearch", "--selector",
                  "random", "--storage", db, cwd=tmp_path)  # fmt: skip
    assert refused.returncode != 0
    assert "level autoresearch sets selector to 'best'" in refused.stderr

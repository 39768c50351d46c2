"""``hyperagents report``: tables, figures, statistics and documents from stored runs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hyperagents.exceptions import RunNotFoundError
from hyperagents.reports import (
    MIN_SEEDS,
    ExperimentSpec,
    build_report,
    mann_whitney_u,
    run_experiment,
)
from hyperagents.reports._data import GENERATION_COLUMNS, collect
from hyperagents.runs import Run
from hyperagents.storages import get_storage

from toytask import TUNABLE_TASK_AGENT as TUNABLE
from toytask import ToyTask

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('grid') / 'grid.db'}"
    spec = ExperimentSpec.parse(
        name="g",
        task="toy",
        modes="hyperagent,frozen-meta,no-archive",
        seeds=3,
        generations=5,
        config={"subset_size": 10, "meta_agent": "offline"},
    )
    run_experiment(spec, storage=url, workers=2, task=ToyTask(task_agent=TUNABLE))
    return url


def test_the_table_has_a_row_per_run_and_generation(grid: str, tmp_path: Path) -> None:
    report = build_report("g", storage=grid, out=tmp_path)
    with report.files["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == GENERATION_COLUMNS
    assert len(rows) == 9 * 6  # 9 runs, generations 0..5
    first = [r for r in rows if r["run"] == "g-hyperagent-s0"]
    assert [int(r["generation"]) for r in first] == list(range(6))
    best = [float(r["best_val"]) for r in first]
    assert best == sorted(best)  # the best so far never goes down
    assert all(r["experiment"] == "g" and r["mode"] == "hyperagent" for r in first)


def test_with_pyarrow_the_table_is_also_written_as_parquet(grid: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    report = build_report("g", storage=grid, out=tmp_path)
    table = pq.read_table(report.files["parquet"])
    assert table.column_names == list(GENERATION_COLUMNS)
    assert table.num_rows == 9 * 6
    with report.files["csv"].open() as handle:
        first = next(csv.DictReader(handle))
    assert table.column("run")[0].as_py() == first["run"]
    assert table.column("best_val")[0].as_py() == pytest.approx(float(first["best_val"]))


def test_statistics_agree_with_the_stored_runs(grid: str, tmp_path: Path) -> None:
    report = build_report("g", storage=grid, out=tmp_path, k=3)
    stats = json.loads(report.files["json"].read_text())
    data = collect(get_storage(grid), "g")
    # Arms are compared at equal evaluations: the fewest stage evaluations any run made.
    budget = min(data.rows_of(run)[-1]["evaluations"] for run in data.runs)
    assert stats["evaluations"] == budget
    finals: dict[str, list[float]] = {}
    vals: dict[str, list[float]] = {}
    for run in data.runs:
        rows = [r for r in data.rows_of(run) if r["evaluations"] <= budget]
        final = next(r["champion_test"] for r in reversed(rows) if r["champion_test"] is not None)
        finals.setdefault(run.mode, []).append(final)
        vals.setdefault(run.mode, []).append(
            next(r["best_val"] for r in reversed(rows) if r["best_val"] is not None)
        )
    for mode, values in finals.items():
        entry = stats["modes"][mode]
        assert sorted(entry["final_test"]) == sorted(values)
        assert entry["test"]["median"] == pytest.approx(float(np.median(values)))
        assert entry["test"]["low"] <= entry["test"]["median"] <= entry["test"]["high"]
    pair = next(p for p in stats["pairs"] if (p["a"], p["b"]) == ("hyperagent", "no-archive"))
    expected = mann_whitney_u(finals["hyperagent"], finals["no-archive"])
    assert pair["p_value"] == pytest.approx(expected.p_value)
    assert pair["p_holm"] >= pair["p_value"]
    expected_val = mann_whitney_u(vals["hyperagent"], vals["no-archive"])
    assert pair["val_p_value"] == pytest.approx(expected_val.p_value)
    assert pair["val_p_holm"] >= pair["val_p_value"]
    assert stats["k"] == 3 and stats["k_requested"] == 3
    assert not any("capped" in w for w in stats["warnings"])
    for entry in stats["modes"].values():
        assert all(value >= -1 for value in entry["imp_at_k_values"])
    for mode in stats["modes"]:  # imp@k counts generations: what each arm spent by then
        at_k = [r["evaluations"] for run in data.runs_of(mode) for r in data.rows_of(run)
                if r["generation"] == 3]  # fmt: skip
        assert stats["modes"][mode]["evaluations_at_k"] == pytest.approx(float(np.median(at_k)))
    document = report.files["markdown"].read_text()
    spent = stats["modes"]["hyperagent"]["evaluations_at_k"]
    assert "imp@3 counts generations, as DGM-H does, not evaluations" in document
    assert f"hyperagent {spent:g}" in document


def test_a_capped_k_is_said(grid: str, tmp_path: Path) -> None:
    report = build_report("g", storage=grid, out=tmp_path, k=50)
    assert report.statistics["k"] == 5 and report.statistics["k_requested"] == 50
    for kind in ("markdown", "html"):
        document = report.files[kind].read_text()
        assert "imp@5 (k = 50 capped)" in document and "capped at 5" in document


def test_the_evaluations_column_counts_stage_evaluations(grid: str) -> None:
    store = get_storage(grid)
    data = collect(store, "g")
    for run in data.runs:
        variants = data.variants[run.id]
        spent = [sum(len(v.scores) - ("test" in v.scores) for v in variants[: g + 1])
                 for g in range(len(variants))]  # fmt: skip
        assert [r["evaluations"] for r in data.rows_of(run)] == spent


def test_figures_and_documents_are_self_contained(grid: str, tmp_path: Path) -> None:
    report = build_report("g", storage=grid, out=tmp_path)
    figures = {kind: path for kind, path in report.files.items() if kind.startswith("figure:")}
    assert {"figure:learning", "figure:drift", "figure:costs"} <= set(figures)
    assert sum(kind.startswith("figure:lineage:") for kind in figures) == 3  # best run per mode
    for path in figures.values():
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000
    page = report.files["html"].read_text()
    assert page.count("data:image/png;base64,") == len(figures)
    assert "http://" not in page and "https://" not in page  # nothing fetched from anywhere
    assert "Mann–Whitney" in page and "imp@" in page
    markdown = report.files["markdown"].read_text()
    for path in figures.values():
        assert f"]({path.name})" in markdown


def test_a_single_run_can_be_reported_and_unknown_names_are_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    run = Run.create(task=ToyTask(), name="solo", storage=url, config={"subset_size": 10})
    run.optimize(generations=3)
    report = build_report("solo", storage=url, out=tmp_path / "out")
    stats: dict[str, Any] = report.statistics
    assert list(stats["modes"]) == ["hyperagent"] and stats["pairs"] == []
    assert "need at least two modes" in report.files["markdown"].read_text()
    # One run is too few for a confidence interval: none is given, and the report says why.
    test = stats["modes"]["hyperagent"]["test"]
    assert (test["low"], test["high"], test["n"]) == (None, None, 1)
    assert report.warnings == [
        f"arm hyperagent: 1 run(s), fewer than {MIN_SEEDS}: no confidence intervals "
        "(run more seeds)"
    ]
    for kind in ("markdown", "html"):
        document = report.files[kind].read_text()
        assert f"[no CI: 1 run(s), needs {MIN_SEEDS}]" in document
        assert "fewer than 3: no confidence intervals" in document
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERAGENTS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "hyperagents", "report", "solo", "--storage", url,
         "-o", str(tmp_path / "cli")],
        env={**env, "COLUMNS": "300"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning: arm hyperagent: 1 run(s), fewer than 3" in proc.stderr
    with pytest.raises(RunNotFoundError, match="no experiment or run named"):
        build_report("nothing", storage=url, out=tmp_path / "x")


def test_the_cli_writes_the_report(grid: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERAGENTS_")}
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "hyperagents", "report", "g", "--storage", grid, "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").is_file() and (out / "learning_curves.png").is_file()
    assert "report.html" in proc.stdout
    assert "warning" not in proc.stderr  # three seeds per mode
    missing = subprocess.run(
        [sys.executable, "-m", "hyperagents", "report", "nope", "--storage", grid],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "no experiment or run named" in missing.stderr


def test_a_deep_lineage_is_laid_out_without_recursion(tmp_path: Path) -> None:
    # A no-archive run is one chain: 5,000 generations deep, far past Python's recursion limit.
    from datetime import UTC, datetime

    from hyperagents.reports._data import ReportData
    from hyperagents.reports._plots import plot_lineage
    from hyperagents.storages import RunRecord, RunStatus, VariantRecord, VariantState

    now = datetime.now(UTC)
    run = RunRecord(1, "chain", "toy", "no-archive", 0, {}, "p", RunStatus.COMPLETE, {}, now, now)
    variants = [
        VariantRecord(
            g + 1,
            1,
            g,
            g if g else None,
            "p",
            VariantState.COMPLETE,
            {"val": g / 5000},
            {},
            {},
            None,
            None,
            None,
            now,
            now,
        )
        for g in range(5000)
    ]
    data = ReportData("chain", [run], {1: variants}, [])
    path = plot_lineage(data, run, tmp_path / "chain.png")
    assert path.read_bytes().startswith(PNG)

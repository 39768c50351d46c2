"""``hyperagents report``: tables, figures, statistics, Markdown and a self-contained HTML."""

from __future__ import annotations

import base64
import csv
import html
import importlib.util
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from hyperagents.reports._costs import arm_costs, cost_table, review_table
from hyperagents.reports._data import GENERATION_COLUMNS, ReportData, arm_of, collect
from hyperagents.reports._heldout import HELDOUT_NOTE, heldout_statistics, heldout_table
from hyperagents.reports._plots import (
    plot_costs,
    plot_learning_curves,
    plot_lineage,
    plot_meta_drift,
)
from hyperagents.reports._stats import (
    bootstrap_ci,
    holm,
    imp_at_k,
    mann_whitney_u,
    vargha_delaney_a12,
)
from hyperagents.runs import csv_cell
from hyperagents.storages import BaseStorage, RunRecord, get_storage

__all__ = ["MIN_SEEDS", "Report", "build_report", "statistics"]

#: Significance level the report's sentences use (after Holm's adjustment).
ALPHA = 0.05
#: Fewest runs (seeds) of an arm for a confidence interval: the bootstrap of one or two values
#: gives a degenerate interval (the values themselves), which is not shown.
MIN_SEEDS = 3


@dataclass
class Report:
    """What :func:`build_report` wrote.

    Attributes:
        directory: The output directory.
        files: Every file written, by kind (``"csv"``, ``"html"``, ``"figure:learning"``…).
        statistics: The numbers of the statistics section (also in ``statistics.json``).
        warnings: What makes the statistics weak (arms with fewer than :data:`MIN_SEEDS` runs).
    """

    directory: Path
    files: dict[str, Path] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _final(rows: list[dict[str, Any]], column: str, budget: int | None = None) -> float | None:
    """The last value of ``column`` among ``rows`` (those within ``budget`` stage evaluations
    when it is given)."""
    for row in reversed(rows):
        if budget is not None and row["evaluations"] > budget:
            continue
        if row[column] is not None:
            return float(row[column])
    return None


def statistics(data: ReportData, *, k: int = 50, seed: int = 0) -> dict[str, Any]:
    """Per mode: final champion test (median, bootstrap CI), best val, imp@k; pairwise tests.

    Arms are compared at equal evaluations: the final champion of a run is its best-on-val
    variant once the run had made ``evaluations`` stage evaluations (the fewest any run made,
    :meth:`ReportData.equal_budget`); its test score was measured when it became champion.
    imp@k (DGM-H) is, per run, the best test score among the variants of generations 1..k
    that have one (the champions as each generation settled) minus the seed's test score. It
    counts generations, as DGM-H does (k task agents produced), not evaluations: an arm that
    spends more stage evaluations on a generation has had more of them by generation k, so
    imp@k is not an equal-evaluation comparison. Each arm's entry says how many it had made
    (``evaluations_at_k``, the median over its runs), and the report says so.

    Args:
        data: The runs.
        k: The k of imp@k (capped at the generations run).
        seed: Seed of the bootstrap.

    A median's confidence interval (``low``, ``high``) is None for fewer than
    :data:`MIN_SEEDS` values; ``warnings`` names the arms with so few runs.

    Returns:
        ``{"modes": {mode: {...}}, "pairs": [...], "k": k, "k_requested": k asked,
        "evaluations": budget, "alpha": α, "warnings": [...]}``, JSON-compatible.
    """
    last = max((row["generation"] for row in data.rows), default=0)
    requested, k = k, max(1, min(k, last)) if last else 1
    budget = data.equal_budget()
    modes = {mode: _mode_statistics(data, mode, k, seed, budget) for mode in data.modes}
    pairs = _pairs(data.modes, modes)
    warnings = [
        f"arm {mode}: {entry['runs']} run(s), fewer than {MIN_SEEDS}: no confidence intervals "
        "(run more seeds)"
        for mode, entry in modes.items()
        if entry["runs"] < MIN_SEEDS
    ]
    return {
        "modes": modes,
        "pairs": pairs,
        "k": k,
        "k_requested": requested,
        "evaluations": budget,
        "alpha": ALPHA,
        "warnings": warnings,
    }


def _mode_statistics(
    data: ReportData, mode: str, k: int, seed: int, budget: int | None
) -> dict[str, Any]:
    """One mode's entry of :func:`statistics`: its runs' final test and val scores (within
    ``budget`` evaluations) and imp@k, each with its median and CI."""
    runs = data.runs_of(mode)
    tests: list[float] = []
    vals: list[float] = []
    imps: list[float] = []
    spent: list[float] = []
    for run in runs:
        rows = data.rows_of(run)
        spent += [float(r["evaluations"]) for r in rows if r["generation"] == k][:1]
        test, val = _final(rows, "champion_test", budget), _final(rows, "best_val", budget)
        if test is not None:
            tests.append(test)
        if val is not None:
            vals.append(val)
        imp = _imp_at_k(rows, k)
        if imp is not None:
            imps.append(imp)
    entry: dict[str, Any] = {"runs": len(runs), "final_test": tests, "final_val": vals}
    for name, sample in (("test", tests), ("val", vals), ("imp_at_k", imps)):
        entry[name] = _median_ci(sample, seed) if sample else None
    entry["imp_at_k_values"] = imps
    entry["evaluations_at_k"] = float(median(spent)) if spent else None
    return entry


def _imp_at_k(rows: list[dict[str, Any]], k: int) -> float | None:
    """One run's imp@k (None when its seed has no test score)."""
    seed_rows = [r for r in rows if r["generation"] == 0 and r["test"] is not None]
    later = [r["test"] for r in rows if 1 <= r["generation"] <= k and r["test"] is not None]
    if not seed_rows:
        return None
    return imp_at_k(later or [seed_rows[0]["test"]], seed_rows[0]["test"], k)


def _pairs(names: list[str], modes: dict[str, Any]) -> list[dict[str, Any]]:
    """The pairwise tests of the modes' final test scores (and imp@k), Holm-adjusted, for
    every pair of modes with at least two runs each."""
    pairs: list[dict[str, Any]] = []
    for a, b in itertools.combinations(names, 2):
        if len(modes[a]["final_test"]) < 2 or len(modes[b]["final_test"]) < 2:
            continue
        pairs.append(_pair(a, b, modes))
    for pair, adjusted in zip(pairs, holm([p["p_value"] for p in pairs]), strict=True):
        pair["p_holm"] = adjusted
        pair["cliffs_delta"] = 2 * pair["a12"] - 1
    # The val comparisons are a family of their own, adjusted among themselves.
    with_val = [p for p in pairs if p["val_p_value"] is not None]
    for pair, adjusted in zip(with_val, holm([p["val_p_value"] for p in with_val]), strict=True):
        pair["val_p_holm"] = adjusted
    return pairs


def _pair(a: str, b: str, modes: dict[str, Any]) -> dict[str, Any]:
    """Mann-Whitney U and Vargha-Delaney A12 of modes ``a`` and ``b`` (before Holm)."""
    final_a, final_b = modes[a]["final_test"], modes[b]["final_test"]
    rank_test = mann_whitney_u(final_a, final_b)
    entry: dict[str, Any] = {
        "a": a,
        "b": b,
        "u": rank_test.u,
        "p_value": rank_test.p_value,
        "method": rank_test.method,
        "a12": vargha_delaney_a12(final_a, final_b),
        "imp_p_value": None,
        "val_p_value": None,
        "val_p_holm": None,
    }
    vals_a, vals_b = modes[a]["final_val"], modes[b]["final_val"]
    if len(vals_a) >= 2 and len(vals_b) >= 2:
        entry["val_p_value"] = mann_whitney_u(vals_a, vals_b).p_value
    imps_a, imps_b = modes[a]["imp_at_k_values"], modes[b]["imp_at_k_values"]
    if len(imps_a) >= 2 and len(imps_b) >= 2:
        entry["imp_p_value"] = mann_whitney_u(imps_a, imps_b).p_value
    return entry


def _median_ci(sample: list[float], seed: int) -> dict[str, Any]:
    """The sample's median with its 95% bootstrap CI (None below :data:`MIN_SEEDS` values)."""
    ci = bootstrap_ci(sample, np.median, seed=seed)
    if len(sample) < MIN_SEEDS:
        return {"median": ci.estimate, "low": None, "high": None, "n": len(sample)}
    return {"median": ci.estimate, "low": ci.low, "high": ci.high, "n": len(sample)}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "–"
    if entry["low"] is None:
        return f"{entry['median']:.3f} [no CI: {entry['n']} run(s), needs {MIN_SEEDS}]"
    return f"{entry['median']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _sentences(stats: dict[str, Any]) -> list[str]:
    """Plain statements of what the pairwise tests show."""
    out = []
    for pair in stats["pairs"]:
        a, b = pair["a"], pair["b"]
        ma = stats["modes"][a]["test"]["median"] if stats["modes"][a]["test"] else float("nan")
        mb = stats["modes"][b]["test"]["median"] if stats["modes"][b]["test"] else float("nan")
        verdict = (
            "a significant difference"
            if pair["p_holm"] < stats["alpha"]
            else "no significant difference"
        )
        sentence = (
            f"{a} vs {b}: median final test {ma:.3f} vs {mb:.3f}; {verdict} at α = "
            f"{stats['alpha']} (Mann–Whitney p = {pair['p_value']:.3g}, Holm-adjusted "
            f"{pair['p_holm']:.3g}; A12 = {pair['a12']:.2f})."
        )
        ia, ib = stats["modes"][a]["imp_at_k"], stats["modes"][b]["imp_at_k"]
        if ia and ib and pair.get("imp_p_value") is not None:
            sentence += (
                f" imp@{stats['k']}: median {ia['median']:+.3f} vs {ib['median']:+.3f} "
                f"(Mann–Whitney p = {pair['imp_p_value']:.3g})."
            )
        out.append(sentence)
    return out


def _runs_table(data: ReportData) -> list[list[str]]:
    table = [["run", "arm", "seed", "status", "generations", "evaluations", "best val",
              "champion test"]]  # fmt: skip
    for run in data.runs:
        rows = data.rows_of(run)
        table.append(
            [
                run.name,
                arm_of(run),
                str(run.seed),
                run.status.name.lower(),
                str(max((r["generation"] for r in rows), default=0)),
                str(rows[-1]["evaluations"] if rows else 0),
                _fmt(_final(rows, "best_val")),
                _fmt(_final(rows, "champion_test")),
            ]
        )
    return table


def _mode_table(stats: dict[str, Any]) -> list[list[str]]:
    k = stats["k"]
    capped = f" (k = {stats['k_requested']} capped)" if k < stats["k_requested"] else ""
    table = [["arm", "runs", "final test: median [95% CI]", "best val: median [95% CI]",
              f"imp@{k}{capped}: median [95% CI]"]]  # fmt: skip
    for mode, entry in stats["modes"].items():
        table.append(
            [
                mode,
                str(entry["runs"]),
                _ci(entry["test"]),
                _ci(entry["val"]),
                _ci(entry["imp_at_k"]),
            ]
        )
    return table


def _pairs_table(stats: dict[str, Any]) -> list[list[str]]:
    table = [["comparison", "U", "p (Mann–Whitney)", "p (Holm)", "A12", "Cliff's δ",
              "val: p (Holm)"]]  # fmt: skip
    for p in stats["pairs"]:
        val = "–"
        if p.get("val_p_value") is not None:
            val = f"{p['val_p_value']:.3g} ({p['val_p_holm']:.3g})"
        table.append(
            [
                f"{p['a']} vs {p['b']}",
                _fmt(p["u"], 1),
                f"{p['p_value']:.3g} ({p['method']})",
                f"{p['p_holm']:.3g}",
                f"{p['a12']:.2f}",
                f"{p['cliffs_delta']:+.2f}",
                val,
            ]
        )
    return table


def _markdown_table(table: list[list[str]]) -> str:
    head, *body = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def _html_table(table: list[list[str]]) -> str:
    head, *body = table
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.6rem 0}.note{color:#555;font-size:.9rem}
"""


def _write_csv(data: ReportData, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(GENERATION_COLUMNS))
        writer.writeheader()
        for row in data.rows:
            writer.writerow(
                {key: "" if row[key] is None else csv_cell(row[key]) for key in GENERATION_COLUMNS}
            )


def _write_parquet(data: ReportData, path: Path) -> bool:
    if importlib.util.find_spec("pyarrow") is None:
        return False
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {key: [row[key] for row in data.rows] for key in GENERATION_COLUMNS}
    pq.write_table(pa.table(columns), path)
    return True


def build_report(
    name: str,
    *,
    storage: str | BaseStorage | None = None,
    out: str | Path | None = None,
    k: int = 50,
) -> Report:
    """Write the report of an experiment or a run.

    Writes ``generations.csv`` (and ``generations.parquet`` when pyarrow is installed), the
    figures (``learning_curves.png``, ``meta_drift.png`` when the meta agents recorded numeric
    parameters, ``lineage-<run>.png`` for the best run of each mode, ``costs.png``),
    ``statistics.json``, ``report.md`` and ``report.html`` (self-contained: figures inline).

    Args:
        name: An experiment's name, or a run's name or id.
        storage: Where the runs are.
        out: The output directory (default ``report-<name>``; created).
        k: The k of imp@k.

    Returns:
        What was written.

    Raises:
        RunNotFoundError: No experiment or run of that name.
    """
    store = get_storage(storage)
    data = collect(store, name)
    directory = Path(out) if out is not None else Path(f"report-{name}")
    directory.mkdir(parents=True, exist_ok=True)
    report = Report(directory)
    _write_csv(data, directory / "generations.csv")
    report.files["csv"] = directory / "generations.csv"
    if _write_parquet(data, directory / "generations.parquet"):
        report.files["parquet"] = directory / "generations.parquet"
    report.files["figure:learning"] = plot_learning_curves(data, directory / "learning_curves.png")
    drift = plot_meta_drift(data, directory / "meta_drift.png")
    if drift is not None:
        report.files["figure:drift"] = drift
    for run in _best_run_per_mode(data):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run.name)
        report.files[f"figure:lineage:{run.name}"] = plot_lineage(
            data, run, directory / f"lineage-{safe}.png"
        )
    report.files["figure:costs"] = plot_costs(data, directory / "costs.png")
    stats = statistics(data, k=k)
    stats["costs"] = arm_costs(data)
    stats["heldout"] = heldout_statistics(data)
    report.statistics = stats
    report.warnings = list(stats["warnings"])
    (directory / "statistics.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    report.files["json"] = directory / "statistics.json"
    _write_documents(data, stats, report)
    return report


def _best_run_per_mode(data: ReportData) -> list[RunRecord]:
    best: list[RunRecord] = []
    for mode in data.modes:
        runs = data.runs_of(mode)
        best.append(max(runs, key=lambda r: _final(data.rows_of(r), "best_val") or -math.inf))
    return best


_CAPTIONS = {
    "figure:learning": "Learning curves: the best val score so far and the champion's test "
    "score per generation; lines are medians over seeds, bands 95% bootstrap confidence "
    "intervals of the median.",
    "figure:drift": "Meta-agent parameter drift: the numeric strategy parameters the meta "
    "agents wrote into their own code, per generation (median over seeds). In frozen-meta "
    "mode those edits are discarded: each generation starts again from the seed's values.",
    "figure:costs": "Cost per generation: time, and LLM tokens when a model was used.",
}


def _imp_counts(stats: dict[str, Any]) -> str:
    """What imp@k counts, for the report's introduction: generations, with the stage
    evaluations each arm had made by then."""
    k = stats["k"]
    spent = [
        f"{mode} {entry['evaluations_at_k']:g}"
        for mode, entry in stats["modes"].items()
        if entry.get("evaluations_at_k") is not None
    ]
    made = f" (median per run: {', '.join(spent)})" if spent else ""
    return (
        f" imp@{k} counts generations, as DGM-H does, not evaluations: by generation {k} the "
        f"arms had made different numbers of stage evaluations{made}, so unlike the final "
        "scores it does not compare the arms at equal evaluations."
    )


_COST_NOTE = (
    "Per task (one run) and per variant, the median over each arm's runs: the stage "
    "evaluations of the search (test evaluations not counted), the LLM calls, tokens and US "
    "dollars of every call made for the run's variants (meta agents, reviewers, task agents; "
    "cached answers cost nothing), and the engine seconds."
)
_REVIEW_NOTE = (
    "The reviewer's verdicts (runs with a reviewer, level feedback): children reviewed after "
    "their benchmark, those it gave no review of (the run went on), and the issues it found."
)


def _extra_tables(data: ReportData, stats: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The cost table and, where runs had a reviewer, the reviews table, each with its title
    and note."""
    tables: list[tuple[str, str, Any]] = [("Cost per task", _COST_NOTE, cost_table(stats["costs"]))]
    heldout = heldout_table(stats.get("heldout", {}))
    if heldout is not None:
        tables.append(("Held-out adversarial suite", HELDOUT_NOTE, heldout))
    reviews = review_table(data)
    if reviews is not None:
        tables.append(("Reviews", _REVIEW_NOTE, reviews))
    return tables


def _write_documents(data: ReportData, stats: dict[str, Any], report: Report) -> None:
    runs_table, mode_table, pairs_table = _runs_table(data), _mode_table(stats), _pairs_table(stats)
    sentences = _sentences(stats)
    figures = [(kind, path) for kind, path in report.files.items() if kind.startswith("figure:")]
    k = stats["k"]
    intro = (
        f"{len(data.runs)} run(s) of task {data.rows[0]['task'] if data.rows else '?'}; modes "
        f"{', '.join(data.modes)}. Arms are compared at equal evaluations: the final champion is "
        f"each run's best variant on val once it had made {stats['evaluations']} stage "
        f"evaluations (the fewest any run made; test evaluations not counted); its test score "
        f"was measured once, when it became champion. Pairwise tests are on final test (and, "
        f"in the last column, final val) scores. imp@{k}: the best test score among the "
        f"champions of generations 1..{k} minus the seed's (DGM-H)"
        + (
            f"; k = {stats['k_requested']} was asked for and capped at {k}, the generations run."
            if k < stats["k_requested"]
            else "."
        )
        + _imp_counts(stats)
    )
    md = [f"# Report: {data.name}", "", intro, "", "## Runs", "", _markdown_table(runs_table)]
    md += ["", "## Statistics", ""] + [f"**Warning:** {w}" for w in report.warnings]
    md += ["", _markdown_table(mode_table), ""]
    if pairs_table[1:]:
        md += [_markdown_table(pairs_table), ""] + [f"- {s}" for s in sentences] + [""]
    else:
        md += ["(Pairwise tests need at least two modes with two runs each.)", ""]
    extra = _extra_tables(data, stats)
    for title, note, table in extra:
        md += [f"## {title}", "", note, "", _markdown_table(table), ""]
    md += ["## Figures", ""]
    for kind, path in figures:
        caption = _CAPTIONS.get(kind, f"Lineage of {kind.rsplit(':', 1)[-1]}: colour = val score, "
                                "champion's path in red.")  # fmt: skip
        md += [f"![{caption}]({path.name})", "", f"*{caption}*", ""]
    (report.directory / "report.md").write_text("\n".join(md), encoding="utf-8")
    report.files["markdown"] = report.directory / "report.md"

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Report: {html.escape(data.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Report: {html.escape(data.name)}</h1><p>{html.escape(intro)}</p>",
        "<h2>Runs</h2>",
        _html_table(runs_table),
        "<h2>Statistics</h2>",
        *(f"<p class='note'><b>Warning:</b> {html.escape(w)}</p>" for w in report.warnings),
        _html_table(mode_table),
    ]
    if pairs_table[1:]:
        parts.append(_html_table(pairs_table))
        parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>")
    for title, note, table in extra:
        parts += [f"<h2>{title}</h2><p class='note'>{html.escape(note)}</p>", _html_table(table)]
    parts.append("<h2>Figures</h2>")
    for kind, path in figures:
        caption = _CAPTIONS.get(kind, f"Lineage of {kind.rsplit(':', 1)[-1]}: colour = val score, "
                                "champion's path in red.")  # fmt: skip
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    (report.directory / "report.html").write_text("".join(parts), encoding="utf-8")
    report.files["html"] = report.directory / "report.html"

"""Self-improvement against the baselines at equal evaluations: issue 16's targets, checked.

For each task, one experiment (``hyperagents experiment``) runs every arm × seed with the same
budget of stage evaluations; its report (``hyperagents report``) compares the arms at equal
evaluations with Mann–Whitney tests and Holm's adjustment. This script then reads the reports'
statistics (and the generations each run made, from its ``generations.csv``) and says,
with the figures, whether each target is met:

1. on every task, hyperagent's median final test is >= random search's and >= Optuna-TPE's;
   on at least two tasks it is strictly better than both (Holm-adjusted p < 0.05);
2. on at least one long-horizon task (every hyperagent and frozen-meta run made >= 300
   generations), hyperagent > frozen-meta (Holm-adjusted p < 0.05);
3. with ``--transfer SOURCE:TARGET``, a meta agent evolved on SOURCE (the champion of
   hyperagent seed 0) beats TARGET's own seed meta agent on imp@k (frozen-meta arms, p < 0.05).

A missed target is a result: the script prints it with its figures and exits 0; it exits 1
only when something could not run.

Usage (resumable: the same command continues an interrupted grid):
    python benchmarks/bench_baselines.py --tasks review,packing --seeds 5 --evaluations 150
    python benchmarks/bench_baselines.py --tasks review --seeds 5 --evaluations 150 \\
        --transfer review:support --long review
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from hyperagents.reports import ExperimentRequest, build_report, run_experiment
from hyperagents.storages import get_storage

ALPHA = 0.05
BASELINE_ARMS = ("random", "optuna-tpe")
#: The generations every hyperagent and frozen-meta run must make for target 2 (the issue's
#: "long horizons").
LONG_GENERATIONS = 300


def run_grid(
    task: str, arms: str, seeds: int, evaluations: int, url: str, workers: int, **extra: Any
) -> dict[str, Any]:
    """Run (or continue) one experiment and return its report's statistics."""
    name = extra.pop("name", f"bench16-{task}-e{evaluations}")
    request = ExperimentRequest(
        task=task,
        modes=arms,
        seeds=seeds,
        evaluations=evaluations,
        name=name,
        workers=workers,
        **extra,
    )
    spec = request.spec()
    start, cpu = time.perf_counter(), _cpu()
    run_experiment(spec, storage=url, workers=request.engine_workers)
    wall, used = time.perf_counter() - start, _cpu() - cpu
    out = Path(__file__).resolve().parent / "out" / f"report-{name}"
    report = build_report(name, storage=url, out=out, k=evaluations)
    stats = dict(report.statistics)
    stats["wall_seconds"], stats["cpu_seconds"], stats["report"] = wall, used, str(out)
    stats["generations"] = generations_per_arm(report.files["csv"])
    return stats


def generations_per_arm(table: Path) -> dict[str, list[int]]:
    """The generations each run of each arm made (its last generation's number), from a
    report's ``generations.csv``; runs in the table's order."""
    last: dict[tuple[str, str], int] = {}
    with table.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = (row["arm"], row["run"])
            last[key] = max(last.get(key, 0), int(row["generation"]))
    per_arm: dict[str, list[int]] = {}
    for (arm, _), generations in last.items():
        per_arm.setdefault(arm, []).append(generations)
    return per_arm


def _span(values: list[int]) -> str:
    """``min–max`` of a list of generation counts (``-`` when empty)."""
    return f"{min(values)}–{max(values)}" if values else "-"


def _ci(entry: dict[str, Any] | None) -> str:
    """``median [low, high]`` of a report's entry."""
    if entry is None:
        return "-"
    low, high = entry["low"], entry["high"]
    bounds = f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else ""
    return f"{entry['median']:.4g}{bounds}"


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (the sandboxed agents)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _pair(stats: dict[str, Any], a: str, b: str) -> dict[str, Any] | None:
    """The report's test of arms ``a`` and ``b`` (oriented as asked), or None."""
    for pair in stats["pairs"]:
        if (pair["a"], pair["b"]) == (a, b):
            return dict(pair)
        if (pair["a"], pair["b"]) == (b, a):
            flipped = dict(pair)
            flipped["a12"] = 1 - pair["a12"]
            return flipped
    return None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _median(stats: dict[str, Any], arm: str, key: str = "test") -> float | None:
    entry = stats["modes"].get(arm, {}).get(key)
    return None if entry is None else float(entry["median"])


def target_baselines(per_task: dict[str, dict[str, Any]]) -> tuple[bool, list[str]]:
    """Target 1, with one line of figures per task."""
    lines, at_least, better = [], True, 0
    for task, stats in per_task.items():
        mine = _median(stats, "hyperagent")
        parts, strictly = [f"{task}: hyperagent median test {_num(mine)}"], True
        for arm in BASELINE_ARMS:
            theirs = _median(stats, arm)
            pair = _pair(stats, "hyperagent", arm)
            if mine is None or theirs is None or pair is None:
                parts.append(f"{arm}: missing")
                at_least = strictly = False
                continue
            at_least &= mine >= theirs
            strictly &= mine > theirs and pair["p_holm"] < ALPHA
            parts.append(
                f"{arm} {theirs:.4g} (p {pair['p_value']:.3g}, Holm {pair['p_holm']:.3g}, "
                f"A12 {pair['a12']:.2f})"
            )
        better += strictly
        lines.append("; ".join(parts) + f" -> {'strictly better' if strictly else 'not'}")
    met = at_least and better >= 2
    lines.append(f">= both baselines on every task: {at_least}; strictly better on {better}")
    return met, lines


def target_frozen(per_task: dict[str, dict[str, Any]], long: list[str]) -> tuple[bool, list[str]]:
    """Target 2 on the long-horizon tasks."""
    lines, met = [], False
    for task in long:
        stats = per_task.get(task)
        pair = _pair(stats, "hyperagent", "frozen-meta") if stats else None
        if stats is None or pair is None:
            lines.append(f"{task}: no hyperagent vs frozen-meta comparison")
            continue
        mine, theirs = _median(stats, "hyperagent"), _median(stats, "frozen-meta")
        won = mine is not None and theirs is not None and mine > theirs
        won &= pair["p_holm"] < ALPHA
        made = [
            n for arm in ("hyperagent", "frozen-meta") for n in stats["generations"].get(arm, [])
        ]
        long_enough = bool(made) and min(made) >= LONG_GENERATIONS
        short = "" if long_enough else f" (< {LONG_GENERATIONS}: not long-horizon)"
        met |= won and long_enough
        lines.append(
            f"{task}: hyperagent {_num(mine)} vs frozen-meta {_num(theirs)} "
            f"(p {pair['p_value']:.3g}, Holm {pair['p_holm']:.3g}, A12 {pair['a12']:.2f}); "
            f"generations {_span(made)}{short} -> {'met' if won and long_enough else 'not'}"
        )
    return met, lines


def target_transfer(stats: dict[str, Any]) -> tuple[bool, list[str]]:
    """Target 3 from a transfer experiment's statistics (imp@k of the two frozen-meta arms)."""
    own = stats["modes"].get("frozen-meta", {}).get("imp_at_k")
    moved = stats["modes"].get("frozen-meta+transfer", {}).get("imp_at_k")
    pair = _pair(stats, "frozen-meta+transfer", "frozen-meta")
    if own is None or moved is None or pair is None or pair.get("imp_p_value") is None:
        return False, ["transfer: not enough runs to compare imp@k"]
    won = moved["median"] > own["median"] and pair["imp_p_value"] < ALPHA
    line = (
        f"imp@{stats['k']}: transferred {moved['median']:+.4g} vs own {own['median']:+.4g} "
        f"(Mann–Whitney p {pair['imp_p_value']:.3g}) -> {'met' if won else 'not'}"
    )
    return won, [line]


def _transfer(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the transfer experiment ``SOURCE:TARGET`` (the source grid must have run)."""
    source, target = args.transfer.split(":", 1)
    donor = f"bench16-{source}-e{args.evaluations}-hyperagent-s0/champion"
    return run_grid(
        target,
        "frozen-meta",
        args.seeds,
        args.evaluations,
        url,
        args.workers,
        name=f"bench16-transfer-{source}-{target}-e{args.evaluations}",
        meta_from=donor,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="review,packing")
    parser.add_argument("--arms", default="hyperagent,frozen-meta,random,optuna-tpe")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evaluations", type=int, default=150)
    parser.add_argument("--workers", type=int, default=None, help="runs at once [CPUs]")
    parser.add_argument("--long", default="", help="tasks counted as long-horizon (target 2)")
    parser.add_argument("--transfer", default=None, metavar="SOURCE:TARGET")
    parser.add_argument("--storage", default=None, help="default: benchmarks/out/bench16.db")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    url = args.storage or f"sqlite:///{out / 'bench16.db'}"
    get_storage(url).close()
    print(f"load before: {os.getloadavg()}")
    per_task = {
        task: run_grid(task, args.arms, args.seeds, args.evaluations, url, args.workers)
        for task in args.tasks.split(",")
    }
    for task, stats in per_task.items():
        print(
            f"{task}: {stats['evaluations']} evaluations per run compared; "
            f"wall {stats['wall_seconds']:.0f} s, CPU {stats['cpu_seconds']:.0f} s; "
            f"report {stats['report']}"
        )
        for arm, entry in stats["modes"].items():
            print(
                f"  {arm:<14} runs {entry['runs']}  generations "
                f"{_span(stats['generations'].get(arm, []))}  test {_ci(entry['test'])}  "
                f"val {_ci(entry['val'])}"
            )
    results = {"baselines": target_baselines(per_task)}
    long = [t for t in args.long.split(",") if t]
    if long:
        results["frozen-meta"] = target_frozen(per_task, long)
    if args.transfer:
        results["transfer"] = target_transfer(_transfer(args, url))
    for name, (met, lines) in results.items():
        print(f"target {name}: {'MET' if met else 'MISSED'}")
        for line in lines:
            print(f"  {line}")
    print(f"load after: {os.getloadavg()}")
    if args.json:
        figures = {"per_task": per_task, "targets": {k: v[0] for k, v in results.items()}}
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

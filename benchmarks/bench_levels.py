"""The levels side by side on one task: seeds × an equal evaluation budget, with cost per task.

Runs ``hyperagents experiment --levels`` (the arms ``autoresearch``, ``feedback``,
``hyperagent`` by default; ``arena`` once ``hyperagents.arena`` provides it) in one SQLite file,
writes the experiment's report, and prints per level: how many seeds improved on the seed
agent's val score, the median best val and champion test, and the cost per task (evaluations,
LLM calls, tokens and dollars, seconds per run).

Usage:
    python benchmarks/bench_levels.py --task shipping --seeds 5 --evaluations 150
    python benchmarks/bench_levels.py --task email_validation --seeds 5 --evaluations 100 \\
        --levels autoresearch,feedback,hyperagent --workers 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hyperagents.reports import ExperimentRequest, build_report, run_experiment
from hyperagents.storages import VariantState, get_storage


def improved_seeds(url: str, runs: list[Any]) -> dict[str, list[bool]]:
    """Per arm, whether each run's champion beat its seed agent on val."""
    store = get_storage(url)
    out: dict[str, list[bool]] = {}
    for record in runs:
        variants = store.list_variants(record.id)
        seed = next(v for v in variants if v.generation == 0).scores.get("val")
        best = max(
            (v.scores["val"] for v in variants
             if v.state is VariantState.COMPLETE and "val" in v.scores),
            default=None,
        )  # fmt: skip
        out.setdefault(record.arm, []).append(
            seed is not None and best is not None and best > seed + 1e-12
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="shipping")
    parser.add_argument("--levels", default="autoresearch,feedback,hyperagent")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evaluations", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sandbox", default=None)
    parser.add_argument("--storage", default=None, help="default: sqlite under benchmarks/out/")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    url = args.storage or f"sqlite:///{out / f'levels-{args.task}.db'}"
    request = ExperimentRequest(
        task=args.task,
        levels=args.levels,
        seeds=args.seeds,
        evaluations=args.evaluations,
        name=f"levels-{args.task}-e{args.evaluations}",
        sandbox=args.sandbox,
    )
    spec = request.spec()
    runs = run_experiment(spec, storage=url, workers=args.workers)
    report = build_report(spec.name, storage=url, out=out / f"report-{spec.name}")
    stats, improved = report.statistics, improved_seeds(url, runs)
    print(f"task {args.task}: {args.seeds} seeds x {args.evaluations} evaluations; {url}")
    columns = ("level", "improved", "best val", "champion test", "evals/task", "LLM $/task",
               "tokens/task", "s/task")  # fmt: skip
    print(" | ".join(columns))
    for arm, entry in stats["modes"].items():
        cost = stats["costs"][arm]
        val, test = entry["val"], entry["test"]
        print(
            f"{arm} | {sum(improved.get(arm, []))}/{len(improved.get(arm, []))} | "
            f"{val['median'] if val else float('nan'):.4f} | "
            f"{test['median'] if test else float('nan'):.4f} | {cost['evaluations']:.0f} | "
            f"{cost['llm_cost']:.4f} | {cost['llm_tokens']:.0f} | {cost['seconds']:.1f}"
        )
    print(f"report: {report.files['markdown']}")
    if args.json:
        args.json.write_text(
            json.dumps({"statistics": stats, "improved": improved}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()

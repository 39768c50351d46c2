"""Search efficiency of the three modes: seeds × generations on a built-in task.

Runs every (mode, seed) pair as an independent run in one SQLite file (two runs at a time,
one per core), then prints, per mode, the seed agent's scores and the median and spread
(min–max) across seeds of the best val score and of the final champion's test score.

Usage:
    python benchmarks/bench_modes.py --task review --seeds 5 --generations 60
    python benchmarks/bench_modes.py --task packing --seeds 1 --generations 60 --modes hyperagent
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from hyperagents import Run
from hyperagents.storages import get_storage


def one_run(task: str, mode: str, seed: int, generations: int, url: str) -> dict[str, Any]:
    name = f"bench-{task}-{mode}-s{seed}-g{generations}"
    store = get_storage(url)
    try:
        run = Run.load(name, storage=store)
    except Exception:
        run = Run.create(task=task, mode=mode, seed=seed, name=name, storage=store)
    start = time.perf_counter()
    run.optimize(generations=max(0, generations - run.target_after(None)))
    info = run.summary()
    champion = info["champion"] or {"scores": {}}
    return {
        "task": task,
        "mode": mode,
        "seed": seed,
        "generations": info["generations"],
        "seed_val": info["seed_scores"].get("val"),
        "seed_test": info["seed_scores"].get("test"),
        "best_val": champion["scores"].get("val"),
        "champion_test": champion["scores"].get("test"),
        "states": info["states"],
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="review")
    parser.add_argument("--modes", default="hyperagent,frozen-meta,no-archive")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=60)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--storage", default=None, help="default: sqlite file under benchmarks/out/"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write rows here")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    url = args.storage or f"sqlite:///{out / f'modes-{args.task}.db'}"
    get_storage(url).close()  # create the schema once, before parallel workers open it
    jobs = [
        (args.task, mode, seed, args.generations, url)
        for mode in args.modes.split(",")
        for seed in range(args.seeds)
    ]
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        rows = list(pool.map(one_run, *zip(*jobs, strict=True)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(f"task {args.task}: {args.seeds} seeds x {args.generations} generations, storage {url}")
    header = (
        "mode",
        "seed val",
        "median best val",
        "min-max best val",
        "median test",
        "min-max test",
        "seed test",
        "min/run",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for mode in args.modes.split(","):
        mine = [r for r in rows if r["mode"] == mode]
        vals = [r["best_val"] for r in mine]
        tests = [r["champion_test"] for r in mine]
        print(
            f"| {mode} | {mine[0]['seed_val']:.4f} | {statistics.median(vals):.4f} | "
            f"{min(vals):.4f}-{max(vals):.4f} | {statistics.median(tests):.4f} | "
            f"{min(tests):.4f}-{max(tests):.4f} | {mine[0]['seed_test']:.4f} | "
            f"{statistics.mean(r['seconds'] for r in mine) / 60:.1f} |"
        )
    for r in rows:
        print(
            f"  {r['mode']:<12} seed {r['seed']}: best val {r['best_val']:.4f}, "
            f"test {r['champion_test']:.4f}, states {r['states']}"
        )


if __name__ == "__main__":
    main()

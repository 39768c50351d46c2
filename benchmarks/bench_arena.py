"""Arena vs level 3 on the held-out adversarial suite, at equal evaluations (issue 19's target).

For each seed: an arena (``run_arena``) plays its rounds; its champion is scored on the
held-out adversarial suite (made by trusted mutation + oracle with a seed of its own, never
shown to any agent). Then a level-3 (hyperagent) run of the same task and seed gets as many
generations as the arena spent code-agent evaluations (screenings, re-scorings and children
all counted, so level 3 never has fewer), and its champion is scored on the same held-out
suite. The target: the arena champion's median accuracy at least 10 points above level 3's.
A missed target is a result: printed with its figures, exit 0.

The task is any arena-capable one (``--task``: ``email_validation``, the default, or
``ip_validation``, or a plug-in that declares ``arena()`` and ``oracle()``).

Usage (resumable: the same command continues in the same storage):
    python benchmarks/bench_arena.py --seeds 5 --rounds 4
    python benchmarks/bench_arena.py --seeds 5 --rounds 3 --tournament 2x2 --storage sqlite:///a.db
    python benchmarks/bench_arena.py --task ip_validation --seeds 3 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from hyperagents.arena import ArenaConfig, compare_level3, parse_tournament, run_arena
from hyperagents.exceptions import DuplicateError
from hyperagents.storages import get_storage

TARGET_POINTS = 10.0


def one_seed(seed: int, args: argparse.Namespace, store: Any) -> dict[str, Any]:
    """The arena and the level-3 champion's held-out accuracy for one seed."""
    code, test = parse_tournament(args.tournament)
    config = ArenaConfig(
        task=args.task,
        rounds=args.rounds,
        seed=seed,
        code_agents=code,
        test_agents=test,
        replace_every=args.replace_every,
        proposals=args.proposals,
        children=args.children,
        heldout_size=args.heldout,
    )
    start = time.perf_counter()
    prefix = "" if args.task == "email_validation" else f"{args.task}-"
    name = f"bench-arena-{prefix}{args.tournament}-s{seed}"
    arena = run_arena(config, storage=store, name=name)
    arena_seconds = time.perf_counter() - start
    total = int(arena.evaluations["total"])
    start = time.perf_counter()
    try:
        level3 = compare_level3(
            config, evaluations=total, storage=store, name=f"bench-level3-{prefix}s{seed}-e{total}"
        )
    except DuplicateError:  # a resumed benchmark: that run finished before
        raise SystemExit("remove the storage or use another one to rerun level 3") from None
    return {
        "seed": seed,
        "evaluations": total,
        "arena": arena.heldout["champion"],
        "seed_agent": arena.heldout["seed"],
        "level3": level3["heldout"],
        "level3_val": level3["champion_val"],
        "suite": arena.suite_size,
        "seconds": {"arena": arena_seconds, "level3": time.perf_counter() - start},
    }


def main() -> None:
    """Run the seeds and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="email_validation")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tournament", default="1x1")
    parser.add_argument("--replace-every", type=int, default=2)
    parser.add_argument("--proposals", type=int, default=40)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--heldout", type=int, default=300)
    parser.add_argument("--storage", default="memory")
    args = parser.parse_args()
    store = get_storage(args.storage)
    rows = []
    for seed in range(args.seeds):
        row = one_seed(seed, args, store)
        rows.append(row)
        print(json.dumps(row), flush=True)
    arena = statistics.median(r["arena"] for r in rows)
    level3 = statistics.median(r["level3"] for r in rows)
    seed_agent = statistics.median(r["seed_agent"] for r in rows)
    points = 100 * (arena - level3)
    wins = sum(r["arena"] > r["level3"] for r in rows)
    print(
        f"{args.task}: held-out adversarial accuracy, median of {len(rows)} seeds at equal "
        f"evaluations "
        f"(median {statistics.median(r['evaluations'] for r in rows)}): arena {arena:.3f}, "
        f"level 3 {level3:.3f}, seed agent {seed_agent:.3f}; arena - level 3 = {points:+.1f} "
        f"points (arena ahead on {wins}/{len(rows)} seeds); target +{TARGET_POINTS:.0f}: "
        f"{'met' if points >= TARGET_POINTS else 'MISSED'}"
    )


if __name__ == "__main__":
    main()

"""``bench_weights.py --engine``: the ``arith`` task through the real CLI, one lever arm at a time.

Each (seed, arm) is one ``hyperagents run -t arith --meta offline --levers ARM`` in a subprocess,
with its own temporary SQLite database and the same ``--max-seconds``; runs go one after
another, so no two of ours share the CPU. The results are read back through the public
Python API (:class:`hyperagents.Run`: its summary, champion and variants; the trainings'
records with :func:`hyperagents.runs.training_summary`).

CPU time is counted by :class:`vs_openevolve_lib.TreeMeter`: a cgroup v2 of the command's own
when one can be made (everything it forks, sandboxed children reaped by fork servers included),
else the ``RUSAGE_CHILDREN`` delta of this process (waited-for descendants only);
``cpu_counted`` in the output says which, and ``rusage_children_cpu_s`` is always given too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hyperagents import Run
from hyperagents.reports import holm, mann_whitney_u, vargha_delaney_a12
from hyperagents.runs import training_summary

from vs_openevolve_lib import TreeMeter

ARMS = ("harness", "weights", "both")


@dataclass
class Measured:
    """One engine run's figures."""

    arm: str
    seed: int
    seed_val: float | None
    best_train: float | None
    val: float | None
    test: float | None
    generations: int
    states: dict[str, int]
    trainings: dict[str, int]
    examples: dict[str, int]
    lineage_trainings: int
    champion_generation: int | None
    training_wall_s: float
    wall_s: float
    cpu_s: float | None
    cpu_counted: str
    rusage_children_cpu_s: float
    engine_seconds: float
    returncode: int
    load: list[list[float]] = field(default_factory=list)
    trainings_detail: list[dict[str, Any]] = field(default_factory=list)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(args: argparse.Namespace, arm: str, seed: int, url: str, name: str) -> list[str]:
    """The CLI command of one run."""
    options = {
        "length": args.length,
        "n_train": args.n_train,
        "n_val": args.n_val,
        "n_test": args.n_test,
        "n_examples": args.n_examples,
        "seed": seed,
    }
    cmd = [sys.executable, "-m", "hyperagents", "run", "-t", "arith", "--meta", "offline"]
    cmd += ["--levers", arm, "-s", str(seed), "--max-seconds", str(args.max_seconds)]
    cmd += ["--selector", args.selector]
    cmd += ["-g", str(args.generations), "-w", str(args.workers), "--storage", url, "-n", name]
    cmd += ["-q"]
    for key, value in options.items():
        cmd += ["--task-option", f"{key}={value}"]
    return cmd


def measure(
    args: argparse.Namespace, meter: TreeMeter, arm: str, seed: int, work: Path
) -> Measured:
    """Run one arm at one seed and read its figures back."""
    url = f"sqlite:///{work / f'{arm}-s{seed}.db'}"
    name = f"bench-weights-{arm}-s{seed}"
    cmd = command(args, arm, seed, url, name)
    print("$ " + " ".join(cmd[1:]), flush=True)
    group = meter.open()
    load = [list(os.getloadavg())]
    kids, wall = _children_cpu(), time.perf_counter()
    log = work / f"{arm}-s{seed}.log"
    try:
        with log.open("wb") as out:
            done = subprocess.run(
                meter.wrap(group, cmd), stdout=out, stderr=subprocess.STDOUT, check=False
            )
        wall = time.perf_counter() - wall
        kids = _children_cpu() - kids
        cpu = None if group is None else meter.cpu_seconds(group)
    finally:
        meter.release(group)
    load.append(list(os.getloadavg()))
    if done.returncode != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
    row = read_run(
        name,
        url,
        arm,
        seed,
        wall=wall,
        cpu=cpu,
        kids=kids,
        returncode=done.returncode,
    )
    row.load = load
    return row


def read_run(
    name: str,
    url: str,
    arm: str,
    seed: int,
    *,
    wall: float,
    cpu: float | None,
    kids: float,
    returncode: int,
) -> Measured:
    """A finished run's figures, through the public API."""
    run = Run.load(name, storage=url)
    summary = run.summary()
    variants = run.variants()
    by_id = {v.id: v for v in variants}
    champion = run.champion(variants)
    totals = summary.get("training") or {}
    detail = []
    for variant in variants:
        trained = training_summary(variant, None)
        if trained is None or trained.get("state") in (None, "none"):
            continue
        record = variant.metrics.get("training") or {}
        detail.append(
            {
                "variant": variant.id,
                "generation": variant.generation,
                "parent": variant.parent_id,
                "state": trained.get("state"),
                "sources": trained.get("sources"),
                "steps": trained.get("metrics", {}).get("steps"),
                "wall_s": record.get("wall"),
                "val": variant.scores.get("val"),
                "train": variant.scores.get("train"),
                "variant_state": variant.state.name.lower(),
            }
        )
    lineage, node = 0, champion
    while node is not None:
        record = node.metrics.get("training") or {}
        lineage += record.get("state") == "done"
        node = by_id.get(node.parent_id) if node.parent_id is not None else None
    seed_scores = summary.get("seed_scores") or {}
    return Measured(
        arm=arm,
        seed=seed,
        seed_val=seed_scores.get("val"),
        best_train=(summary.get("best_scores") or {}).get("train"),
        val=None if champion is None else champion.scores.get("val"),
        test=None if champion is None else champion.scores.get("test"),
        generations=int(summary.get("generations") or 0),
        states=dict(summary.get("states") or {}),
        trainings=dict(totals.get("trainings") or {}),
        examples=dict(totals.get("sources") or {}),
        lineage_trainings=lineage,
        champion_generation=None if champion is None else champion.generation,
        training_wall_s=round(sum(float(d["wall_s"] or 0.0) for d in detail), 1),
        wall_s=round(wall, 1),
        cpu_s=None if cpu is None else round(cpu, 1),
        cpu_counted="cgroup v2" if cpu is not None else "rusage-children",
        rusage_children_cpu_s=round(kids, 1),
        engine_seconds=round(float(summary.get("elapsed_seconds") or 0.0), 1),
        returncode=returncode,
        trainings_detail=detail,
    )


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: Sequence[Measured]) -> str:
    """The figures as a Markdown table."""
    head = (
        "| arm | seed | seed val | best train | champion val | champion test | generations "
        "| trainings (done/failed/skipped) | in champion's lineage | examples (task/self) "
        "| training wall s | wall s | CPU s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        t = r.trainings
        cpu = "-" if r.cpu_s is None else f"{r.cpu_s:.0f}"
        lines.append(
            f"| {r.arm} | {r.seed} | {_score(r.seed_val)} | {_score(r.best_train)} "
            f"| {_score(r.val)} | {_score(r.test)} "
            f"| {r.generations} | {t.get('done', 0)}/{t.get('failed', 0)}/{t.get('skipped', 0)} "
            f"| {r.lineage_trainings} | {r.examples.get('task', 0)}/{r.examples.get('self', 0)} "
            f"| {r.training_wall_s:.0f} | {r.wall_s:.0f} | {cpu} |"
        )
    return "\n".join(lines)


def compare(
    rows: Sequence[Measured], arms: Sequence[str], key: str = "test"
) -> list[dict[str, Any]]:
    """Every pair of arms on the champions' ``key`` scores: two-sided Mann-Whitney U, Holm
    over the pairs, Vargha-Delaney A12 (only with at least 3 seeds an arm)."""
    scores = {
        a: [getattr(r, key) for r in rows if r.arm == a and getattr(r, key) is not None]
        for a in arms
    }
    pairs = [(a, b) for i, a in enumerate(arms) for b in arms[i + 1 :]]
    tests = []
    for a, b in pairs:
        if min(len(scores[a]), len(scores[b])) < 3:
            continue
        test = mann_whitney_u(scores[a], scores[b])
        tests.append(
            {
                "a": a,
                "b": b,
                "p_value": test.p_value,
                "a12": vargha_delaney_a12(scores[a], scores[b]),
            }
        )
    for entry, adjusted in zip(tests, holm([t["p_value"] for t in tests]), strict=True):
        entry["p_holm"] = adjusted
    return tests


def engine(args: argparse.Namespace) -> int:
    """Every seed × arm, one run at a time; print the table, write ``--out``."""
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms).difference(ARMS))
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    print(
        f"arith: length {args.length} (val and test at {2 * args.length} digits), n_train "
        f"{args.n_train}, n_val {args.n_val}, n_test {args.n_test}, n_examples "
        f"{args.n_examples}; {args.max_seconds:g} s an arm, {args.workers} worker(s), "
        f"selector {args.selector}",
        flush=True,
    )
    rows: list[Measured] = []
    meter = TreeMeter()
    print(f"CPU counted by {meter.method}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-weights-engine-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for arm in arms:
                row = measure(args, meter, arm, seed, Path(tmp))
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
                if args.out:
                    _write(args, rows, arms)
    print(table(rows))
    for key in ("val", "test"):
        for t in compare(rows, arms, key):
            print(
                f"{key}: {t['a']} vs {t['b']}: p {t['p_value']:.3g}, Holm {t['p_holm']:.3g}, "
                f"A12 {t['a12']:.2f}"
            )
    if args.out:
        _write(args, rows, arms)
    return 0


def _write(args: argparse.Namespace, rows: Sequence[Measured], arms: Sequence[str]) -> None:
    summary = {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "runs": [asdict(r) for r in rows],
        "compare": {key: compare(rows, arms, key) for key in ("val", "test")},
    }
    args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")

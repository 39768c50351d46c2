"""What runaway children cost a run: adaptive instance limits on and off, side by side.

The workload is ``benchmarks/openevolve_workload`` (one tunable ``X``; one evaluation spins for
``--eval-ms`` ms), improved by the offline seed meta agent, whose structural edits of
``solve`` now and then swap the busy loop's comparison: that child loops forever. The task's
``instance_timeout`` is 60 s. With ``timeout_factor: null`` such a child costs the whole 60 s;
with the default (20 × the parent's time on the instance, at least ``timeout_floor``, 5 s) it
costs the floor.

For each seed the two settings run one after the other (the order alternating from seed to
seed), each ``hyperagents run -g N -w 1`` in a process of its own with a fresh SQLite file.
Printed per run: wall seconds, CPU seconds of the process and the children it reaped (a lower
bound: children that fork servers reap are not counted), generations per second, the children
with a timed-out instance, and the champion's val score; then the medians per setting and the
1-minute load average before and after.

Usage:
    python benchmarks/bench_runaways.py [--generations 100] [--seeds 0 1 2] [--eval-ms 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hyperagents import Run

WORKLOAD = Path(__file__).resolve().parent / "openevolve_workload"
SETTINGS = {"adaptive": {}, "fixed": {"timeout_factor": None}}


def run_once(folder: Path, setting: str, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """One run of ``setting``; its figures."""
    workload = folder / "workload"
    shutil.copytree(WORKLOAD, workload, ignore=shutil.ignore_patterns("__pycache__"))
    (workload / "workload.json").write_text(json.dumps({"eval_ms": args.eval_ms}))
    config = folder / "config.json"
    config.write_text(json.dumps(SETTINGS[setting]))
    url = f"sqlite:///{folder / 'run.db'}"
    cmd = [
        sys.executable, "-m", "hyperagents", "run",
        "--task", f"{workload / 'task.py'}:TuneXTask", "--meta", "offline",
        "-g", str(args.generations), "-w", "1", "-s", str(seed), "--storage", url,
        "--name", "bench", "--config", str(config), "--quiet",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=folder, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run = Run.load("bench", storage=url)
    runaways = 0
    for variant in run.variants():
        results = [r for e in run.storage.list_evaluations(variant.id) for r in e.results]
        runaways += any(str(r.get("error") or "").startswith("timeout") for r in results)
    champion = run.champion()
    val = champion.scores.get("val") if champion is not None else None
    return {
        "wall": wall,
        "cpu": cpu,
        "gen_per_s": args.generations / wall,
        "runaways": runaways,
        "val": float("nan") if val is None else val,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    for k, seed in enumerate(args.seeds):
        order = list(SETTINGS) if k % 2 == 0 else list(reversed(SETTINGS))
        for setting in order:
            folder = Path(tempfile.mkdtemp(prefix="bench-runaways-"))
            try:
                row = run_once(folder, setting, seed, args)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            rows[setting].append(row)
            print(
                f"seed {seed} {setting:8s} wall {row['wall']:7.1f} s  cpu {row['cpu']:6.1f} s  "
                f"{row['gen_per_s']:6.2f} gen/s  runaways {row['runaways']:3.0f}  "
                f"val {row['val']:.4f}",
                flush=True,
            )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    for setting, found in rows.items():
        med = {key: statistics.median(r[key] for r in found) for key in found[0]}
        print(
            f"median {setting:8s} wall {med['wall']:7.1f} s  cpu {med['cpu']:6.1f} s  "
            f"{med['gen_per_s']:6.2f} gen/s  runaways {med['runaways']:.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

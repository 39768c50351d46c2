"""Several engines on one PostgreSQL run against one engine, side by side in one invocation.

The same run (``engines_workload``: one evaluation of ``--eval-ms`` milliseconds, waiting or
busy-looping, per child; the offline meta agent) is driven to ``--generations`` new generations
by one engine process (``hyperagents resume RUN --join``) and by ``--engines`` engine processes
joined on it, each with ``--workers`` workers, alternately (``--repeats`` pairs). Each
configuration gets a run of its own in the same database; ``parallel_generations`` is
``engines × workers`` in both, so they differ only in the engines driving them.

Printed per configuration (median over the repeats): generations per second over the whole
wall time (process start to the last exit) and over the run itself (first child created to the
last child settled), the ratio to one engine, the CPU seconds of the engine processes and every
process they started (user + system, from the children's rusage) beside the wall time, and the
load average before and after. Afterwards each run is checked: exactly its target's
generations, each settled, none twice.

Usage:
    export HYPERAGENTS_BENCH_POSTGRES_URL=$(.ci/start_postgres.sh | tail -n 1)
    python benchmarks/bench_engines.py [--engines 4] [--workers 1] [--generations 40] \\
        [--eval-ms 500] [--mode wait|busy] [--repeats 1] [--storage URL]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hyperagents.runs import Run, RunConfig
from hyperagents.storages import RDBStorage, RunStatus

WORKLOAD = Path(__file__).resolve().parent / "engines_workload" / "task.py"
URL_ENV = "HYPERAGENTS_BENCH_POSTGRES_URL"


@dataclass
class Measure:
    """One drive of a run by ``engines`` processes."""

    engines: int
    wall: float
    run_seconds: float
    cpu: float
    load_before: float
    load_after: float
    generations: int

    @property
    def rate(self) -> float:
        return self.generations / self.wall

    @property
    def run_rate(self) -> float:
        return self.generations / self.run_seconds


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _check(url: str, name: str, generations: int) -> float:
    """Check the run ended with exactly its generations, each settled once; return the
    seconds from its first child's creation to its last child's settling."""
    store = RDBStorage(url)
    try:
        record = store.get_run_by_name(name)
        variants = store.list_variants(record.id)
    finally:
        store.close()
    assert record.status is RunStatus.COMPLETE, (name, record.status)
    assert [v.generation for v in variants] == list(range(generations + 1)), name
    assert all(v.state.is_terminal for v in variants), name
    children = [v for v in variants if v.generation]
    first = min(v.created_at for v in children if v.created_at)
    last = max(v.updated_at for v in children if v.updated_at)
    return (last - first).total_seconds()


def drive(args: argparse.Namespace, url: str, engines: int) -> Measure:
    """Create a run and drive it with ``engines`` joined engine processes."""
    name = f"bench-engines-{engines}-{uuid.uuid4().hex[:8]}"
    config = {"parallel_generations": args.engines * args.workers, "heartbeat_interval": 1.0}
    run = Run.create(
        task=f"{WORKLOAD}:EnginesWorkload",
        name=name,
        storage=url,
        config=RunConfig.parse(config),
        generations=args.generations,
    )
    run.storage.close()
    env = dict(os.environ)
    env["HYPERAGENTS_ENGINES_WORKLOAD_MS"] = str(args.eval_ms)
    env["HYPERAGENTS_ENGINES_WORKLOAD_MODE"] = args.mode
    command = [sys.executable, "-m", "hyperagents", "resume", name, "--join", "-q"]
    command += ["-w", str(args.workers), "--storage", url]
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_children()
    start = time.perf_counter()
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(engines)
    ]
    for process in processes:
        _, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise SystemExit(f"an engine failed ({process.returncode}): {err.decode()[-2000:]}")
    wall = time.perf_counter() - start
    cpu = _cpu_children() - cpu_before
    run_seconds = _check(url, name, args.generations)
    return Measure(
        engines, wall, run_seconds, cpu, load_before, os.getloadavg()[0], args.generations
    )


def _median(measures: list[Measure], key: str) -> float:
    return statistics.median(getattr(m, key) for m in measures)


def report(args: argparse.Namespace, results: dict[int, list[Measure]]) -> None:
    """Print the table (medians over the repeats)."""
    one = results[1]
    base, base_run = _median(one, "rate"), _median(one, "run_rate")
    print(
        f"workload: {args.eval_ms:g} ms {args.mode} per evaluation, {args.generations} "
        f"generations, {args.workers} worker(s) per engine, {os.cpu_count()} CPUs, "
        f"{args.repeats} repeat(s), medians"
    )
    print(
        "engines | gen/s (wall) | gen/s (in run) | ratio (wall) | ratio (in run) | "
        "wall s | CPU s | CPU/gen ms | load before → after"
    )
    for engines, measures in results.items():
        rate, run_rate = _median(measures, "rate"), _median(measures, "run_rate")
        wall, cpu = _median(measures, "wall"), _median(measures, "cpu")
        print(
            f"{engines} | {rate:.2f} | {run_rate:.2f} | {rate / base:.2f}× | "
            f"{run_rate / base_run:.2f}× | {wall:.1f} | {cpu:.1f} | "
            f"{1000 * cpu / args.generations:.0f} | "
            f"{_median(measures, 'load_before'):.2f} → {_median(measures, 'load_after'):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--generations", type=int, default=40)
    parser.add_argument("--eval-ms", type=float, default=500.0)
    parser.add_argument("--mode", choices=("wait", "busy"), default="wait")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--storage", default=os.environ.get(URL_ENV))
    args = parser.parse_args()
    if not args.storage or not args.storage.startswith("postgresql"):
        raise SystemExit(f"give a PostgreSQL URL with --storage or ${URL_ENV}")
    results: dict[int, list[Measure]] = {1: [], args.engines: []}
    for _ in range(args.repeats):
        for engines in results:  # alternately, so machine load hits both alike
            results[engines].append(drive(args, args.storage, engines))
    report(args, results)


if __name__ == "__main__":
    main()

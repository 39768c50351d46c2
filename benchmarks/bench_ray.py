"""What a job costs in the ray sandbox, against the local sandboxes.

Runs the same trivial sandboxed job (a task agent answering one instance) through the local
``bwrap`` sandbox (cold starts, then warm fork servers) and through the ``ray`` sandbox on a
local Ray instance (inner sandbox ``bwrap``), and prints for each: the latency of one job run
alone, jobs per second with ``--workers`` threads, and the CPU of the whole process tree (this
process and every descendant: Ray's own daemons and workers, the sandboxes) per job, with the
load average.

    python benchmarks/bench_ray.py [--jobs 30] [--workers 2] [--cpus 2]

Needs the extra ``ray``. Figures are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hyperagents.sandbox import BwrapSandbox, Limits, RaySandbox, Sandbox

AGENT = "def solve(x):\n    return x + 1\n"
REQUEST = {"action": "solve", "module": "agent", "instances": [{"id": "1", "inputs": 1}]}
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu() -> float:
    """CPU seconds of this process and all its descendants (living, and those they waited
    for)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        stats[int(entry)] = (int(fields[1]), ticks / TICK)
    mine, total = os.getpid(), 0.0
    for pid, (_, cpu) in stats.items():
        ancestor = pid
        while ancestor > 1 and ancestor != mine:
            ancestor = stats.get(ancestor, (1, 0.0))[0]
        if ancestor == mine:
            total += cpu
    return total


def one_job(sandbox: Sandbox) -> float:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as root:
        (Path(root) / "agent.py").write_text(AGENT)
        began = time.perf_counter()
        result = sandbox.run(Path(root), dict(REQUEST), limits=Limits(wall_time=60))
        assert result.ok and result.messages[0]["output"] == 2, result.reason
        return time.perf_counter() - began


def measure(name: str, sandbox: Sandbox, jobs: int, workers: int) -> dict[str, Any]:
    for _ in range(2):
        one_job(sandbox)  # warm up (connection, relay, fork servers)
    alone = sorted(one_job(sandbox) for _ in range(max(5, jobs // 3)))
    cpu0, began = tree_cpu(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: one_job(sandbox), range(jobs)))
    wall = time.perf_counter() - began
    cpu = tree_cpu() - cpu0
    return {
        "sandbox": name,
        "alone_ms": 1000 * alone[len(alone) // 2],
        "jobs_per_s": jobs / wall,
        "cpu_ms_per_job": 1000 * cpu / jobs,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    rows = [
        measure("bwrap, cold", BwrapSandbox(), args.jobs, args.workers),
        measure("bwrap, warm", BwrapSandbox(warm=args.workers), args.jobs, args.workers),
        measure("ray (inner bwrap)", RaySandbox(inner="bwrap"), args.jobs, args.workers),
    ]
    print(f"{args.jobs} jobs, {args.workers} workers, Ray num_cpus={args.cpus}")
    print("| sandbox | one job alone (median) | jobs/s | CPU per job (whole tree) | load |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['sandbox']} | {row['alone_ms']:.0f} ms | {row['jobs_per_s']:.1f} | "
            f"{row['cpu_ms_per_job']:.0f} ms | {row['load']:.1f} |"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()

"""What serving costs: ``hyperagents serve`` over loopback HTTP against ``Sandbox.run`` directly.

Builds a run of a built-in offline task (``support`` without a model: the seed agent's keyword
fallback; or ``shipping``), its seed evaluated, in a SQLite file. Then answers the same
requests (the task's val inputs, cycled) twice, with the same number of requests in flight:

* **direct**: ``solve_in_sandbox`` (a workspace and one ``Sandbox.run``) on the run's sandbox,
  kept warm with one fork server per worker, from ``--concurrency`` threads;
* **service**: ``hyperagents serve RUN --workers N`` in a process of its own, from
  ``--concurrency`` HTTP clients (httpx) on loopback; every request is recorded in storage
  (added on arrival, completed with its answer) on the way.

Both first answer a warm-up round (untimed). ``--rounds`` repeats the pair, in alternating
order (the machine's load drifts). It prints, per mode and round, requests per second, p50 and
p99 latency (client side), errors, wall time, the machine's CPU time over the phase (all
processes: the sandboxes, the server, the clients; from ``/proc/stat``) and the load average,
then the service/direct ratios of the medians over the rounds. Keep a run short (the defaults
take about a minute).

Usage:
    python benchmarks/bench_service.py [--task support] [--requests 200] [--concurrency 2]
        [--rounds 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from hyperagents.evaluation import solve_in_sandbox
from hyperagents.runs import Run, RunConfig, champion_of, record_task, sandbox_for
from hyperagents.sandbox import Limits
from hyperagents.storages import RDBStorage
from hyperagents.tasks import Split
from hyperagents.testing.service import service_server


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def timed(ask: Callable[[Any], bool], inputs: list[Any], concurrency: int) -> dict[str, Any]:
    """Answer ``inputs`` with ``ask`` from ``concurrency`` threads; latencies and totals."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(value: Any) -> None:
        nonlocal errors
        started = time.perf_counter()
        ok = ask(value)
        took = time.perf_counter() - started
        with lock:
            latencies.append(took)
            errors += 0 if ok else 1

    load = os.getloadavg()[0]
    cpu, wall = machine_cpu_seconds(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, inputs))
    wall = time.perf_counter() - wall
    cpu = machine_cpu_seconds() - cpu
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "rps": len(latencies) / wall,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "cpu_s": cpu,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def build(tmp: Path, task: str) -> tuple[str, RDBStorage]:
    """A SQLite storage holding a run of ``task`` with its seed evaluated."""
    url = f"sqlite:///{tmp / 'service.db'}"
    storage = RDBStorage(url)
    run = Run.create(task=task, name="bench", seed=0, storage=storage, config=RunConfig.parse({}))
    run.optimize(0)
    return url, storage


def direct(storage: RDBStorage, inputs: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """The requests through the run's warm sandbox, no service in the way."""
    record = storage.get_run_by_name("bench")
    task = record_task(record)
    config = RunConfig.parse(dict(record.config))
    champion = champion_of(storage.list_variants(record.id))
    assert champion is not None and champion.program_id is not None
    program = storage.get_program(champion.program_id)
    sandbox = sandbox_for(config, task)
    limits = Limits(wall_time=task.instance_timeout + 15.0, memory_mb=config.memory_mb)
    set_warm = getattr(sandbox, "set_warm", None)
    if callable(set_warm):
        set_warm(args.concurrency)

    def ask(value: Any) -> bool:
        _, answered = solve_in_sandbox(
            program,
            [("request", value)],
            instance_timeout=task.instance_timeout,
            sandbox=sandbox,
            limits=limits,
        )
        message = answered.get("request")
        return message is not None and not message.get("error")

    try:
        timed(ask, inputs[: args.warmup], args.concurrency)
        return timed(ask, inputs, args.concurrency)
    finally:
        if callable(set_warm):
            set_warm(0)


def served(url: str, inputs: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """The requests over loopback HTTP to ``hyperagents serve``."""
    local = threading.local()

    def ask(value: Any) -> bool:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, timeout=120)
        reply = client.post("/api/service/answer", json={"inputs": value})
        return reply.status_code == 200

    with service_server(url, "bench", workers=args.concurrency) as (base, _):
        timed(ask, inputs[: args.warmup], args.concurrency)
        return timed(ask, inputs, args.concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="support", help="an offline built-in task")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2, help="in flight (= workers)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--drift", action="store_true", help="the autopilot under a drifting stream instead"
    )
    parser.add_argument("--seeds", type=int, default=5, help="--drift: episodes of each kind")
    parser.add_argument("--length", type=int, default=4000, help="--drift: stream length")
    parser.add_argument("--change-at", type=int, default=600, help="--drift: the change point")
    parser.add_argument("--out", type=Path, help="--drift: write the episodes here (JSON)")
    args = parser.parse_args()
    if args.drift:
        drift(args)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, task {args.task}")
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        started = time.perf_counter()
        url, storage = build(Path(tmp), args.task)
        print(f"run built (seed evaluated) in {time.perf_counter() - started:.1f} s")
        task = record_task(storage.get_run_by_name("bench"))
        pool = [instance.inputs for instance in task.instances(Split.VAL)]
        inputs = [pool[k % len(pool)] for k in range(args.requests)]
        modes = {
            "direct": lambda: direct(storage, inputs, args),
            "service": lambda: served(url, inputs, args),
        }
        for round_ in range(args.rounds):
            for mode in sorted(modes, reverse=round_ % 2 == 1):
                rows.append((mode, modes[mode]()))
        stored = storage.count_service_requests(storage.get_service_by_name("bench").id)
        storage.close()
    report(rows)
    print(f"requests recorded by the service: {stored} (warm-ups included)")


def report(rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Print each mode's rounds and the ratios of the medians."""
    header = f"{'mode':8} {'req':>5} {'err':>4} {'wall s':>7} {'req/s':>7} {'p50 ms':>7}"
    print(header + f" {'p99 ms':>7} {'CPU s':>6} {'load':>11}")
    for mode, r in rows:
        print(
            f"{mode:8} {r['requests']:5d} {r['errors']:4d} {r['wall_s']:7.2f} {r['rps']:7.1f} "
            f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {r['cpu_s']:6.1f} "
            f"{r['load_before']:5.2f}>{r['load_after']:5.2f}"
        )

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for m, r in rows if m == mode)

    def cpu_per_request(mode: str) -> float:
        return statistics.median(r["cpu_s"] / r["requests"] for m, r in rows if m == mode)

    ratios = {
        key: median("service", key) / median("direct", key) for key in ("rps", "p50_ms", "p99_ms")
    }
    print(
        f"service/direct (medians): req/s x{ratios['rps']:.2f}, p50 x{ratios['p50_ms']:.2f}, "
        f"p99 x{ratios['p99_ms']:.2f}, CPU per request "
        f"x{cpu_per_request('service') / cpu_per_request('direct'):.2f}"
    )


if __name__ == "__main__":
    main()


def drift(args: argparse.Namespace) -> None:
    """``--drift``: episodes of :mod:`service_drift`, drifting and stationary, per seed."""
    import json

    from service_drift import DECISIONS, episode

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    found = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        for seed in range(args.seeds):
            for change_at in (args.change_at, None):
                cpu = machine_cpu_seconds()
                result = episode(Path(tmp), seed=seed, length=args.length, change_at=change_at)
                row = {**result.as_json(), "cpu_s": machine_cpu_seconds() - cpu}
                row["load"] = os.getloadavg()[0]
                found.append(row)
                kinds = [d["kind"] for d in result.decisions]
                final = next((d for d in result.decisions if d["kind"] in DECISIONS), None)
                trigger = result.first("improving")
                print(
                    f"seed {seed} {'drift' if change_at is not None else 'steady':6} "
                    f"sent {result.sent} answered {result.answered} refused {result.refused} "
                    f"lost {result.lost}; trigger at "
                    f"{'-' if trigger is None else trigger['index']}; "
                    f"final {'-' if final is None else final['kind'] + '@' + str(final['index'])}"
                    f" ({'-' if final is None else final['seconds']} s); accuracy "
                    f"{result.accuracy}; {row['seconds']:.0f} s wall, {row['cpu_s']:.0f} s CPU; "
                    f"load {row['load']:.1f}; log {kinds}",
                    flush=True,
                )
    if args.out is not None:
        args.out.write_text(json.dumps(found, indent=1))

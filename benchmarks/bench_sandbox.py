"""Sandbox start-up overhead and evaluation throughput.

1. **Start-up overhead** (median of ``--repeats`` runs, after one warm-up): a bare subprocess
   running the interpreter (``python -I -c pass``) against the same interpreter started inside
   bubblewrap with the sandbox's namespaces and mounts; then a whole ``Sandbox.run`` of a trivial
   action (harness, limits, isolation, request and result) against a bare subprocess doing the
   same through the harness without any sandbox.
2. **Throughput**: ``--candidates`` distinct programs whose task agent takes 50 ms on its one
   instance are evaluated by W workers (threads, each taking the next candidate: workspace,
   sandboxed run, trusted scoring). Candidates per second are compared with the machine's limit,
   W / 0.05 s, for W = 1 and 2, with warm standby processes (the default of the engine) and cold.

Usage:
    python benchmarks/bench_sandbox.py [--repeats 50] [--candidates 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hyperagents.evaluation import evaluate_stage
from hyperagents.program import Program
from hyperagents.sandbox import (
    BwrapSandbox,
    Limits,
    ProcessSandbox,
    Sandbox,
    bwrap_available,
    harness_path,
    scrubbed_environment,
)
from hyperagents.tasks import Instance, Score, Split, Task

EVAL_SECONDS = 0.05


def median_ms(fn: object, repeats: int) -> float:
    fn()  # type: ignore[operator]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def startup(repeats: int) -> None:
    python = sys.executable
    bare = median_ms(lambda: subprocess.run([python, "-I", "-c", "pass"], check=True), repeats)
    print(f"interpreter start, bare subprocess:        {bare:6.1f} ms (median of {repeats})")
    if bwrap_available():
        sandbox = BwrapSandbox()
        argv = [sandbox._bwrap, *sandbox._static, python, "-I", "-c", "pass"]
        wrapped = median_ms(lambda: subprocess.run(argv, check=True), repeats)
        print(
            f"interpreter start, inside bubblewrap:      {wrapped:6.1f} ms "
            f"-> overhead {wrapped - bare:5.1f} ms"
        )
    request = {"action": "validate", "entry_points": {}}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        body = json.dumps(request).encode()

        def bare_harness() -> None:
            import os

            read_fd, write_fd = os.pipe()  # results
            reply_read, reply_write = os.pipe()  # LLM replies (unused here)
            status_read, status_write = os.pipe()  # the harness's isolation report
            fds = f"{write_fd},{reply_read},{status_write}"
            proc = subprocess.Popen(
                [python, "-I", str(harness_path()), fds],
                cwd=ws,
                env=scrubbed_environment(ws),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd, reply_read, status_write),
            )
            for fd in (write_fd, reply_read, status_write):
                os.close(fd)
            proc.communicate(body)
            for fd in (reply_write, status_read):
                os.close(fd)
            with os.fdopen(read_fd, "rb") as handle:
                assert b'"result"' in handle.read()

        base = median_ms(bare_harness, repeats)
        print(f"harness action, bare subprocess:           {base:6.1f} ms")
        sandboxes: list[tuple[str, Sandbox]] = [("process", ProcessSandbox())]
        if bwrap_available():
            sandboxes.append(("bwrap", BwrapSandbox()))
        for name, sandbox in sandboxes:
            ms = median_ms(lambda s=sandbox: s.run(ws, request, limits=Limits()), repeats)
            print(
                f"harness action, Sandbox.run ({name:7s}):   {ms:6.1f} ms "
                f"-> overhead {ms - base:5.1f} ms"
            )


class SleepTask(Task):
    """One instance; the agent's answer takes 50 ms."""

    name = "sleep"
    instance_timeout = 5.0

    def instances(self, split: Split) -> list[Instance]:
        return [Instance("only", {"n": 1}, 1)]

    def score(self, instance: Instance, output: object) -> Score:
        return Score(1.0 if output == 1 else 0.0)

    def seed_program(self) -> Program:
        return Program({"task_agent.py": "x"})


def throughput(sandbox: Sandbox, workers: int, candidates: int) -> float:
    task = SleepTask()
    programs = [
        Program(
            {
                "task_agent.py": f"import time\nVERSION = {k}\n\ndef solve(inputs):\n"
                f"    time.sleep({EVAL_SECONDS})\n    return 1\n"
            }
        )
        for k in range(candidates)
    ]
    queue = list(programs)
    lock = threading.Lock()
    scores: list[float] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                program = queue.pop()
            result = evaluate_stage(
                program,
                task=task,
                instances=task.instances(Split.TRAIN),
                stage="t",
                split="train",
                sandbox=sandbox,
                limits=Limits(wall_time=30),
            )
            with lock:
                scores.append(result.score)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    assert scores == [1.0] * candidates, "every candidate must have been evaluated correctly"
    return candidates / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args()
    startup(args.repeats)
    print()
    print("| sandbox | standbys | workers | candidates/s | limit (W / 0.05 s) | ratio |")
    print("|---|---|---|---|---|---|")
    kinds = ["process"] + (["bwrap"] if bwrap_available() else [])
    for kind in kinds:
        for warm in (True, False):
            for workers in (1, 2):
                sandbox: ProcessSandbox | BwrapSandbox = (
                    BwrapSandbox(warm=workers if warm else 0)
                    if kind == "bwrap"
                    else ProcessSandbox(warm=workers if warm else 0)
                )
                time.sleep(0.5)  # let the standbys start
                rate = throughput(sandbox, workers, args.candidates)
                sandbox.close()
                limit = workers / EVAL_SECONDS
                print(
                    f"| {kind} | {'warm' if warm else 'cold'} | {workers} | {rate:.1f} | "
                    f"{limit:.0f} | {rate / limit:.2f} |"
                )


if __name__ == "__main__":
    main()

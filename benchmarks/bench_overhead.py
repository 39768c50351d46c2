"""Orchestration overhead per generation: everything except running agent code.

Two measurements on the ``review`` task with a SQLite file:

1. **null sandbox**: the engine drives generations against an in-process sandbox that returns
   at once (a fixed decision per instance, a one-line edit as the "meta agent"), so the time per
   generation is pure orchestration: parent selection, report building, workspace files,
   program hashing and dedup, validation bookkeeping, scoring 800 outputs, storage commits and
   events. Nothing is skipped: every stage is recorded as in a real run. The storage calls are
   counted too (SQLAlchemy's engine events): SQL statements (``BEGIN`` included),
   transactions (reads included) and commits per generation.
2. **real run**: the engine's own per-variant timing (``metrics.timing``): wall time of the
   generation minus the wall time spent inside sandboxed processes.

Usage:
    python benchmarks/bench_overhead.py [--generations 200] [--real 20]

To compare two checkouts side by side, run this one script against each in turn (its imports
are public names only), e.g. ``PYTHONPATH=<checkout>/src python benchmarks/bench_overhead.py``,
alternating the checkouts so that the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from hyperagents import Run
from hyperagents.sandbox import Limits, Outcome, SandboxResult
from hyperagents.storages import get_storage


class NullSandbox:
    """Answers every harness action instantly, in process."""

    name = "null"

    def run(
        self, workspace: Path, request: dict[str, Any], *, limits: Limits, llm: Any = None
    ) -> SandboxResult:
        action = request["action"]
        if action == "validate":
            return SandboxResult(Outcome.OK, result={"ok": True, "errors": []})
        if action == "solve":
            # A request that validates first hears so before its instances.
            validated = ({"type": "validation", "ok": True, "errors": []},)
            messages = validated[: int("validate" in request)] + tuple(
                {
                    "type": "instance",
                    "id": item["id"],
                    "output": "accept",
                    "wall": 0.0,
                    "cpu": 0.0,
                    "error": None,
                }
                for item in request["instances"]
            )
            return SandboxResult(Outcome.OK, messages=messages, result={"instances": len(messages)})
        if action == "improve":
            path = Path(workspace) / "task_agent.py"
            path.write_text(path.read_text() + f"# edit {request['seed']}\n")
            return SandboxResult(Outcome.OK, result={"operator": "null"})
        raise AssertionError(action)


class StorageCalls:
    """Counts what every SQLAlchemy engine of this process sends while it is on: statements
    (``BEGIN`` included), transactions begun (reads included) and commits."""

    def __init__(self) -> None:
        self.statements = self.transactions = self.commits = 0
        self.on = False
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "begin", self._begin)
        event.listen(Engine, "commit", self._commit)

    def _statement(self, *_args: Any) -> None:
        self.statements += self.on

    def _begin(self, _conn: Connection) -> None:
        self.transactions += self.on

    def _commit(self, _conn: Connection) -> None:
        self.commits += self.on


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--real", type=int, default=20, help="generations of a real run")
    args = parser.parse_args()
    calls = StorageCalls()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/overhead.db"
        store = get_storage(url)
        run = Run.create(task="review", name="null", storage=store, sandbox=NullSandbox())
        run.optimize(generations=1)  # warm caches (task data, seed evaluation)
        times: list[float] = []

        def clock(_run: Run, _variant: Any) -> None:
            now = time.perf_counter()
            times.append(now - clock.last)  # type: ignore[attr-defined]
            clock.last = now  # type: ignore[attr-defined]

        clock.last = time.perf_counter()  # type: ignore[attr-defined]
        cpu = time.process_time()  # every thread of this process: the engine's whole cost
        calls.on = True
        run.optimize(generations=args.generations, callbacks=[clock])
        calls.on = False
        cpu_ms = (time.process_time() - cpu) * 1000 / max(1, len(times))
        per = max(1, len(times))
        ms = [t * 1000 for t in times]
        print(
            f"null sandbox, SQLite, {len(ms)} generations (archive grows to "
            f"{len(run.variants())} variants):"
        )
        print(
            f"  per generation: median {statistics.median(ms):.2f} ms, "
            f"p95 {percentile(ms, 0.95):.2f} ms, mean {statistics.mean(ms):.2f} ms"
        )
        print(f"  engine CPU time (all threads): mean {cpu_ms:.2f} ms per generation")
        print(
            f"  storage per generation: {calls.statements / per:.2f} SQL statements, "
            f"{calls.transactions / per:.2f} transactions, {calls.commits / per:.2f} commits"
        )
        engine = [v.metrics["timing"]["engine_seconds"] * 1000 for v in run.variants()[2:]]
        print(f"  engine_seconds metric: median {statistics.median(engine):.2f} ms")

        if args.real:
            real = Run.create(task="review", name="real", storage=store)
            real.optimize(generations=args.real)
            rows = [v.metrics["timing"] for v in real.variants()[1:]]
            eng = [r["engine_seconds"] * 1000 for r in rows]
            sand = [r["sandbox_seconds"] * 1000 for r in rows]
            print(f"real run, SQLite, {len(rows)} generations:")
            print(
                f"  engine (total - sandboxed): median {statistics.median(eng):.2f} ms, "
                f"p95 {percentile(eng, 0.95):.2f} ms"
            )
            print(f"  sandboxed agent code:       median {statistics.median(sand):.2f} ms")
        store.close()


if __name__ == "__main__":
    main()

"""What the offline meta agent costs: database growth, ``improve()`` CPU, report size.

Three measurements, each on a fresh SQLite file:

1. **database growth** (``--generations``, default 200): an offline run of a one-knob task (one
   tunable ``X``, score ``-abs(X - 0.7)``, one instance per split: the workload of issue 15)
   with the real sandbox; the file's size (vacuumed) after the first generations and at the end,
   as bytes per generation and per 1,000 generations (extrapolated linearly), with the bytes of
   each kind of record (program blobs, manifests, meta info, evaluations, events).
2. **improve() CPU** (``--repeats``, default 20): the report and parent program of the last
   job of run 1 (and of a few generations of the ``review`` task, ``--review``), given to the
   seed meta agent in this process, as the sandbox's harness would: CPU of ``improve()`` alone
   (its modules already imported) and of importing them from source then calling it (what one
   sandboxed process pays). Median over repeats, each on a fresh copy of the parent's files.
3. **report size** (``--report-generations``, default 1,000): the same task driven by an
   in-process null sandbox whose "meta agent" returns the meta info the real agent returned
   in run 1 (so the archive's entries are as large as a real run's), and the JSON size of the
   report the last job got.

Usage:
    python benchmarks/bench_meta_cost.py [--generations 200] [--report-generations 1000]

To compare two checkouts, run it against each (its imports are public names only):
``PYTHONPATH=<checkout>/src python benchmarks/bench_meta_cost.py``. Timings are only
comparable on an idle machine, alternating the checkouts.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperagents import Run
from hyperagents.improvers import meta_agent_files
from hyperagents.program import Program
from hyperagents.sandbox import Outcome, SandboxResult, get_sandbox, is_meta_module
from hyperagents.storages import get_storage
from hyperagents.tasks import Instance, Score, Split, Task

KNOB_AGENT = '''"""One tunable knob."""

PARAMS = {
    "X": 0.1,
}
PARAM_SPACE = {
    "X": {"type": "float", "low": 0.0, "high": 1.0},
}


def solve(inputs):
    """Return the knob."""
    return PARAMS["X"]
'''


class KnobTask(Task):
    """One tunable ``X``; the score is ``-abs(X - 0.7)``."""

    name = "knob"
    description = "Set X as close to the hidden target as possible."
    score_range = (-1.0, 0.0)
    instance_timeout = 5.0

    def instances(self, split: Split) -> list[Instance]:
        return [Instance(f"{Split(split).value}-0", {}, 0.7)]

    def score(self, instance: Instance, output: Any) -> Score:
        if not isinstance(output, int | float) or isinstance(output, bool):
            return Score(-1.0, f"not a number: {output!r}")
        return Score(max(-1.0, -abs(float(output) - 0.7)), f"X = {output}")

    def seed_program(self) -> Program:
        files = meta_agent_files("offline")
        assert files is not None
        return Program({"task_agent.py": KNOB_AGENT, **files})


class Recording:
    """A sandbox that runs every request in ``inner`` and keeps the last improve job's report and
    workspace files (the parent program) and the meta info it returned."""

    name = "recording"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.report: dict[str, Any] | None = None
        self.files: dict[str, bytes] = {}
        self.meta_info: Any = None

    def run(self, workspace: Path, request: dict[str, Any], **kwargs: Any) -> SandboxResult:
        if request["action"] == "improve":
            self.report = copy.deepcopy(request["report"])
            self.files = {p.name: p.read_bytes() for p in Path(workspace).iterdir() if p.is_file()}
        result: SandboxResult = self.inner.run(workspace, request, **kwargs)
        if request["action"] == "improve" and result.ok:
            self.meta_info = result.result
        return result


class NullSandbox:
    """Answers every action at once, in process; "improve" nudges ``X`` and returns the meta info
    given (as large as a real agent's), and records the report it got."""

    name = "null"

    def __init__(self, meta_info: Any) -> None:
        self.meta_info = meta_info
        self.report: dict[str, Any] | None = None

    def run(self, workspace: Path, request: dict[str, Any], **kwargs: Any) -> SandboxResult:
        action = request["action"]
        if action == "validate":
            return SandboxResult(Outcome.OK, result={"ok": True, "errors": []})
        if action == "solve":
            # A request that validates first hears so before its instances.
            validated = ({"type": "validation", "ok": True, "errors": []},)
            messages = validated[: int("validate" in request)] + tuple(
                {"type": "instance", "id": item["id"], "output": 0.5, "wall": 0.0, "cpu": 0.0}
                for item in request["instances"]
            )
            done = len(request["instances"])
            return SandboxResult(Outcome.OK, messages=messages, result={"instances": done})
        if action == "improve":
            self.report = request["report"]
            path = Path(workspace) / "task_agent.py"
            path.write_text(path.read_text() + f"# edit {request['seed']}\n")
            return SandboxResult(Outcome.OK, result=self.meta_info)
        raise AssertionError(action)


def db_bytes(path: Path) -> int:
    """The size of the SQLite file at ``path`` once vacuumed."""
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    return path.stat().st_size


def breakdown(path: Path) -> dict[str, int]:
    """Bytes of content by kind of record."""
    queries = {
        "program blobs": "SELECT SUM(LENGTH(data)) FROM blobs",
        "program manifests": "SELECT SUM(LENGTH(manifest)) FROM programs",
        "variant meta_info": "SELECT SUM(LENGTH(meta_info)) FROM variants",
        "variant metrics": "SELECT SUM(LENGTH(metrics)) FROM variants",
        "evaluations": "SELECT SUM(LENGTH(results) + LENGTH(metrics)) FROM evaluations",
        "events": "SELECT SUM(LENGTH(message) + LENGTH(data)) FROM events",
    }
    out = {}
    with sqlite3.connect(path) as conn:
        for label, sql in queries.items():
            out[label] = int(conn.execute(sql).fetchone()[0] or 0)
        out["blob count"] = int(conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0])
    return out


def growth(tmp: Path, generations: int) -> Recording:
    """Measurement 1; returns the recording sandbox (the last job's report and files)."""
    path = tmp / "growth.db"
    store = get_storage(f"sqlite:///{path}")
    sandbox = Recording(get_sandbox("auto"))
    run = Run.create(task=KnobTask(), name="knob", storage=store, sandbox=sandbox, seed=1)
    warm = min(20, generations // 4)
    run.optimize(generations=warm)
    first, before = db_bytes(path), breakdown(path)
    start = time.perf_counter()
    run.optimize(generations=generations - warm)
    wall = time.perf_counter() - start
    last, after = db_bytes(path), breakdown(path)
    store.close()
    per = (last - first) / (generations - warm)
    print(f"1. database growth, {generations - warm} generations after {warm} ({wall:.0f} s):")
    print(f"   {per:,.0f} bytes per generation = {per * 1000 / 1e6:.2f} MB per 1,000 (linear)")
    for label in after:
        delta = (after[label] - before[label]) / (generations - warm)
        unit = "" if label == "blob count" else " bytes"
        print(f"   {label:>18}: {delta:,.1f}{unit} per generation")
    return sandbox


_counter = itertools.count()


def load_agent(folder: Path) -> Callable[..., Any]:
    """``folder/meta_agent.py``'s ``improve``, its sibling modules imported anew from source."""
    for name in [name for name in sys.modules if is_meta_module(f"{name}.py")]:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(
            f"_bench_meta_{next(_counter)}", folder / "meta_agent.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    improve: Callable[..., Any] = module.improve
    return improve


def improve_cpu(label: str, files: dict[str, bytes], report: dict[str, Any], repeats: int) -> None:
    """Measurement 2 on one report: median CPU ms of improve() and of import + improve()."""
    sys.dont_write_bytecode = True  # the sandbox compiles from source every time
    alone: list[float] = []
    whole: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            Program(files).write_to(Path(folder))
            start = time.process_time()
            improve = load_agent(Path(folder))
            loaded = time.process_time()
            improve(folder, copy.deepcopy(report))
            end = time.process_time()
        whole.append((end - start) * 1000)
        alone.append((end - loaded) * 1000)
    size = len(json.dumps(report))
    print(
        f"   {label}: improve() {statistics.median(alone):.1f} ms CPU, import + improve() "
        f"{statistics.median(whole):.1f} ms (report {size:,} bytes of JSON, "
        f"{len(report.get('archive') or [])} archive entries)"
    )


def review_job(tmp: Path, generations: int) -> Recording:
    """A few generations of the ``review`` task, recording the last job."""
    store = get_storage(f"sqlite:///{tmp / 'review.db'}")
    sandbox = Recording(get_sandbox("auto"))
    run = Run.create(task="review", name="review", storage=store, sandbox=sandbox, seed=1)
    run.optimize(generations=generations)
    store.close()
    return sandbox


def report_size(tmp: Path, meta_info: Any, generations: int) -> None:
    """Measurement 3."""
    store = get_storage(f"sqlite:///{tmp / 'report.db'}")
    sandbox = NullSandbox(meta_info)
    run = Run.create(task=KnobTask(), name="null", storage=store, sandbox=sandbox, seed=1)
    run.optimize(generations=generations)
    store.close()
    report = sandbox.report or {}
    archive = report.get("archive") or []
    print(f"3. report at generation {report.get('generation')} (null sandbox, real meta info):")
    print(
        f"   {len(json.dumps(report)):,} bytes of JSON; archive {len(archive)} entries, "
        f"{len(json.dumps(archive)):,} bytes; one real meta_info "
        f"{len(json.dumps(meta_info)):,} bytes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--review", type=int, default=5, help="review generations (0: skip)")
    parser.add_argument("--report-generations", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        knob = growth(tmp, args.generations)
        print("2. improve() CPU in this process (median):")
        assert knob.report is not None
        improve_cpu("knob, last job", knob.files, knob.report, args.repeats)
        if args.review:
            review = review_job(tmp, args.review)
            assert review.report is not None
            improve_cpu(
                f"review, generation {args.review}", review.files, review.report, args.repeats
            )
        if args.report_generations:
            report_size(tmp, knob.meta_info, args.report_generations)


if __name__ == "__main__":
    main()

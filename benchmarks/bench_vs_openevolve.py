"""hyperagents against OpenEvolve 0.4.0, side by side on one workload and one fake model.

The workload (``benchmarks/openevolve_workload/``): a program with one tunable ``X``, scored
``-abs(X - 0.7)`` (higher is better); one evaluation spins for E ms of wall time. Both systems
start from the same ``agent.py``:

* **OpenEvolve** 0.4.0, installed by this script into a virtual environment cached under
  ``--cache-dir`` (reused when complete): ``agent.py`` as its initial program, ``evaluator.py``
  as its evaluator, diff-based evolution, ``evaluator.parallel_evaluations`` = workers, no
  cascade (the evaluator has one stage), log level WARNING, its other settings the defaults;
* **hyperagents** ``--meta offline`` (no model) and ``--meta llm`` (the seed LLM meta agent,
  with its reviewer step): ``task.py:TuneXTask``, one ``val`` instance (``train`` and ``test``
  empty, so a child is evaluated once), ``-w`` workers, ``--sandbox auto`` (bubblewrap where
  there is one), ``--quiet``, a SQLite database, the engine this script imports.

Both get the same ``--seed``. The parts: ``vs_openevolve_lib.py`` (the fake model, OpenEvolve's
environment, measuring a process tree) and ``vs_openevolve_runs.py`` (one run of one system).

OpenEvolve and the LLM meta agent talk to the same instant fake OpenAI-compatible server
(:class:`hyperagents.testing.FakeOpenAIServer`, in this process), whose replies are valid edits
that move ``X`` (see ``vs_openevolve_lib.FakeModel``). Each run gets a fresh temporary folder
with a copy of the workload and ``workload.json`` (E), removed afterwards.

For every repetition, evaluation time and worker count, the systems run one after another (the
order rotates from one repetition to the next, so the machine's load falls on all alike). Each
runs ``--generations`` generations, and before that 0 generations (``--no-startup`` skips it):
the difference is the cost of the generations alone, without starting, evaluating the seed
and stopping. Printed per configuration: generations per second (the median over the
repetitions), the fraction of the limit (workers / E; none for 0 ms), whole-tree CPU per
generation (a cgroup v2 when one can be made, else ``RUSAGE_CHILDREN``: the output says
which), the ratio hyperagents / OpenEvolve, and the 1-minute load average before and after
the runs. The fake server's own CPU time is not counted for either system.

Usage:
    python benchmarks/bench_vs_openevolve.py [--generations 100] [--repetitions 3]
        [--eval-ms 50 0] [--workers 1 2] [--systems openevolve offline llm]
        [--run-timeout 900] [--cache-dir ~/.cache/hyperagents/bench-openevolve]

Exit status: 0 when every run finished its generations, 1 when one did not, 2 when OpenEvolve
could not be installed (the reason is printed; nothing runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hyperagents
from hyperagents.testing import FakeOpenAIServer

from vs_openevolve_lib import BenchError, TreeMeter, become_subreaper, ensure_openevolve
from vs_openevolve_runs import MODEL, SYSTEMS, Outcome, Setting, run_one

OPENEVOLVE_VERSION = "0.4.0"
HINT = (
    "(pip needs a package index: without network give one with --pip-arg=--index-url=URL or "
    "--pip-arg=--find-links=DIR, or point --cache-dir at a folder holding a complete "
    "environment)"
)


# -- the schedule and the report --------------------------------------------------------------


@dataclass
class Cell:
    """The runs of one system in one configuration (eval ms, workers)."""

    full: list[Outcome] = field(default_factory=list)
    startup: list[Outcome] = field(default_factory=list)


def schedule(args: argparse.Namespace) -> Iterator[tuple[int, float, int, str]]:
    """(repetition, eval ms, workers, system), systems alternating, their order rotating."""
    systems = list(args.systems)
    for rep in range(args.repetitions):
        for eval_ms in args.eval_ms:
            for workers in args.workers:
                turn = rep % len(systems)
                for system in systems[turn:] + systems[:turn]:
                    yield rep, eval_ms, workers, system


def describe(out: Outcome) -> str:
    """One line about a run."""
    head = f"{out.system:<10} {out.generations:>4} gen"
    if out.measured is None:
        return f"{head}  FAILED: {out.error}"
    m = out.measured
    best = "–" if out.best is None else f"{out.best:.4f}"
    text = (
        f"{head}  wall {m.wall:7.2f} s  cpu {m.cpu:7.2f} s  kept {out.children}  best {best}  "
        f"llm calls {out.llm_calls}  load {out.load[0]:.2f}->{out.load[1]:.2f}"
    )
    return text if out.ok else f"{text}  FAILED: {out.error}"


def per_generation(
    cell: Cell, generations: int, *, whole: bool = False
) -> tuple[list[float], list[float]]:
    """Generations per second and CPU seconds per generation of each repetition that
    finished: of the generations alone (the paired startup run's cost subtracted, where there
    is one), or of the ``whole`` runs."""
    rates: list[float] = []
    cpus: list[float] = []
    for k, out in enumerate(cell.full):
        start = cell.startup[k] if not whole and k < len(cell.startup) else None
        base = start.measured if start is not None and start.ok else None
        if out.measured is None or not out.ok or (start is not None and base is None):
            continue  # failed, or its startup run failed: nothing to subtract
        wall, cpu = out.measured.wall, out.measured.cpu
        if base is not None:
            wall, cpu = wall - base.wall, cpu - base.cpu
        if wall > 0:
            rates.append(generations / wall)
        cpus.append(cpu / generations)
    return rates, cpus


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def report(cells: dict[tuple[float, int, str], Cell], args: argparse.Namespace) -> None:
    """The table: one row per configuration and system."""
    cost = "generations alone (startup run subtracted)" if args.startup else "whole runs"
    print(f"\n## Per configuration: medians over {args.repetitions} repetition(s), {cost}\n")
    print(
        "| eval | workers | system | gen/s | of limit | CPU ms/gen | ratio hyperagents/OpenEvolve"
        " | whole runs: gen/s, CPU ms/gen | load before→after |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for eval_ms in args.eval_ms:
        for workers in args.workers:
            limit = workers * 1000.0 / eval_ms if eval_ms > 0 else None
            rate_of: dict[str, float | None] = {}
            for system in args.systems:
                cell = cells.get((eval_ms, workers, system), Cell())
                rate, cpu = map(_median, per_generation(cell, args.generations))
                whole, whole_cpu = map(_median, per_generation(cell, args.generations, whole=True))
                rate_of[system] = rate
                loads = [o.load for o in cell.full if o.measured is not None]
                print(
                    f"| {eval_ms:g} ms | {workers} | {system} | {_fmt(rate, '.1f')} | "
                    f"{_share(rate, limit)} | {_ms(cpu)} | "
                    f"{_ratio(system, rate, rate_of.get('openevolve'))} | "
                    f"{_fmt(whole, '.1f')}, {_ms(whole_cpu)} | {_loads(loads)} |"
                )
    print(
        "\n–: no figure (the runs failed, or, with the startup run subtracted, the runs were not "
        "measurably longer than their startup runs: raise --generations)"
    )


def _ms(seconds: float | None) -> str:
    return _fmt(None if seconds is None else seconds * 1000, ".0f")


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _share(rate: float | None, limit: float | None) -> str:
    if limit is None:
        return "n/a"
    return "–" if rate is None else f"{rate / limit:.0%}"


def _ratio(system: str, rate: float | None, base: float | None) -> str:
    if system == "openevolve" or rate is None or not base:
        return ""
    return f"{rate / base:.2f}×"


def _loads(loads: Sequence[tuple[float, float]]) -> str:
    if not loads:
        return "–"
    before = statistics.mean(b for b, _ in loads)
    after = statistics.mean(a for _, a in loads)
    return f"{before:.1f}→{after:.1f}"


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--generations", type=int, default=100, help="generations per run")
    parser.add_argument("--repetitions", type=int, default=3, help="alternating repetitions")
    parser.add_argument("--eval-ms", type=float, nargs="+", default=[50.0, 0.0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--seed", type=int, default=0, help="both systems' random seed")
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--sandbox", default="auto", help="hyperagents' --sandbox")
    parser.add_argument(
        "--no-startup", dest="startup", action="store_false",
        help="do not run 0 generations first to subtract the cost of starting and stopping",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir", type=Path, default=Path("~/.cache/hyperagents/bench-openevolve")
    )
    parser.add_argument("--pip-arg", action="append", default=[], help="extra pip argument")
    parser.add_argument("--no-cgroup", action="store_true", help="measure with RUSAGE_CHILDREN")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary folder")
    args = parser.parse_args(argv)
    if args.generations < 1 or args.repetitions < 1 or min(args.workers) < 1:
        parser.error("--generations, --repetitions and --workers must be at least 1")
    if min(args.eval_ms) < 0:
        parser.error("--eval-ms must be >= 0")
    return args


def header(setting: Setting, args: argparse.Namespace) -> None:
    """What runs, with what, measured how."""
    print("# hyperagents vs OpenEvolve", OPENEVOLVE_VERSION)
    print(f"hyperagents {hyperagents.__version__} from {Path(hyperagents.__file__).parent}")
    if setting.openevolve is not None:
        print(f"OpenEvolve {OPENEVOLVE_VERSION} in {setting.openevolve.parent.parent}")
    print(f"fake model server: {setting.server.base_url} (in this process; not measured)")
    reaper = "this process reaps orphans" if setting.reaper else "orphans not reaped here"
    print(f"whole-tree CPU: {setting.meter.method}; {reaper}")
    print(f"cores: {os.cpu_count()}, load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.generations} generations per run, {args.repetitions} repetition(s), eval "
        f"{', '.join(f'{e:g}' for e in args.eval_ms)} ms, workers "
        f"{', '.join(map(str, args.workers))}, seed {args.seed}\n"
    )


def run_all(setting: Setting, args: argparse.Namespace) -> dict[tuple[float, int, str], Cell]:
    """Every run of the schedule, printed as it ends."""
    cells: dict[tuple[float, int, str], Cell] = {}
    last = None
    for rep, eval_ms, workers, system in schedule(args):
        cell = cells.setdefault((eval_ms, workers, system), Cell())
        if (rep, eval_ms, workers) != last:
            last = (rep, eval_ms, workers)
            print(f"rep {rep + 1}  eval {eval_ms:g} ms  workers {workers}", flush=True)
        if args.startup:
            start = run_one(Outcome(system, eval_ms, workers, 0), setting)
            cell.startup.append(start)
            print("  " + describe(start), flush=True)
        full = run_one(Outcome(system, eval_ms, workers, args.generations), setting)
        cell.full.append(full)
        print("  " + describe(full), flush=True)
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    openevolve = None
    if "openevolve" in args.systems:
        try:
            openevolve = ensure_openevolve(
                args.cache_dir, OPENEVOLVE_VERSION, pip_args=args.pip_arg
            )
        except BenchError as exc:
            print(f"error: cannot install OpenEvolve {OPENEVOLVE_VERSION}: {exc}", file=sys.stderr)
            print(HINT, file=sys.stderr)
            return 2
    with FakeOpenAIServer(model=MODEL) as server:
        setting = Setting(
            generations=args.generations,
            seed=args.seed,
            timeout=args.run_timeout,
            sandbox=args.sandbox,
            keep=args.keep,
            openevolve=openevolve,
            server=server,
            meter=TreeMeter(prefer_cgroup=not args.no_cgroup),
            reaper=become_subreaper(),
        )
        header(setting, args)
        cells = run_all(setting, args)
    report(cells, args)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    failed = [o for c in cells.values() for o in c.full + c.startup if not o.ok]
    if failed:
        print(f"{len(failed)} run(s) failed (see above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

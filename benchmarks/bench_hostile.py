"""Every hostile case through both sandboxes: contained or not, reason recorded, time to kill.

Runs each case of :data:`hyperagents.testing.hostile.HOSTILE_CASES` (infinite loop, fork bomb,
50 GB allocation, 1 GB of output, network, secrets, labels, the run database, writes outside the
workspace, killing the parent, escaped children, ignored signals, a segfault, fake score lines,
monkeypatched scoring, deleting the workspace) as a real program through the ``bwrap`` and the
``process`` sandbox, and prints a Markdown table.

"contained" means: no host-side evidence of an escape (connection received, file written or read,
score changed), no process left behind, and the sandbox answered within the case's kill bound
(the wall-clock limit plus 2 s). Cases that would harm the host where a sandbox does not contain
them (the fork bomb, killing the parent, connecting to an external address) are not run there and
reported as "not contained (not run: unsafe)". "**no** (documented)" marks a case the sandbox
does not claim to contain (the ``process`` sandbox has no filesystem isolation and, without a
private uid, runs agent code with the engine's rights); a plain "**no**" or a reason marked
"expected: …" is a containment or classification bug.

A second table puts every case of :data:`hyperagents.testing.hostile_runs.RUN_CASES` (attacks on
the engine: forged sandbox errors, NaN, JSON nested 100,000 deep, a 990-deep return value, file
names that are not UTF-8, a tree 3,000 levels deep, a scorer that overflows, forged CPU times)
through a real two-generation run in each sandbox, and a fuzz run of a meta agent writing random
garbage everywhere. "contained" there means: the run completed, the hostile child ended in a final
state with a recorded reason, the next child completed, and no workspace was left behind.

Usage:
    python benchmarks/bench_hostile.py [--sandbox bwrap --sandbox process] [--case NAME ...]
        [--runs-only | --no-runs] [--fuzz-generations N]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

from hyperagents.sandbox import BwrapSandbox, ProcessSandbox, Sandbox, bwrap_available
from hyperagents.testing.hostile import HOSTILE_CASES, CaseReport, run_case, sandbox_traits
from hyperagents.testing.hostile_runs import RUN_CASES, RunCaseReport, chaos_run, run_child_case


def _cell(text: str, limit: int = 110) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def row(report: CaseReport) -> str:
    case = HOSTILE_CASES[report.case]
    title = f"{report.case} ({case.title})"
    if not report.ran:
        note = _cell(report.note)
        return f"| {title} | {report.sandbox} | not contained (not run: unsafe) | {note} | – |"
    if report.contained:
        contained = "yes"
    else:
        why = report.breaches[:1] or (
            [f"{len(report.stray)} stray process(es)"] if report.stray else []
        )
        if not report.in_time:
            why.append(f"sandbox returned after {report.seconds:.1f} s > {case.kill_bound:g} s")
        # Escaping where the sandbox does not claim isolation is documented; stalling the
        # engine past the wall-clock limit never is.
        documented = not report.expected_contained and report.in_time
        label = "**no** (documented)" if documented else "**no**"
        contained = f"{label}: " + "; ".join(why)
    reason = report.reason
    if not report.reason_ok and report.expected_contained:
        reason += f" (expected: {case.outcome.name.lower()} /{case.reason}/)"
    if report.score is not None:
        reason += f"; trusted score {report.score:g}"
    return (
        f"| {title} | {report.sandbox} | {_cell(contained, 160)} | {_cell(reason, 160)} "
        f"| {report.seconds:.2f} |"
    )


def run_row(report: RunCaseReport, sandbox: str) -> str:
    case = RUN_CASES[report.case]
    title = f"{report.case} (#{case.issue}: {case.description})"
    if report.contained:
        contained = "yes"
    else:
        contained = (
            f"**no**: run {report.run_status.lower()} ({report.run_message}); hostile child "
            f"{report.hostile_state.lower()}, next child {report.benign_state.lower()}, "
            f"{len(report.leftovers)} workspace(s) left"
        )
    walls = ""
    if report.instance_walls:
        walls = f"; per-instance wall measured {min(report.instance_walls):.2f}–"
        walls += f"{max(report.instance_walls):.2f} s"
    return (
        f"| {_cell(title, 140)} | {sandbox} | {_cell(contained, 160)} "
        f"| {report.hostile_state.lower()}: {_cell(report.recorded(), 160)}{walls} "
        f"| {report.seconds:.2f} |"
    )


def run_tables(sandboxes: list[Sandbox], generations: int) -> None:
    """The engine-level cases and the fuzz run, one Markdown table."""
    print()
    print("| engine case | sandbox | contained | hostile child's final state and reason | s |")
    print("|---|---|---|---|---|")
    for case in RUN_CASES.values():
        for sandbox in sandboxes:
            print(run_row(run_child_case(case, sandbox=sandbox), sandbox.name), flush=True)
    for sandbox in sandboxes:
        for seed in (0, 1):
            start = time.perf_counter()
            run, left = chaos_run(generations=generations, seed=seed, sandbox=sandbox)
            states = collections.Counter(v.state.name.lower() for v in run.variants())
            final = all(v.state.is_terminal for v in run.variants())
            ok = run.record().status.name == "COMPLETE" and final and not left
            summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            print(
                f"| fuzz seed {seed} ({generations} generations of random garbage) "
                f"| {sandbox.name} | {'yes' if ok else '**no**'} | {summary}; "
                f"{len(left)} workspace(s) left | {time.perf_counter() - start:.2f} |",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", action="append", choices=["bwrap", "process"])
    parser.add_argument("--case", action="append", choices=list(HOSTILE_CASES))
    parser.add_argument("--runs-only", action="store_true", help="only the engine-level cases")
    parser.add_argument("--no-runs", action="store_true", help="only the sandbox-level cases")
    parser.add_argument("--fuzz-generations", type=int, default=40)
    args = parser.parse_args()
    names = args.sandbox or ["bwrap", "process"]
    sandboxes: list[Sandbox] = []
    for name in names:
        if name == "bwrap" and not bwrap_available():
            print("bubblewrap is not available: skipping the bwrap sandbox", file=sys.stderr)
            continue
        sandboxes.append(BwrapSandbox() if name == "bwrap" else ProcessSandbox())
    uname = os.uname()
    print(
        f"machine: {uname.sysname} {uname.release} {uname.machine}, {os.cpu_count()} CPUs; "
        f"engine uid {os.geteuid()}; python {sys.version.split()[0]}"
    )
    for sandbox in sandboxes:
        traits = ", ".join(sorted(sandbox_traits(sandbox))) or "none"
        user = getattr(sandbox, "isolates_user", False)
        print(f"- {sandbox.name}: isolation {traits}; private uid: {user}")
    if not args.runs_only:
        print()
        print("| case | sandbox | contained | reason recorded | time to kill/finish (s) |")
        print("|---|---|---|---|---|")
        for case_name in args.case or list(HOSTILE_CASES):
            for sandbox in sandboxes:
                with tempfile.TemporaryDirectory(prefix="hyperagents-hostile-") as directory:
                    report = run_case(HOSTILE_CASES[case_name], sandbox, Path(directory))
                print(row(report), flush=True)
    if not args.no_runs:
        run_tables(sandboxes, args.fuzz_generations)
    return 0


if __name__ == "__main__":
    sys.exit(main())

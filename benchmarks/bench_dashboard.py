"""How fast the dashboard's archive and lineage pages load with 10,000 variants.

Builds a storage holding one run of ``--variants`` variants (a random tree: each child's parent
is drawn from the complete variants before it, as the engine's selectors do; states, per-stage
scores and metrics, events and a program per variant, all through the storage API), serves it
with ``hyperagents dashboard`` in a process of its own, and opens each page in headless Chromium
(Debian's ``chromium`` through Playwright) ``--repeat`` times. A load is timed from the start of
navigation (``performance.timeOrigin``) to the moment the page has drawn its data: the archive's
table rows are in the DOM, the lineage's canvas has drawn every node. The JSON endpoints are timed
on their own too (server time, read from storage to bytes sent).

Usage:
    python benchmarks/bench_dashboard.py [--variants 10000] [--repeat 5] [--db PATH]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from hyperagents.program import Program
from hyperagents.storages import EventSpec, RDBStorage, RunSpec, VariantState
from hyperagents.testing.dashboard import dashboard_server

_TASK_AGENT = (
    'PARAMS = {{"t": {t}}}\n\n\ndef solve(inputs):\n    return inputs["x"] > PARAMS["t"]\n'
)
_META_AGENT = "STEP = {step}\n\n\ndef improve(workspace, report):\n    return {{}}\n"


def build(path: Path, variants: int, seed: int = 0) -> str:
    """A storage with one run of ``variants`` variants; returns its URL."""
    url = f"sqlite:///{path}"
    storage = RDBStorage(url)
    rng = random.Random(seed)
    seed_program = Program({"task_agent.py": _TASK_AGENT.format(t=0.5), "meta_agent.py": "x = 1\n"})
    program_id = storage.put_program(seed_program)
    run_id = storage.create_run(
        RunSpec(
            name="big",
            task="review",
            mode="hyperagent",
            seed=seed,
            config={},
            seed_program_id=program_id,
            target_generations=variants - 1,
        )
    )
    complete: list[tuple[int, float]] = []
    started = time.perf_counter()
    for generation in range(variants):
        parent = None if not complete else rng.choice(complete[-200:])[0]
        program = Program(
            {
                "task_agent.py": _TASK_AGENT.format(t=round(rng.random(), 4)),
                "meta_agent.py": _META_AGENT.format(step=round(rng.random(), 4)),
            }
        )
        variant_id = storage.create_variant(
            run_id=run_id,
            generation=generation,
            parent_id=parent,
            program_id=storage.put_program(program),
            state=VariantState.EVALUATING,
            meta_info={"operator": rng.choice(["perturb", "focus", "follow", "reset"])},
            event=EventSpec("variant.created", f"generation {generation}"),
        )
        fate = rng.random()
        subset = min(1.0, max(0.0, rng.gauss(0.6 + 0.2 * generation / variants, 0.1)))
        metrics = {"wall_seconds": 0.4, "cpu_seconds": 0.3, "peak_memory_mb": 30.0, "errors": 0}
        storage.add_evaluation(
            variant_id=variant_id,
            stage="train_subset",
            split="train",
            score=subset,
            n=10,
            results=[],
            metrics=metrics,
        )
        if fate < 0.25:
            state, reason = VariantState.PRUNED, "train-subset score below the parent's"
        elif fate < 0.3:
            state, reason = VariantState.INVALID, "SyntaxError: invalid syntax (task_agent.py)"
        else:
            val = min(1.0, max(0.0, subset + rng.gauss(0, 0.05)))
            storage.add_evaluation(
                variant_id=variant_id,
                stage="val",
                split="val",
                score=val,
                n=40,
                results=[],
                metrics=metrics,
            )
            state, reason = VariantState.COMPLETE, None
            complete.append((variant_id, val))
        storage.set_variant_state(
            variant_id,
            state,
            expected=VariantState.EVALUATING,
            reason=reason,
            event=EventSpec(f"variant.{state.name.lower()}", reason or "evaluated"),
        )
        if generation and generation % 1000 == 0:
            rate = generation / (time.perf_counter() - started)
            print(f"  built {generation} variants ({rate:.0f}/s)", flush=True)
    storage.close()
    return url


def _time_endpoint(client: httpx.Client, path: str, repeat: int) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - t0)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(times), size


def _time_page(browser: Any, url: str, ready: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector(ready, state="attached", timeout=30_000)
        # performance.now() counts from the start of this navigation.
        times.append(float(page.evaluate("performance.now()")) / 1000)
        context.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="Reuse (or build) this database.")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium) and playwright")
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    db = args.db or tmp / "big.db"
    if db.exists():
        url = f"sqlite:///{db}"
        print(f"reusing {db}")
    else:
        print(f"building a run of {args.variants} variants in {db}")
        t0 = time.perf_counter()
        url = build(db, args.variants)
        print(f"  built in {time.perf_counter() - t0:.1f} s")
    try:
        with dashboard_server(url) as base:
            _measure(base, chromium, args.repeat)
    finally:
        if args.db is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _measure(base: str, chromium: str, repeat: int) -> None:
    from playwright.sync_api import sync_playwright

    with httpx.Client(base_url=base, timeout=60) as client:
        print(f"\nJSON endpoints (median of {repeat}):")
        print(f"  {'endpoint':<28}{'seconds':>9}{'bytes':>12}")
        for path in (
            "/api/runs",
            "/api/runs/big",
            "/api/runs/big/archive",
            "/api/runs/big/lineage",
        ):
            seconds, size = _time_endpoint(client, path, repeat)
            print(f"  {path:<28}{seconds:>9.3f}{size:>12,}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        pages = {
            "archive": (f"{base}/#/run/big/archive", "#archive-table tbody tr"),
            "lineage": (f"{base}/#/run/big/lineage", "#lineage-canvas[data-champion]"),
            "overview": (f"{base}/#/run/big", "svg.chart circle.dot-val"),
            "runs": (f"{base}/#/", "#runs-table tbody tr"),
        }
        print(f"\npage loads in Chromium, navigation start to data drawn ({repeat} loads):")
        print(f"  {'page':<10}{'median s':>10}{'max s':>8}{'< 1 s':>7}")
        for name, (url, ready) in pages.items():
            times = _time_page(browser, url, ready, repeat)
            fast = "yes" if max(times) < 1.0 else "no"
            print(f"  {name:<10}{statistics.median(times):>10.3f}{max(times):>8.3f}{fast:>7}")
        browser.close()


if __name__ == "__main__":
    main()

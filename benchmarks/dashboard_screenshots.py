"""Screenshots of every dashboard page on real runs, for people to check that they look right.

Builds (or reuses) a storage with two real runs:

* ``support-demo``: ``hyperagents run --task support -g 220`` with the built-in offline meta
  agent (221 variants);
* ``support-llm``: the seed LLM meta agent for 4 generations against the fake OpenAI-compatible
  server of ``bench_llm.py`` (scripted edits), so that a variant has an LLM transcript;
* ``arena-demo``: ``hyperagents arena --rounds 6 --tournament 2x2`` on ``email_validation``
  (small rounds, about 15 s; added to a reused storage that lacks it), for the arena page;

serves it with ``hyperagents dashboard`` and saves a full-page PNG of each page in ``--out``.

Usage:
    python benchmarks/dashboard_screenshots.py [--out docs/dashboard] [--db PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_llm import FakeModel, _config

from hyperagents.runs import Run, champion_of
from hyperagents.storages import RDBStorage
from hyperagents.tasks.support import SupportTask
from hyperagents.testing import FakeOpenAIServer
from hyperagents.testing.dashboard import dashboard_server


def build(db: Path) -> str:
    url = f"sqlite:///{db}"
    subprocess.run(
        [
            *(sys.executable, "-m", "hyperagents", "run", "--task", "support", "-g", "220"),
            *("-w", "2", "--name", "support-demo", "--storage", url, "--quiet"),
        ],
        check=True,
    )
    storage = RDBStorage(url)
    task = SupportTask()
    with FakeOpenAIServer(handler=FakeModel(task)) as server:
        run = Run.create(
            task=task, seed=0, storage=storage, name="support-llm", config=_config(server.base_url)
        )
        run.optimize(generations=4, workers=1)
    storage.close()
    return url


def add_arena(url: str) -> None:
    """Play the small tournament ``arena-demo`` into ``url`` (when it is not there yet)."""
    storage = RDBStorage(url)
    names = {run.name for run in storage.list_runs()}
    storage.close()
    if "arena-demo" in names:
        return
    subprocess.run(
        [
            *(sys.executable, "-m", "hyperagents", "arena", "--rounds", "6"),
            *("--tournament", "2x2", "--replace-every", "2", "--proposals", "20"),
            *("--children", "1", "--heldout", "100", "--name", "arena-demo"),
            *("--storage", url),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard"))
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium) and playwright")
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-shots-"))
    db = args.db or tmp / "demo.db"
    url = f"sqlite:///{db}" if db.exists() else build(db)
    add_arena(url)
    storage = RDBStorage(url)
    demo = storage.get_run_by_name("support-demo")
    variants = storage.list_variants(demo.id)
    champion = champion_of(variants)
    assert champion is not None
    llm_run = storage.get_run_by_name("support-llm")
    llm_variant = next(
        v
        for v in storage.list_variants(llm_run.id)
        if storage.list_llm_calls(llm_run.id, variant_id=v.id) and v.generation > 0
    )
    storage.close()
    args.out.mkdir(parents=True, exist_ok=True)
    shots = [
        ("runs", "#/", "#runs-table tbody tr"),
        ("overview", "#/run/support-demo", "svg.chart circle.dot-val"),
        ("archive", "#/run/support-demo/archive", "#archive-table tbody tr"),
        ("lineage", "#/run/support-demo/lineage", "#lineage-canvas[data-champion]"),
        ("variant-diff", f"#/variant/{champion.id}/diff", "#diff .diff-file"),
        ("variant-files", f"#/variant/{champion.id}/files", ".file-view table.code"),
        ("variant-evaluation", f"#/variant/{champion.id}/evaluation", ".stage"),
        ("variant-meta", f"#/variant/{champion.id}/meta", ".tab-body pre.json"),
        ("variant-llm", f"#/variant/{llm_variant.id}/llm", "details.call"),
        ("events", "#/run/support-demo/events", "table.events tbody tr"),
        ("arena", "#/run/arena-demo/arena", "#arena-score-chart path.line-agent"),
    ]
    try:
        with dashboard_server(url) as base:
            _shoot(base, chromium, shots, args.out, champion.id)
    finally:
        if args.db is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _shoot(
    base: str, chromium: str, shots: list[tuple[str, str, str]], out: Path, champion: int
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for name, fragment, ready in shots:
            page.goto(f"{base}/{fragment}")
            page.wait_for_selector(ready, state="attached", timeout=30_000)
            if name == "variant-llm":
                page.locator("details.call").first.evaluate("d => d.open = true")
            page.wait_for_timeout(300)
            page.screenshot(
                path=str(out / f"{name}.png"),
                full_page=name not in ("events", "variant-llm", "variant-evaluation"),
            )
            print(f"saved {out / f'{name}.png'}")
        page.goto(f"{base}/#/variant/{champion}/try")
        page.wait_for_selector("#try-input")
        page.click("#try-run")
        page.wait_for_selector("#try-result", timeout=60_000)
        page.screenshot(path=str(out / "variant-try.png"), full_page=True)
        print(f"saved {out / 'variant-try.png'}")
        browser.close()


if __name__ == "__main__":
    main()

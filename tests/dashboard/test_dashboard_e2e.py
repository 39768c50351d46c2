"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
``hyperagents dashboard`` serves a real run; the browser goes runs → archive → variant, reads the
diff, tries the agent, and stops and resumes a run. Screenshots of every page are saved under
``$HYPERAGENTS_TEST_ARTIFACTS`` (default: ``test-artifacts/``) for people to look at.

Without Chromium or Playwright these tests are skipped, except under ``CI=true``, where they fail:
``scripts/test.sh`` installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arena_site import HOSTILE_INPUTS, Arenas, play_arenas
from service_site import Served, autopilot_to_ab, make_served_run, new_service

from hyperagents.storages import RDBStorage, RunSpec, RunStatus
from hyperagents.testing.dashboard import dashboard_server

from dashboard_helpers import make_run

ARTIFACTS = (
    Path(
        os.environ.get(
            "HYPERAGENTS_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
        )
    )
    / "dashboard"
)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium and Playwright are needed (scripts/test.sh installs them)")
        pytest.skip("no chromium / playwright here (scripts/test.sh installs them)")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RDBStorage]]:
    tmp = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{tmp / 'runs.db'}"
    storage = RDBStorage(url)
    make_run(storage, "toy-e2e", 10, seed=2)
    make_run(storage, "toy-live", 1, seed=3)
    with dashboard_server(url) as base:
        yield base, storage
    storage.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    yield tab
    context.close()
    assert not errors, errors


def _ready(page: Any) -> None:
    page.wait_for_selector('body[data-ready="1"]', state="attached", timeout=120_000)


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_runs_archive_variant_diff(server: tuple[str, RDBStorage], page: Any) -> None:
    base, storage = server
    page.goto(f"{base}/")
    _ready(page)
    assert page.locator("#runs-table tbody tr").count() == 2
    _shot(page, "01-runs")
    page.click("#runs-table a:text-is('toy-e2e')")
    page.wait_for_url(re.compile(r"#/run/toy-e2e$"))
    _ready(page)
    page.wait_for_selector("svg.chart circle.dot-val")
    assert "Champion" in page.inner_text("main")
    _shot(page, "02-overview")

    page.click("#nav a:text-is('Archive')")
    page.wait_for_selector("#archive-table tbody tr")
    record = storage.get_run_by_name("toy-e2e")
    variants = storage.list_variants(record.id)
    assert page.locator("#archive-table tbody tr").count() == len(variants)
    page.click("#archive-table th[data-col='val']")  # best first
    best = max(v.scores.get("val", -1) for v in variants)
    first_val = page.locator("#archive-table tbody tr").first.locator("td").nth(6).inner_text()
    assert float(first_val) == pytest.approx(best, abs=1e-3)
    page.select_option("#filter-state", "pruned")
    pruned = sum(1 for v in variants if v.state.name == "PRUNED")
    assert page.locator("#archive-table tbody tr").count() == pruned
    page.select_option("#filter-state", "")
    _shot(page, "03-archive")

    child = next(v for v in variants if v.parent_id and v.program_id)
    page.click(f"#archive-table tr[data-variant='{child.id}']")
    page.wait_for_url(re.compile(rf"#/variant/{child.id}$"))
    page.wait_for_selector("#diff .diff-file")
    diff = page.inner_text("#diff")
    assert "task_agent.py" in diff and "meta_agent.py" in diff
    assert page.locator("#diff tr.add").count() >= 1 and page.locator("#diff tr.del").count() >= 1
    assert page.locator("#diff tr.add span.mi, #diff tr.add span.mf").count() >= 1  # highlighted
    _shot(page, "04-variant-diff")

    page.click(".tabs a[data-tab='files']")
    page.wait_for_selector(".file-view table.code")
    assert "def solve" in page.inner_text(".file-view table.code")
    page.click(".tabs a[data-tab='evaluation']")
    page.wait_for_selector(".stage[data-stage='val']")
    _shot(page, "05-variant-evaluation")
    page.click(".tabs a[data-tab='meta']")
    page.wait_for_selector("pre.json")
    page.click(".tabs a[data-tab='try']")
    page.wait_for_selector("#try-input")
    page.fill("#try-input", '{"x": 0.99}')
    page.click("#try-run")
    page.wait_for_selector("#try-result")
    assert page.inner_text("#try-result").strip() == '"hi"'
    _shot(page, "06-variant-try")


def test_lineage_and_events(server: tuple[str, RDBStorage], page: Any) -> None:
    base, storage = server
    page.goto(f"{base}/#/run/toy-e2e/lineage")
    _ready(page)
    canvas = page.wait_for_selector("#lineage-canvas[data-champion]")
    x, y = (int(v) for v in canvas.get_attribute("data-champion").split(","))
    page.click("#zoom-in")
    page.click("#zoom-out")
    x, y = (int(v) for v in canvas.get_attribute("data-champion").split(","))
    _shot(page, "07-lineage")
    canvas.click(position={"x": x, "y": y})
    record = storage.get_run_by_name("toy-e2e")
    from hyperagents.runs import champion_of

    champion = champion_of(storage.list_variants(record.id))
    assert champion is not None
    page.wait_for_url(re.compile(rf"#/variant/{champion.id}"))
    _ready(page)

    page.goto(f"{base}/#/run/toy-e2e/events")
    _ready(page)
    page.select_option("#event-group", "evaluation")
    page.wait_for_function(
        "() => [...document.querySelectorAll('table.events .kind')].every("
        "e => /^(variant\\.(validated|invalid|evaluated|pruned|completed)|champion\\.test)$/"
        ".test(e.textContent))"
    )
    assert page.locator("table.events tbody tr").count() > 0
    _shot(page, "08-events")


def test_stop_resume_and_delete_from_the_browser(server: tuple[str, RDBStorage], page: Any) -> None:
    base, storage = server
    record = storage.get_run_by_name("toy-live")
    page.goto(f"{base}/")
    _ready(page)
    row = "#runs-table tr[data-run='toy-live']"
    page.click(f"{row} button[data-action='resume']")
    page.fill("#prompt-generations", "5000")
    page.click("#prompt-ok")
    # The page follows the run live: the badge turns "running" without a reload.
    page.wait_for_selector(f"{row} .badge.live-dot", timeout=120_000)
    _shot(page, "09-running")
    page.click(f"{row} button[data-action='stop']")
    page.click("#confirm-ok")
    page.wait_for_selector(f"{row} .badge.status-stopped", timeout=120_000)
    assert storage.get_run(record.id).status is RunStatus.STOPPED
    done = storage.count_variants(record.id)
    assert 1 < done < 5000
    _shot(page, "10-stopped")
    page.click(f"{row} button[data-action='resume']")
    page.fill("#prompt-generations", "")
    page.click("#prompt-ok")
    page.wait_for_selector(f"{row} .badge.live-dot", timeout=120_000)
    page.click(f"{row} button[data-action='stop']")
    page.click("#confirm-ok")
    page.wait_for_selector(f"{row} .badge.status-stopped", timeout=120_000)
    assert storage.count_variants(record.id) > done
    page.click(f"{row} button[data-action='delete']")
    assert page.is_disabled("#confirm-ok")
    page.fill("#confirm-text", "toy-live")
    page.click("#confirm-ok")
    page.wait_for_selector(row, state="detached")
    assert [r.name for r in storage.list_runs()] == ["toy-e2e"]


def test_cli_refuses_an_open_binding_without_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_DASHBOARD_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "hyperagents", "dashboard", "--host", "0.0.0.0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "token" in proc.stderr


def test_a_diff_too_large_to_show_says_so_and_offers_a_download(
    server: tuple[str, RDBStorage], page: Any
) -> None:
    from hyperagents.program import Program
    from hyperagents.storages import VariantState

    base, storage = server
    seed_files = {"task_agent.py": "x = 1\n", "meta_agent.py": "# meta\n"}
    seed_id = storage.put_program(Program(seed_files))
    run_id = storage.create_run(RunSpec(
        name="toy-heavy", task="review", mode="hyperagent", seed=0, config={},
        seed_program_id=seed_id,
    ))  # fmt: skip
    seed = storage.create_variant(
        run_id=run_id, generation=0, parent_id=None, state=VariantState.COMPLETE, program_id=seed_id
    )
    chunk = ("value = " + "1" * 91 + "\n") * 5120  # 500 KiB a file, 12 files: over the 4 MiB
    heavy = Program({**seed_files, **{f"data/f{i:02}.py": f"# {i}\n{chunk}" for i in range(12)}})
    child = storage.create_variant(
        run_id=run_id, generation=1, parent_id=seed, program_id=storage.put_program(heavy)
    )
    page.goto(f"{base}/#/variant/{child}/diff")
    _ready(page)
    notice = page.wait_for_selector("#diff-too-large")
    assert "too large to show here" in notice.inner_text()
    link = page.locator("#diff-too-large a.download")
    assert link.get_attribute("href") == f"/api/variants/{child}/diff.zip"
    assert page.locator("#diff tr.add").count() == 0  # nothing of the 6 MiB was rendered
    _shot(page, "04b-variant-diff-too-large")


def test_a_variant_s_model_tab_and_binary_diff(server: tuple[str, RDBStorage], page: Any) -> None:
    from model_helpers import WEIGHTS, store_model_run

    base, storage = server
    made = store_model_run(storage, "toy-model")
    page.goto(f"{base}/#/variant/{made.seed}/files")
    _ready(page)
    page.wait_for_selector(".file-view")
    assert page.locator(".tabs a[data-tab='model']").count() == 0  # the seed has no model
    page.goto(f"{base}/#/variant/{made.child}/model")
    _ready(page)
    page.wait_for_selector("#model table.model-files")
    rows = page.locator("#model table.model-files tbody tr")
    assert rows.count() == 2
    weights = rows.nth(1).inner_text()
    assert "model/model.safetensors" in weights and f"{len(WEIGHTS)} B" in weights
    digest = made.program.blobs["model/model.safetensors"]
    assert rows.nth(1).locator("code").get_attribute("title") == digest
    assert '"d_model": 32,' in page.inner_text("#model pre.model-config")
    _shot(page, "04c-variant-model")
    page.click(".tabs a[data-tab='diff']")
    page.wait_for_selector("#diff .binary-note")
    note = page.inner_text("#diff .binary-note")
    assert note == "Binary files /dev/null and b/model/model.safetensors differ"


@pytest.fixture(scope="module")
def service_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, RDBStorage, Served, int]]:
    """A dashboard over a service whose autopilot put a candidate under A/B."""
    tmp = tmp_path_factory.mktemp("e2e-service")
    url = f"sqlite:///{tmp / 'services.db'}"
    storage = RDBStorage(url)
    served = make_served_run(storage, "served-e2e")
    service = new_service(storage, served, "live-svc")
    autopilot_to_ab(storage, served, service, drift=False)
    with dashboard_server(url) as base:
        yield base, storage, served, service
    storage.close()


def test_the_service_page_charts_quality_and_steers_the_candidate(
    service_server: tuple[str, RDBStorage, Served, int], page: Any
) -> None:
    from hyperagents.service import COMMAND_EVENT
    from hyperagents.storages import CandidateState

    base, storage, served, service = service_server
    page.goto(f"{base}/")
    _ready(page)
    page.click("#nav a:text-is('Services')")
    page.wait_for_selector("#services-table tr[data-service='live-svc']")
    page.click("#services-table a:text-is('live-svc')")
    page.wait_for_url(re.compile(r"#/service/live-svc$"))
    _ready(page)
    page.wait_for_selector("#service-chart path.line-champion")
    assert page.locator("#service-chart path.line-candidate").count() == 1
    assert page.locator("#service-chart rect.bar").count() > 0
    assert page.locator("#service-chart line.mark").count() >= 2  # improving, testing
    assert page.inner_text("#ab-counts").startswith("pairs 0 · champion")
    assert page.inner_text("#ab-phase") in ("ab", "done")
    assert "testing" in page.inner_text("#autopilot-stage")
    assert "large x answered wrong" in page.inner_text("#plans")
    _shot(page, "11-service")

    page.click("#autopilot button[data-override='force']")
    page.click("#confirm-ok")
    page.wait_for_selector("#pending-command")
    commands = storage.list_service_events(service, kinds=[COMMAND_EVENT])
    assert [c.data["override"] for c in commands] == ["force"]

    page.click("#promote")
    page.fill("#prompt-note", "better on the drifted inputs")
    page.click("#prompt-ok")
    page.wait_for_selector("#promote", state="detached")
    record = storage.get_service(service)
    assert record.champion_id == served.candidate
    assert record.candidate_state is CandidateState.PROMOTED
    _shot(page, "12-service-promoted")


@pytest.fixture(scope="module")
def arena_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Arenas]]:
    """A dashboard over real arenas (finished, a tournament with hostile inputs, partial,
    zero rounds) and a run that is no arena."""
    tmp = tmp_path_factory.mktemp("e2e-arena")
    url = f"sqlite:///{tmp / 'arenas.db'}"
    storage = RDBStorage(url)
    played = play_arenas(storage)
    make_run(storage, "toy-plain", 1)
    with dashboard_server(url) as base:
        yield base, played
    storage.close()


def test_the_arena_page_charts_the_rounds_and_shows_inputs_as_text(
    arena_server: tuple[str, Arenas], page: Any
) -> None:
    base, played = arena_server
    page.goto(f"{base}/")
    _ready(page)
    page.click("#runs-table a:text-is('arena-duel')")
    page.wait_for_url(re.compile(r"#/run/arena-duel/arena$"))
    _ready(page)
    rounds = len(played.duel.series)
    assert page.locator("#arena-suite-chart rect.bar-added").count() == rounds
    assert page.locator("#arena-score-chart path.line-agent[data-agent='c0']").count() == 1
    assert page.locator("#arena-score-chart circle.dot-drop").count() == rounds
    assert page.locator("#arena-hard-chart rect.bar-hard").count() == rounds
    assert page.locator("#arena-rounds tbody tr").count() == rounds
    champion = f"{played.duel.heldout['champion'] * 100:.1f}%"
    assert page.inner_text("#heldout-champion").startswith(champion)
    assert page.locator("#nav a:text-is('Arena')").get_attribute("class") == "active"
    _shot(page, "13-arena")
    page.select_option("#arena-focus", "champion")
    page.wait_for_selector("#arena-score-chart path.line-agent[data-agent='champion']")

    page.goto(f"{base}/#/run/arena-tournament/arena")
    _ready(page)
    page.wait_for_selector("#arena-replacements tbody tr")
    assert "c1" in page.inner_text("#arena-replacements")
    cells = page.locator("#arena-cases td.case-input").all_inner_texts()
    assert HOSTILE_INPUTS[0] in cells  # shown as the text it is
    assert max(len(text) for text in cells) == 200  # the long input is cut
    assert page.locator("#arena-cases img, #arena-cases script").count() == 0
    assert page.evaluate("window.__pwned") is None
    agents = {name for r in played.tournament.series for name in r["scores_grown"]}
    agents |= set(played.tournament.series[-1]["scores"])  # the last round's newcomer
    assert len(agents) == 4  # c0, c1; c2 replaced c1 in round 1, c3 replaced one in round 2
    assert page.locator("#arena-score-chart path.line-agent").count() == len(agents)
    _shot(page, "14-arena-tournament")

    page.goto(f"{base}/#/run/arena-partial/arena")
    _ready(page)
    assert "not measured yet" in page.inner_text("#arena-heldout")
    assert page.locator("#arena-rounds tbody tr").count() == 1
    page.goto(f"{base}/#/run/arena-empty/arena")
    _ready(page)
    page.wait_for_selector("#arena-empty")
    assert page.locator("#arena-suite-chart").count() == 0
    page.goto(f"{base}/#/run/arena-duel")
    _ready(page)
    page.click("#arena-link a")
    page.wait_for_url(re.compile(r"#/run/arena-duel/arena$"))


def test_a_run_that_is_no_arena_says_so_on_the_arena_page(
    arena_server: tuple[str, Arenas], browser: Any
) -> None:
    base, _ = arena_server
    context = browser.new_context()  # its console shows the API's 400: not the page fixture's
    page = context.new_page()
    try:
        page.goto(f"{base}/#/run/toy-plain/arena")
        _ready(page)
        assert "'toy-plain' is not an arena" in page.inner_text("#arena-missing")
        page.click("#arena-missing a")
        page.wait_for_url(re.compile(r"#/run/toy-plain$"))
        _ready(page)
        page.wait_for_selector("svg.chart")  # the overview of a run with variants
        assert page.locator("#nav a:text-is('Arena')").count() == 0
    finally:
        context.close()

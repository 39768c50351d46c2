"""The dashboard shows which engine and worker ran what: an Engines card on the run page (its
data), ``engine`` and ``worker`` in the archive table, the CSV export and each evaluation."""

from __future__ import annotations

import csv
import io
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperagents.dashboard import create_app
from hyperagents.runs import Run, RunConfig, engine_label
from hyperagents.storages import InMemoryStorage, RDBStorage
from hyperagents.testing.dashboard import dashboard_server

from dashboard_helpers import make_run
from toytask import ToyTask

#: A token of a process of this host that does not run: its engine shows as dead.
_GONE = f"{socket.gethostname()}|4000000|-|deadbeef"


@pytest.fixture(scope="module")
def crew() -> tuple[InMemoryStorage, list[Run]]:
    storage = InMemoryStorage()
    config = RunConfig.parse({"subset_size": 10, "parallel_generations": 4})
    lead = Run.create(task=ToyTask(), name="crew", storage=storage, config=config, generations=8)
    member = Run.load("crew", storage=storage, task=ToyTask())
    threads = [
        threading.Thread(target=r.optimize, kwargs={"join": True, "workers": 2})
        for r in (lead, member)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    storage.register_engine(lead.id, _GONE, host="elsewhere", pid=4000000, workers=3)
    return storage, [lead, member]


@pytest.fixture
def client(crew: tuple[InMemoryStorage, list[Run]], tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(crew[0], log_dir=tmp_path / "logs")
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        test_client.get("/")
        yield test_client


def test_the_run_page_lists_its_engines(
    client: TestClient, crew: tuple[InMemoryStorage, list[Run]]
) -> None:
    storage, runs = crew
    engines = client.get("/api/runs/crew").json()["engines"]
    by_owner = {e["owner"]: e for e in engines}
    assert set(by_owner) == {r.owner for r in runs} | {_GONE}
    for run in runs:
        row = by_owner[run.owner]
        assert row["engine"] == engine_label(run.owner)
        assert (row["workers"], row["status"], row["lead"]) == (2, "left", False)
        assert row["heartbeat_age"] >= 0
    made = sum(by_owner[r.owner]["variants"] for r in runs)
    assert made == sum(1 for v in storage.list_variants(runs[0].id) if v.engine)
    dead = by_owner[_GONE]
    assert (dead["status"], dead["workers"], dead["host"]) == ("dead", 3, "elsewhere")


def test_the_archive_and_the_export_say_who_ran_each_child(
    client: TestClient, crew: tuple[InMemoryStorage, list[Run]]
) -> None:
    labels = {engine_label(r.owner) for r in crew[1]}
    archive = client.get("/api/runs/crew/archive").json()
    ix = {c: k for k, c in enumerate(archive["columns"])}
    children = [row for row in archive["rows"] if row[ix["generation"]] > 0]
    assert children and all(row[ix["engine"]] in labels for row in children)
    assert all(row[ix["worker"]] in (0, 1) for row in children)
    exported = list(csv.DictReader(io.StringIO(client.get("/api/runs/crew/export.csv").text)))
    assert {"engine", "worker"} <= set(exported[0])
    assert {row["engine"] for row in exported if row["generation"] != "0"} <= labels


def test_each_evaluation_says_which_engine_and_worker_ran_it(
    client: TestClient, crew: tuple[InMemoryStorage, list[Run]]
) -> None:
    storage, runs = crew
    labels = {engine_label(r.owner) for r in runs}
    child = next(v for v in storage.list_variants(runs[0].id) if v.generation and v.program_id)
    detail = client.get(f"/api/variants/{child.id}").json()
    assert detail["engine"] in labels and detail["worker"] in (0, 1)
    assert detail["evaluations"]
    for evaluation in detail["evaluations"]:
        assert evaluation["engine"] in labels and evaluation["worker"] in (0, 1)


def test_the_run_page_draws_the_engines_card(tmp_path: Path) -> None:
    """In a real headless Chromium: the run page's Engines card, and the engine on each
    evaluation."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    playwright = pytest.importorskip("playwright.sync_api")
    if executable is None:
        pytest.skip("no chromium here (scripts/test.sh installs it)")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = RDBStorage(url)
    try:
        run = make_run(storage, "toy-engines", 3)
        child = next(v for v in run.variants() if v.generation and v.program_id)
        with dashboard_server(url) as base, playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"{base}/#/run/toy-engines")
            page.wait_for_selector("#engines tbody tr")
            row = page.inner_text("#engines tbody tr")
            assert engine_label(run.owner) in row and "left" in row
            page.goto(f"{base}/#/variant/{child.id}")
            page.wait_for_selector(".tabs a[data-tab='evaluation']")
            page.click(".tabs a[data-tab='evaluation']")
            page.wait_for_selector(".stage[data-stage='val']")
            assert f"engine {engine_label(run.owner)}, worker" in page.inner_text("main")
            browser.close()
    finally:
        storage.close()

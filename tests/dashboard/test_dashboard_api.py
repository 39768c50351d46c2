"""The dashboard's JSON API on a real run: what each page gets, the actions, and the guard."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hyperagents.dashboard import check_binding, create_app, is_loopback
from hyperagents.exceptions import ConfigError
from hyperagents.runs import champion_of
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState

from dashboard_helpers import TOY, Site, csrf, make_run


# -- what the pages show ----------------------------------------------------------------------
def test_runs_list_summarises_each_run(client: TestClient, site: Site) -> None:
    data = client.get("/api/runs").json()
    row = next(r for r in data["runs"] if r["name"] == site.run)
    record = site.storage.get_run_by_name(site.run)
    variants = site.storage.list_variants(record.id)
    best = champion_of(variants)
    assert best is not None
    assert row["status"] == "complete" and row["live"] is False
    assert row["variants"] == len(variants) and row["generations"] == 8
    assert row["best_val"] == best.scores["val"] and row["champion"] == best.id
    assert row["task"].endswith("toytask.py:ToyTask") and row["mode"] == "hyperagent"


def test_overview_has_curve_budget_champion_and_events(client: TestClient, site: Site) -> None:
    data = client.get(f"/api/runs/{site.run}").json()
    record = site.storage.get_run_by_name(site.run)
    variants = site.storage.list_variants(record.id)
    curve = data["curve"]
    assert curve["generation"] == [v.generation for v in variants]
    vals = [v for v in curve["val"] if v is not None]
    best_so_far = [b for b in curve["best_val"] if b is not None]
    assert best_so_far == sorted(best_so_far) and best_so_far[-1] == max(vals)
    assert data["champion"]["id"] == champion_of(variants).id  # type: ignore[union-attr]
    assert data["budget"]["generations_done"] == 8 and data["budget"]["target_generations"] == 8
    assert data["budget"]["evaluations"] == sum(len(v.scores) for v in variants)
    assert data["budget"]["llm"]["tokens"] == 0
    assert sum(data["states"].values()) == len(variants)
    ids = [e["id"] for e in data["events"]]
    assert ids == sorted(ids, reverse=True) and data["events"][0]["kind"] == "run.completed"


def test_overview_by_id_and_missing_run(client: TestClient, site: Site) -> None:
    record = site.storage.get_run_by_name(site.run)
    assert client.get(f"/api/runs/{record.id}").json()["run"]["name"] == site.run
    missing = client.get("/api/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.json()["error"]


def test_archive_rows_and_lineage_tree(client: TestClient, site: Site) -> None:
    record = site.storage.get_run_by_name(site.run)
    variants = site.storage.list_variants(record.id)
    archive = client.get(f"/api/runs/{site.run}/archive").json()
    columns = archive["columns"]
    assert len(archive["rows"]) == len(variants)
    first = dict(zip(columns, archive["rows"][1], strict=True))
    assert first["variant_id"] == variants[1].id and first["parent_id"] == variants[1].parent_id
    assert first["val"] == variants[1].scores.get("val")
    tree = client.get(f"/api/runs/{site.run}/lineage").json()
    assert tree["id"] == [v.id for v in variants]
    assert tree["parent"] == [v.parent_id for v in variants]
    assert len(set(tree["row"])) >= 1 and all(isinstance(r, float) for r in tree["row"])
    path = tree["path"]
    assert path[0] == tree["champion"] and path[-1] == variants[0].id


def test_variant_detail_files_evaluations_and_diff(client: TestClient, site: Site) -> None:
    record = site.storage.get_run_by_name(site.run)
    child = next(
        v
        for v in site.storage.list_variants(record.id)
        if v.state is VariantState.COMPLETE and v.parent_id
    )
    detail = client.get(f"/api/variants/{child.id}").json()
    assert detail["run"]["name"] == site.run and detail["parent_id"] == child.parent_id
    assert {f["path"] for f in detail["files"]} == {"task_agent.py", "meta_agent.py"}
    stages = {e["stage"]: e for e in detail["evaluations"]}
    assert {"train_subset", "val"} <= set(stages)
    instance = stages["val"]["results"][0]
    assert {"id", "score", "feedback"} <= set(instance)
    assert detail["meta_info"]["operator"] == "step"
    diff = client.get(f"/api/variants/{child.id}/diff").json()
    assert diff["against"] == child.parent_id
    changed = {f["path"]: f for f in diff["files"]}
    assert set(changed) == {"task_agent.py", "meta_agent.py"}
    lines = [line for hunk in changed["task_agent.py"]["hunks"] for line in hunk["lines"]]
    assert {line[0] for line in lines} >= {"+", "-"}
    added = [line for line in lines if line[0] == "+"]
    assert '<span class="s2">' in added[0][3] or "<span" in added[0][3]  # highlighted
    assert changed["task_agent.py"]["added"] == len(added)
    seed = client.get(f"/api/variants/{site.storage.list_variants(record.id)[0].id}/diff").json()
    assert seed["against"] is None and all(f["status"] == "added" for f in seed["files"])


def test_file_view_is_highlighted_and_escaped(client: TestClient, site: Site) -> None:
    record = site.storage.get_run_by_name(site.run)
    seed = site.storage.list_variants(record.id)[0]
    view = client.get(f"/api/variants/{seed.id}/file", params={"path": "task_agent.py"}).json()
    assert any('<span class="k">def</span>' in line for line in view["lines"])
    assert len(view["lines"]) == len(
        site.storage.get_program(seed.program_id).text("task_agent.py").splitlines()  # type: ignore[arg-type]
    )
    # Markup inside code is shown, never interpreted.
    from hyperagents.dashboard._views import highlight_lines

    html = "".join(highlight_lines("x.py", 's = "<script>alert(1)</script>"\n'))
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "path",
    ["../../../etc/passwd", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "task_agent.py/..", "./x"],
)
def test_no_path_traversal_through_files(client: TestClient, site: Site, path: str) -> None:
    record = site.storage.get_run_by_name(site.run)
    seed = site.storage.list_variants(record.id)[0]
    response = client.get(f"/api/variants/{seed.id}/file", params={"path": path})
    assert response.status_code == 404
    assert "root:" not in response.text


@pytest.mark.parametrize(
    "url",
    ["/static/../_app.py", "/static/..%2f_app.py", "/static/%2e%2e/_app.py", "/static/../../x"],
)
def test_no_path_traversal_through_static_files(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert "create_app" not in response.text


def test_events_filters_and_paging(client: TestClient, site: Site) -> None:
    everything = client.get(f"/api/runs/{site.run}/events", params={"limit": 1000}).json()
    ids = [e["id"] for e in everything["events"]]
    assert ids == sorted(ids, reverse=True) and everything["next_before"] is None
    evaluation = client.get(f"/api/runs/{site.run}/events", params={"group": "evaluation"}).json()
    info = client.get("/api/info").json()
    assert evaluation["events"]
    assert {e["kind"] for e in evaluation["events"]} <= set(info["event_groups"]["evaluation"])
    one = client.get(
        f"/api/runs/{site.run}/events", params={"kind": "variant.improved", "variant": 3}
    ).json()["events"]
    assert len(one) == 1 and one[0]["variant_id"] == 3
    text = client.get(f"/api/runs/{site.run}/events", params={"q": "TARGET REACHED"}).json()
    assert [e["kind"] for e in text["events"]] == ["run.completed"]
    page = client.get(f"/api/runs/{site.run}/events", params={"limit": 5}).json()
    assert [e["id"] for e in page["events"]] == ids[:5] and page["next_before"] == ids[4]
    older = client.get(
        f"/api/runs/{site.run}/events", params={"limit": 5, "before": page["next_before"]}
    ).json()
    assert [e["id"] for e in older["events"]] == ids[5:10]
    bad = client.get(f"/api/runs/{site.run}/events", params={"group": "nope"})
    assert bad.status_code == 400


def test_exports(client: TestClient, site: Site) -> None:
    record = site.storage.get_run_by_name(site.run)
    n = len(site.storage.list_variants(record.id))
    table = client.get(f"/api/runs/{site.run}/export.csv")
    assert table.headers["content-type"].startswith("text/csv")
    assert "attachment" in table.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == n and rows[0]["generation"] == "0"
    payload = client.get(f"/api/runs/{site.run}/export.json").json()
    assert payload["run"]["name"] == site.run and len(payload["variants"]) == n
    runs = list(csv.DictReader(io.StringIO(client.get("/api/runs.csv").text)))
    assert site.run in {r["name"] for r in runs}
    assert site.run in {r["name"] for r in client.get("/api/runs.json").json()["runs"]}
    assert client.get(f"/api/runs/{site.run}/export.xml").status_code == 404


def test_stream_reports_versions_that_change(client: TestClient, site: Site) -> None:
    first = client.get("/api/version", params={"run": site.run}).json()["version"]
    with client.stream("GET", "/api/stream", params={"run": site.run, "once": True}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    assert body.startswith("event: version\n") and json.dumps(first) in body
    record = site.storage.get_run_by_name(site.run)
    site.storage.add_event(record.id, "note", "something happened")
    assert client.get("/api/version", params={"run": site.run}).json()["version"] != first
    assert client.get("/api/stream", params={"run": "missing"}).status_code == 404


def test_try_runs_the_task_agent_in_the_sandbox(client: TestClient, site: Site) -> None:
    record = site.storage.get_run_by_name(site.run)
    seed = site.storage.list_variants(record.id)[0]
    offered = client.get(f"/api/variants/{seed.id}/try").json()
    assert set(offered["example"]) == {"x"}  # inputs only, never the label
    high = client.post(
        f"/api/variants/{seed.id}/try", json={"inputs": {"x": 0.9}}, headers=csrf(client)
    )
    assert high.status_code == 200, high.text
    assert high.json()["ok"] and high.json()["output"] == "hi"
    broken = client.post(
        f"/api/variants/{seed.id}/try", json={"inputs": {"y": 1}}, headers=csrf(client)
    ).json()
    assert not broken["ok"] and "KeyError" in broken["error"]


# -- actions ----------------------------------------------------------------------------------
def test_start_refuses_unknown_and_file_tasks(client: TestClient) -> None:
    unknown = client.post("/api/runs", json={"task": "nope"}, headers=csrf(client))
    assert unknown.status_code == 400 and "unknown task" in unknown.json()["error"]
    path = client.post("/api/runs", json={"task": TOY}, headers=csrf(client))
    assert path.status_code == 400
    bad = client.post("/api/runs", json={"task": "review", "generations": -1}, headers=csrf(client))
    assert bad.status_code == 422 and "generations" in bad.json()["error"]
    extra = client.post("/api/runs", json={"task": "review", "evil": 1}, headers=csrf(client))
    assert extra.status_code == 422


def test_start_a_run_of_a_builtin_task(client: TestClient, site: Site) -> None:
    made = client.post(
        "/api/runs",
        json={"task": "packing", "generations": 1, "name": "packing-from-ui", "seed": 3},
        headers=csrf(client),
    )
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "packing-from-ui"
    again = client.post(
        "/api/runs", json={"task": "packing", "name": "packing-from-ui"}, headers=csrf(client)
    )
    assert again.status_code == 409
    record = site.storage.get_run_by_name("packing-from-ui")
    assert record.attrs["started_from"] == "dashboard"
    deadline = time.time() + 120
    while time.time() < deadline and site.storage.get_run(record.id).status is not (
        RunStatus.COMPLETE
    ):
        time.sleep(0.5)
    assert site.storage.get_run(record.id).status is RunStatus.COMPLETE
    assert site.storage.count_variants(record.id) == 2


def test_start_a_run_of_a_level(client: TestClient, site: Site) -> None:
    assert "feedback" in client.get("/api/info").json()["levels"]
    made = client.post(
        "/api/runs",
        json={"task": "packing", "generations": 0, "name": "level-from-ui", "level": "feedback"},
        headers=csrf(client),
    )
    assert made.status_code == 201, made.text
    record = site.storage.get_run_by_name("level-from-ui")
    assert record.mode == "frozen-meta"
    assert (record.config["level"], record.config["review"]) == ("feedback", True)
    clash = client.post(
        "/api/runs",
        json={"task": "packing", "level": "feedback", "mode": "hyperagent"},
        headers=csrf(client),
    )
    assert clash.status_code == 400 and "runs in mode frozen-meta" in clash.json()["error"]
    # The arena level runs by its own loop: not in the form, and refused with where it runs.
    assert "arena" not in client.get("/api/info").json()["levels"]
    arena = client.post(
        "/api/runs", json={"task": "email_validation", "level": "arena"}, headers=csrf(client)
    )
    assert arena.status_code == 400 and "hyperagents run --level arena" in arena.json()["error"]


def test_stop_resume_and_delete(client: TestClient, site: Site) -> None:
    make_run(site.storage, "toy-b", 1, seed=5)
    stop_done = client.post("/api/runs/toy-b/stop", json={}, headers=csrf(client))
    assert stop_done.status_code == 409 and "not running" in stop_done.json()["error"]
    complete = client.post("/api/runs/toy-b/resume", json={}, headers=csrf(client))
    assert complete.status_code == 409 and "target" in complete.json()["error"]
    resumed = client.post(
        "/api/runs/toy-b/resume", json={"generations": 5000}, headers=csrf(client)
    )
    assert resumed.status_code == 202, resumed.text
    record = site.storage.get_run_by_name("toy-b")
    deadline = time.time() + 60
    while time.time() < deadline and not client.get("/api/runs/toy-b").json()["run"]["live"]:
        time.sleep(0.2)
    assert client.get("/api/runs/toy-b").json()["run"]["live"]
    twice = client.post("/api/runs/toy-b/resume", json={}, headers=csrf(client))
    assert twice.status_code == 409 and "running already" in twice.json()["error"]
    busy = client.request(
        "DELETE", "/api/runs/toy-b", json={"confirm": "toy-b"}, headers=csrf(client)
    )
    assert busy.status_code == 409
    stopped = client.post("/api/runs/toy-b/stop", json={}, headers=csrf(client))
    assert stopped.status_code == 200, stopped.text
    deadline = time.time() + 60
    while time.time() < deadline and client.get("/api/runs/toy-b").json()["run"]["live"]:
        time.sleep(0.2)
    after = site.storage.get_run(record.id)
    assert after.status is RunStatus.STOPPED
    assert 1 < site.storage.count_variants(record.id) < 5000
    kinds = [e.kind for e in site.storage.list_events(record.id)]
    assert "run.stop_requested" in kinds
    wrong = client.request(
        "DELETE", "/api/runs/toy-b", json={"confirm": "toy"}, headers=csrf(client)
    )
    assert wrong.status_code == 400 and site.storage.get_run(record.id)
    gone = client.request(
        "DELETE", "/api/runs/toy-b", json={"confirm": "toy-b"}, headers=csrf(client)
    )
    assert gone.status_code == 200
    assert client.get("/api/runs/toy-b").status_code == 404


def test_memory_storage_cannot_drive_runs() -> None:
    app = create_app(InMemoryStorage(), storage_url="memory")
    with TestClient(app, base_url="http://localhost") as client:
        client.get("/")
        assert client.get("/api/info").json()["can_drive"] is False
        response = client.post("/api/runs", json={"task": "review"}, headers=csrf(client))
        assert response.status_code == 409 and "cannot be driven" in response.json()["error"]


# -- the guard --------------------------------------------------------------------------------
def test_state_changes_need_the_csrf_token_and_same_origin(client: TestClient) -> None:
    url = "/api/runs/toy-a/stop"
    no_token = client.post(url, json={})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    wrong = client.post(url, json={}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    foreign = client.post(url, json={}, headers={**csrf(client), "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "cross-origin" in foreign.json()["error"]
    cross = client.post(url, json={}, headers={**csrf(client), "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    form = client.post(
        url,
        content="a=1",
        headers={**csrf(client), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 403 and "JSON" in form.json()["error"]
    same = client.post(url, json={}, headers={**csrf(client), "Origin": "http://127.0.0.1:8000"})
    assert same.status_code == 409  # through the guard; the run is simply not running


def test_loopback_dashboard_refuses_other_host_names(site: Site) -> None:
    app = create_app(site.storage, storage_url=site.url)
    with TestClient(app, base_url="http://attacker.example:8000") as client:
        response = client.get("/api/runs")
        assert response.status_code == 400 and "localhost" in response.json()["error"]
    with TestClient(app, base_url="http://localhost:8000") as client:
        assert client.get("/api/runs").status_code == 200


def test_token_protects_everything_but_the_page_shell(site: Site) -> None:
    token = "a-long-enough-secret-token"
    app = create_app(site.storage, storage_url=site.url, token=token, loopback_only=False)
    with TestClient(app, base_url="http://dash.example:8000") as client:
        assert client.get("/").status_code == 200  # the page itself holds no data
        assert client.get("/api/runs").status_code == 401
        assert client.get("/api/runs/toy-a/export.csv").status_code == 401
        info = client.get("/api/info").json()
        assert info["token_required"] and not info["authenticated"] and info["tasks"] == []
        assert client.get("/api/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/runs", headers=bearer).status_code == 200
        # A script with the bearer token needs no CSRF cookie (browsers never send it alone).
        scripted = client.post("/api/runs/toy-a/stop", json={}, headers=bearer)
        assert scripted.status_code == 409
        bad_login = client.post("/api/login", json={"token": "guess"}, headers=csrf(client))
        assert bad_login.status_code == 401
        assert client.get("/api/runs").status_code == 401
        link = client.get(f"/?token={token}", follow_redirects=False)
        assert link.status_code == 303 and link.headers["location"] == "/"
        cookie = link.cookies.get("hyperagents_session")
        assert cookie and token not in cookie
        assert "httponly" in link.headers["set-cookie"].lower()
        assert client.get("/api/runs").status_code == 200
        # Signed in by cookie, state changes still need the CSRF header.
        assert client.post("/api/runs/toy-a/stop", json={}).status_code == 403
        assert client.post("/api/runs/toy-a/stop", json={}, headers=csrf(client)).status_code == 409
    with TestClient(app, base_url="http://dash.example:8000") as fresh:
        fresh.get("/")
        ok = fresh.post("/api/login", json={"token": token}, headers=csrf(fresh))
        assert ok.status_code == 200 and fresh.get("/api/runs").status_code == 200


def test_errors_never_show_a_traceback(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(site.storage, storage_url=site.url)

    def explode() -> None:
        raise RuntimeError("secret detail at /home/someone/.env")

    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        monkeypatch.setattr(site.storage, "list_runs", explode)
        response = client.get("/api/runs")
        assert response.status_code == 500
        assert "secret" not in response.text and "Traceback" not in response.text
        assert response.json()["error"].startswith("internal error")
        assert client.get("/api/variants/notanumber").status_code == 422
        assert "Traceback" not in client.get("/api/variants/999999").text


def test_security_headers(client: TestClient) -> None:
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/api/runs").headers["cache-control"] == "no-store"
    for asset in ("/static/app.js", "/static/app.css", "/highlight.css", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200
    assert "cdn" not in page.text.lower() and "http" not in page.text.replace("http-equiv", "")


def test_binding_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", "x" * 16)
    with pytest.raises(ConfigError, match="token"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ConfigError, match="at least 16"):
        check_binding("127.0.0.1", "short")


def test_start_refuses_file_models_and_the_process_sandbox(client: TestClient) -> None:
    for body, said in (
        ({"task": "review", "llm": "scripted:/etc/passwd"}, "files"),
        ({"task": "review", "llm": "local:/root/model.gguf"}, "files"),
        ({"task": "review", "llm": "nonsense"}, "spec"),
        ({"task": "review", "sandbox": "process"}, "sandbox"),
    ):
        response = client.post("/api/runs", json=body, headers=csrf(client))
        assert response.status_code == 400, response.text
        assert said in response.json()["error"].lower()
    assert "review-hyperagent-s0" not in {r["name"] for r in client.get("/api/runs").json()["runs"]}


def test_a_stopping_run_counts_as_live_until_its_engine_lets_go(site: Site) -> None:
    from hyperagents.dashboard._views import engine_alive
    from hyperagents.runs._owner import new_owner_token

    make_run(site.storage, "toy-stopping", 1, seed=9)
    record = site.storage.get_run_by_name("toy-stopping")
    assert not engine_alive(record)  # complete; its engine cleared its hold
    engine = new_owner_token()
    assert site.storage.claim_run_engine(record.id, engine, expected=None)
    site.storage.set_run_status(record.id, RunStatus.STOPPED)
    stopping = site.storage.get_run(record.id)
    assert engine_alive(stopping)
    app = create_app(site.storage, storage_url=site.url)
    with TestClient(app, base_url="http://localhost") as client:
        client.get("/")
        refused = client.request(
            "DELETE",
            "/api/runs/toy-stopping",
            json={"confirm": "toy-stopping"},
            headers=csrf(client),
        )
        assert refused.status_code == 409
        again = client.post("/api/runs/toy-stopping/resume", json={}, headers=csrf(client))
        assert again.status_code == 409
    assert site.storage.release_run_engine(record.id, engine)
    assert not engine_alive(site.storage.get_run(record.id))


def test_diff_of_code_with_form_feeds_and_crlf() -> None:
    from hyperagents.dashboard._views import diff
    from hyperagents.program import Program

    old = Program({"a.py": "x = 1\n\x0c\ny = 2\n", "b.txt": "one\r\ntwo\r\n"})
    new = Program({"a.py": "x = 1\n\x0c\ny = 3\n", "b.txt": "one\r\nthree\r\n"})
    files = {f["path"]: f for f in diff(old, new)["files"]}
    assert files["a.py"]["added"] == 1 and files["a.py"]["removed"] == 1
    assert files["a.py"]["hunks"][0]["header"] == "@@ -1,3 +1,3 @@"
    assert files["b.txt"]["added"] == 1
    created = diff(None, Program({"n.py": "a\n"}))["files"]
    assert created[0]["hunks"][0]["header"] == "@@ -0,0 +1 @@"


def test_export_of_a_run_with_a_non_ascii_name(site: Site) -> None:
    make_run(site.storage, "实验-1", 1, seed=4)
    app = create_app(site.storage, storage_url=site.url)
    with TestClient(app, base_url="http://localhost") as client:
        response = client.get("/api/runs/实验-1/export.csv")
        assert response.status_code == 200
        assert response.headers["content-disposition"].isascii()


def test_approve_reject_pin_and_ban_from_the_dashboard(site: Site) -> None:
    from hyperagents.runs import Run as _Run
    from hyperagents.runs import RunConfig as _Config
    from hyperagents.storages import VariantState as _State

    run = _Run.create(
        task=TOY,
        name="toy-approval",
        mode="frozen-meta",
        seed=0,
        storage=site.storage,
        config=_Config.parse({}, sandbox="process", subset_size=10, approval="manual"),
    )
    run.optimize(10)
    waiting = site.storage.list_variants(run.id, states=[_State.PENDING])
    assert len(waiting) >= 2
    app = create_app(site.storage, storage_url=site.url)
    with TestClient(app, base_url="http://localhost") as client:
        client.get("/")
        assert client.post(f"/api/variants/{waiting[0].id}/approve", json={}).status_code == 403
        ok = client.post(
            f"/api/variants/{waiting[0].id}/approve", json={"note": "fine"}, headers=csrf(client)
        )
        assert ok.status_code == 200 and ok.json()["state"] == "complete"
        no = client.post(
            f"/api/variants/{waiting[1].id}/reject", json={"note": "no"}, headers=csrf(client)
        )
        assert no.status_code == 200 and no.json()["state"] == "rejected"
        twice = client.post(f"/api/variants/{waiting[1].id}/approve", json={}, headers=csrf(client))
        assert twice.status_code == 409
        pinned = client.post(f"/api/variants/{waiting[0].id}/pin", json={}, headers=csrf(client))
        assert pinned.status_code == 200
        assert site.storage.get_run(run.id).pinned_parent == waiting[0].id
        banned = client.post(f"/api/variants/{waiting[0].id}/ban", json={}, headers=csrf(client))
        assert banned.status_code == 200
        assert site.storage.get_run(run.id).banned == {waiting[0].id}
        odd = client.post(f"/api/variants/{waiting[0].id}/promote", json={}, headers=csrf(client))
        assert odd.status_code == 404
        tried = client.post(
            f"/api/variants/{waiting[0].id}/try", json={"inputs": {"x": 0.9}}, headers=csrf(client)
        )
        assert tried.status_code == 200 and tried.json()["ok"]
    events = site.storage.list_events(run.id, kinds=["variant.approved", "variant.rejected"])
    assert [e.data["by"].startswith("the dashboard") for e in events] == [True, True]


def test_events_stored_under_old_kind_names_are_found_and_shown_renamed(site: Site) -> None:
    make_run(site.storage, "toy-old-kinds", 1, seed=7)
    record = site.storage.get_run_by_name("toy-old-kinds")
    site.storage.add_event(record.id, "run.complete", "written by an old engine")
    site.storage.add_event(record.id, "run.banned", "banned by an old command line")
    app = create_app(site.storage, storage_url=site.url)
    with TestClient(app, base_url="http://localhost") as client:

        def events(**params: str) -> list[tuple[str, str]]:
            url = "/api/runs/toy-old-kinds/events"
            found = client.get(url, params=params).json()["events"]
            return [(e["kind"], e["message"]) for e in found]

        both = [("run.completed", "written by an old engine"), ("run.completed", "target reached")]
        assert events(kind="run.completed") == both
        assert events(kind="run.complete") == both
        assert ("run.completed", "written by an old engine") in events(group="run")
        assert events(kind="variant.banned") == [
            ("variant.banned", "banned by an old command line")
        ]
        assert ("run.completed", "written by an old engine") in events(q="run.completed")


def test_a_running_run_whose_engine_died_is_labelled_dead(tmp_path: Path) -> None:
    """A run left RUNNING by an engine that was killed says so on the runs page, not "running"."""
    import socket
    import subprocess
    import sys

    from hyperagents.storages import RDBStorage

    storage = RDBStorage(f"sqlite:///{tmp_path / 'runs.db'}")
    run = make_run(storage, "toy-dead", 0)
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    token = f"{socket.gethostname()}|{exited.pid}|123|dead"
    assert storage.claim_run_engine(run.id, token, expected=storage.get_run(run.id).engine)
    storage.set_run_status(run.id, RunStatus.RUNNING)
    app = create_app(storage, storage_url=f"sqlite:///{tmp_path / 'runs.db'}")
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        row = next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "toy-dead")
    assert row["status"] == "running" and row["live"] is False
    assert row["label"] == "running (engine dead)"
    storage.close()

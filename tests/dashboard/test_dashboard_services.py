"""The dashboard's service pages over real services: a run of a toy task with a declared
input, requests and labels recorded in storage, a real autopilot that degraded, improved and
put a candidate under A/B; the list, the detail (monitor, drift, trigger, plans, A/B), the
series, the log, and the buttons (promote, roll back, force, suppress) behind the guard."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from service_site import (
    Served,
    answer,
    autopilot_to_ab,
    make_served_run,
    new_service,
    put_under_ab,
    stream,
    target,
)

from hyperagents.dashboard import create_app
from hyperagents.llm import LLMCall
from hyperagents.service import COMMAND_EVENT, PlanJournal, PlanLog
from hyperagents.storages import CandidateState, RDBStorage, ServiceRouting

from dashboard_helpers import csrf

_names = itertools.count()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RDBStorage, Served, int]]:
    """The storage, the served run, and a service whose autopilot put the candidate under
    A/B after the inputs drifted and the quality fell."""
    tmp = tmp_path_factory.mktemp("services")
    storage = RDBStorage(f"sqlite:///{tmp / 'services.db'}")
    served = make_served_run(storage, "served")
    service = new_service(storage, served, "drifting")
    storage.update_service_goal(service, {"kind": "threshold", "threshold": 0.8})
    autopilot_to_ab(storage, served, service, drift=True)
    yield storage, served, service
    storage.close()


@pytest.fixture
def api(world: tuple[RDBStorage, Served, int]) -> Iterator[TestClient]:
    storage = world[0]
    app = create_app(storage)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.get("/")  # the CSRF cookie
        yield client


def _fresh(storage: RDBStorage, served: Served, *, ab: bool) -> tuple[int, str]:
    name = f"plain-{next(_names)}"
    service = new_service(storage, served, name)
    stream(storage, service, served.champion, [0.1, 0.7, 0.9], every_wrong=0)
    if ab:
        put_under_ab(storage, service, served.candidate)
    return service, name


def test_the_list_shows_routing_status_and_counts(api: TestClient, world: tuple) -> None:
    _, served, service = world
    rows = api.get("/api/services").json()["services"]
    row = next(r for r in rows if r["id"] == service)
    assert row["name"] == "drifting" and row["run"] == "served"
    assert row["champion"] == served.champion and row["candidate"] == served.candidate
    assert row["candidate_state"] == "ab" and row["candidate_share"] == 0.5
    assert row["stage"] == "testing"
    counts = row["requests"]
    assert counts["served"] == 500 + 300 + 120 and counts["candidate"] == 60
    assert counts["with_feedback"] == counts["served"] and counts["errors"] == 0


def test_the_detail_has_the_monitor_drift_trigger_plans_and_ab(
    api: TestClient, world: tuple
) -> None:
    _, served, service = world
    data = api.get("/api/services/drifting").json()
    assert data == api.get(f"/api/services/{service}").json()  # by id as by name
    pilot = data["autopilot"]
    assert pilot["stage"] == "testing" and pilot["candidate"] == served.candidate
    assert pilot["improvements"] == 1 and pilot["override"] == "none"
    assert pilot["trigger"]["policy"]["min_feedback"] == 20
    plan = pilot["plans"][0]
    assert plan["plan"]["plan"]["diagnosis"]["summary"] == "large x answered wrong"
    assert plan["check"]["met"] is True
    monitor = data["monitor"]
    # the champion answered 500 right, 300 drifted ones half wrong, 60 under A/B a third
    # wrong: the latest 200 qualities are 140 drifted ones (70 right) and the 60 (40 right)
    window = monitor["window"]
    assert window["requests"] == 500 and window["quality_n"] == 200
    assert window["quality"] == pytest.approx((70 + 40) / 200)
    assert window["error_rate"] == 0 and window["latency_p50_s"] == pytest.approx(0.01)
    assert monitor["goal"] == {"kind": "threshold", "threshold": 0.8}  # the recorded goal
    drift = {d["name"]: d for d in monitor["drift"]}
    assert drift["x"]["drifted"] is True and drift["x"]["psi"] > 0.2
    ab = data["ab"]
    assert ab["state"] == "ab" and ab["share"] == 0.5
    assert ab["recorded"]["kind"] == "autopilot.testing"
    live = ab["live"]
    # replayed with the settings the autopilot recorded (20 values per arm at least)
    assert live["settings"]["min_samples"] == 20 and live["settings"]["traffic_share"] == 0.5
    assert live["phase"] == "done" and live["verdict"] == "promote"
    counts = live["counts"]
    assert 20 <= counts["champion"] < 50 and 20 <= counts["candidate"] < 50
    assert live["means"]["candidate"] == {"n": 60, "mean": 1.0}
    assert live["means"]["champion"]["mean"] == pytest.approx(40 / 60)
    lower, upper = live["interval"]
    assert 0 < lower < live["estimate"] < upper


def test_the_series_is_bounded_and_counts_each_arm(api: TestClient) -> None:
    data = api.get("/api/services/drifting/series?buckets=7").json()
    buckets = data["buckets"]
    assert len(buckets) == 7 and data["read"] == 920 and data["truncated"] is False
    assert sum(b["requests"] for b in buckets) == 920
    assert sum(b["feedback"] for b in buckets) == 920
    assert sum(b["quality_n"]["candidate"] for b in buckets) == 60
    means = [b["quality"]["champion"] for b in buckets if b["quality"]["champion"] is not None]
    assert means[0] == 1.0 and min(means) < 0.8  # the fall shows
    kinds = [m["kind"] for m in data["marks"]]
    assert "autopilot.improving" in kinds and "autopilot.testing" in kinds
    assert api.get("/api/services/drifting/series?buckets=201").status_code == 422
    assert api.get("/api/services/drifting/series?buckets=0").status_code == 422
    naive = api.get("/api/services/drifting/series?since=2026-01-01T00:00:00")
    assert naive.status_code == 422
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    empty = api.get("/api/services/drifting/series", params={"since": later})
    assert empty.status_code == 200 and sum(b["requests"] for b in empty.json()["buckets"]) == 0


def test_the_log_is_paged_newest_first(api: TestClient) -> None:
    first = api.get("/api/services/drifting/events?limit=2").json()
    kinds = [e["kind"] for e in first["events"]]
    assert kinds == ["autopilot.testing", "autopilot.improving"]
    older = api.get(f"/api/services/drifting/events?limit=2&before={first['next_before']}").json()
    assert all(e["id"] < first["next_before"] for e in older["events"])
    every = api.get("/api/services/drifting/events?state=true&limit=500").json()["events"]
    assert any(e["kind"] == "autopilot.state" for e in every)
    ids = [e["id"] for e in every]
    assert ids == sorted(ids, reverse=True) and every[-1]["id"] == min(ids)
    assert api.get("/api/services/nope/events").status_code == 404


def test_promote_changes_the_routing_and_roll_back_keeps_the_champion(
    api: TestClient, world: tuple
) -> None:
    storage, served, _ = world
    service, name = _fresh(storage, served, ab=True)
    promoted = api.post(
        f"/api/services/{name}/decision",
        json={"promote": True, "note": "looks better"},
        headers=csrf(api),
    )
    assert promoted.status_code == 200 and promoted.json()["champion"] == served.candidate
    record = storage.get_service(service)
    assert record.champion_id == served.candidate
    assert record.candidate_state is CandidateState.PROMOTED
    event = storage.list_service_events(service, newest_first=True, limit=1)[0]
    assert event.kind == "autopilot.promoted" and event.data["note"] == "looks better"
    assert "dashboard" in event.data["by"]
    again = api.post(f"/api/services/{name}/decision", json={"promote": True}, headers=csrf(api))
    assert again.status_code == 409 and "no candidate" in again.json()["error"]

    service, name = _fresh(storage, served, ab=True)
    back = api.post(f"/api/services/{name}/decision", json={"promote": False}, headers=csrf(api))
    assert back.status_code == 200
    record = storage.get_service(service)
    assert record.champion_id == served.champion
    assert record.candidate_state is CandidateState.ROLLED_BACK


def test_overrides_are_posted_to_the_autopilot(api: TestClient, world: tuple) -> None:
    storage, served, _ = world
    service, name = _fresh(storage, served, ab=False)
    for chosen in ("force", "suppress", "none"):
        posted = api.post(
            f"/api/services/{name}/override", json={"override": chosen}, headers=csrf(api)
        )
        assert posted.status_code == 202 and posted.json()["override"] == chosen
    commands = storage.list_service_events(service, kinds=[COMMAND_EVENT])
    assert [c.data["override"] for c in commands] == ["force", "suppress", "none"]
    pending = api.get(f"/api/services/{name}").json()["autopilot"]["pending"]
    assert len(pending) == 3  # no autopilot has taken them yet
    bad = api.post(f"/api/services/{name}/override", json={"override": "now"}, headers=csrf(api))
    assert bad.status_code == 422


def test_buttons_refuse_without_csrf_token_or_from_elsewhere(world: tuple, api: TestClient) -> None:
    storage, served, _ = world
    service, name = _fresh(storage, served, ab=True)
    url = f"/api/services/{name}/decision"
    assert api.post(url, json={"promote": True}).status_code == 403
    foreign = {**csrf(api), "Origin": "http://evil.example"}
    assert api.post(url, json={"promote": True}, headers=foreign).status_code == 403
    assert api.post(f"/api/services/{name}/override", json={"override": "force"}).status_code == 403
    assert storage.get_service(service).candidate_state is CandidateState.AB  # nothing changed
    assert not storage.list_service_events(service, kinds=[COMMAND_EVENT])

    app = create_app(storage, token="a-long-enough-token-123")
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.get("/")
        assert client.get("/api/services").status_code == 401
        assert client.post(url, json={"promote": True}, headers=csrf(client)).status_code == 401
        bearer = {"Authorization": "Bearer a-long-enough-token-123"}
        assert client.get(f"/api/services/{name}", headers=bearer).status_code == 200
        done = client.post(url, json={"promote": False}, headers=bearer)
        assert done.status_code == 200
    assert storage.get_service(service).candidate_state is CandidateState.ROLLED_BACK


def test_missing_services_and_bad_bodies(api: TestClient, world: tuple) -> None:
    storage, served, _ = world
    _, name = _fresh(storage, served, ab=True)
    assert api.get("/api/services/nope").status_code == 404
    assert api.get("/api/services/nope/series").status_code == 404
    missing = api.post("/api/services/nope/decision", json={"promote": True}, headers=csrf(api))
    assert missing.status_code == 404
    for body in ({}, {"promote": True, "extra": 1}, {"promote": True, "note": "x" * 501}):
        sent = api.post(f"/api/services/{name}/decision", json=body, headers=csrf(api))
        assert sent.status_code == 422, body


def test_the_planning_cost_counts_calls_whose_run_never_started(
    api: TestClient, world: tuple
) -> None:
    storage, served, _ = world
    service = new_service(storage, served, f"planned-{next(_names)}")
    assert api.get(f"/api/services/{service}").json()["autopilot"]["planning"]["calls"] == 0

    def call(cost: float) -> LLMCall:
        asked = ({"role": "user", "content": "plan"},)
        return LLMCall(
            "k", "p", "m", asked, {}, "{}", prompt_tokens=10, completion_tokens=5, cost=cost
        )

    journal = PlanJournal(PlanLog(storage, service_id=service))
    made = call(0.25)
    journal.pending(made)
    # its run started (a journal is told in the transaction that writes the calls)
    storage.atomically(lambda: journal.attached(served.run_id, [made]))
    journal.pending(call(0.5))  # the process died before its run did
    planning = api.get(f"/api/services/{service}").json()["autopilot"]["planning"]
    assert (planning["calls"], planning["attached"], planning["orphaned"]) == (2, 1, 1)
    assert (planning["waiting"], planning["abandoned"]) == (1, 0)
    assert planning["cost"] == pytest.approx(0.75) and planning["orphaned_cost"] == 0.5
    assert planning["prompt_tokens"] == 20 and planning["completion_tokens"] == 10


def test_a_service_without_labels_or_autopilot(api: TestClient, world: tuple) -> None:
    storage, served, _ = world
    service = new_service(storage, served, f"quiet-{next(_names)}")
    rid = answer(storage, service, served.champion, 0.9, right=True, label=False)
    storage.set_request_feedback(rid, feedback=0.25, by="someone")
    answer(storage, service, served.champion, 0.1, right=True, label=False)
    data = api.get(f"/api/services/{service}").json()
    assert data["autopilot"]["stage"] is None and data["ab"]["live"] is None
    assert data["monitor"]["window"]["quality"] == 0.25 and data["monitor"]["drift"] == []
    series = api.get(f"/api/services/{service}/series?buckets=3").json()
    assert sum(b["requests"] for b in series["buckets"]) == 2 and series["marks"] == []


def test_a_candidate_in_shadow_is_rated_by_its_request_s_label(
    api: TestClient, world: tuple
) -> None:
    storage, served, _ = world
    service = new_service(storage, served, f"shadowed-{next(_names)}")
    record = storage.get_service(service)
    routing = ServiceRouting(
        champion_id=served.champion,
        candidate_id=served.candidate,
        candidate_state=CandidateState.SHADOW,
    )
    assert storage.set_service_routing(service, routing, expected=record.routing)
    for i in range(60):  # the champion right 2 times in 3, its shadow always right
        x = (i * 0.29) % 1.0
        rid = answer(storage, service, served.champion, x, right=i % 3 != 0)
        shadow = storage.add_service_request(
            service, variant_id=served.candidate, arm="shadow", inputs={"x": x}, shadow_of=rid
        )
        storage.finish_service_request(shadow, output=target(x), latency=0.02)
    live = api.get(f"/api/services/{service}").json()["ab"]["live"]
    assert live["phase"] == "shadow" and live["counts"]["pairs"] == 60
    assert live["means"]["shadow"] == {"n": 60, "mean": 1.0}
    assert live["means"]["champion"]["mean"] == pytest.approx(40 / 60)
    assert live["estimate"] == pytest.approx(20 / 60) and live["verdict"] == "continue"
    series = api.get(f"/api/services/{service}/series?buckets=4").json()["buckets"]
    assert sum(b["shadow"] for b in series) == 60 and sum(b["requests"] for b in series) == 60
    assert sum(b["quality_n"]["shadow"] for b in series) == 60


def test_paging_through_a_long_log_gives_every_entry_once(api: TestClient, world: tuple) -> None:
    storage, served, _ = world
    service = new_service(storage, served, f"chatty-{next(_names)}")
    for i in range(2300):  # the state entries crowd the others out of the latest pages
        kind = "autopilot.state" if i % 5 else "autopilot.override"
        storage.add_service_event(service, kind, str(i))
    wanted = [str(i) for i in range(0, 2300, 5)][::-1]
    seen: list[str] = []
    url = f"/api/services/{service}/events?limit=170"
    page = api.get(url).json()
    seen += [e["message"] for e in page["events"]]
    while page["next_before"] is not None:
        page = api.get(f"{url}&before={page['next_before']}").json()
        seen += [e["message"] for e in page["events"]]
    assert seen == wanted
    everything = api.get(f"/api/services/{service}/events?limit=500&state=true").json()
    assert len(everything["events"]) == 500 and everything["next_before"] is not None

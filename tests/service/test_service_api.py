"""The service's HTTP API (FastAPI's test client): answers, errors as 502 with the request's id,
feedback, paged listings, status, body limits, and the dashboard's token and host rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from service_helpers import Site

from hyperagents.service import WANTED_EVENT, Serving, create_service_app
from hyperagents.storages import MAX_REQUEST_JSON

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def client(serving: Serving) -> Iterator[TestClient]:
    app = create_service_app(serving)
    with TestClient(app, base_url="http://127.0.0.1:8100") as test_client:
        yield test_client


def test_answer_and_error(site: Site, client: TestClient) -> None:
    ok = client.post("/api/service/answer", json={"inputs": {"x": 0.9}})
    assert ok.status_code == 200
    body = ok.json()
    assert body["output"] == "hi" and body["variant"] == site.champion
    assert body["arm"] == "champion" and body["latency_s"] > 0 and "error" not in body
    bad = client.post("/api/service/answer", json={"inputs": {"do": "crash"}})
    assert bad.status_code == 502
    assert "crashed" in bad.json()["error"] and bad.json()["request_id"] > body["request_id"]
    stored = site.storage.get_service_request(bad.json()["request_id"])
    assert "crashed" in (stored.error or "")
    assert client.post("/api/service/answer", json={"inputs": {"x": 0.1}}).json()["output"] == "lo"


def test_malformed_requests_are_4xx(client: TestClient) -> None:
    assert client.post("/api/service/answer", json={"input": 1}).status_code == 422
    assert client.post("/api/service/answer", content=b"{", headers=_json()).status_code == 422
    big = b'{"inputs": "' + b"x" * (MAX_REQUEST_JSON + 1) + b'"}'
    assert client.post("/api/service/answer", content=big, headers=_json()).status_code in (
        400,
        413,
    )
    form = client.post("/api/service/answer", data={"inputs": "1"})
    assert form.status_code == 403  # not JSON: refused as a possible cross-site form
    huge = b'{"inputs": "' + b"x" * (2 * MAX_REQUEST_JSON) + b'"}'
    assert client.post("/api/service/answer", content=huge, headers=_json()).status_code == 413


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_feedback(site: Site, client: TestClient) -> None:
    request_id = client.post("/api/service/answer", json={"inputs": {"x": 0.9}}).json()[
        "request_id"
    ]
    url = f"/api/service/requests/{request_id}/feedback"
    given = client.post(url, json={"label": "lo", "feedback": 0.0, "by": "ann"})
    assert given.status_code == 200
    assert (given.json()["label"], given.json()["feedback"]) == ("lo", 0.0)
    stored = site.storage.get_service_request(request_id)
    assert (stored.label, stored.feedback, stored.feedback_by) == ("lo", 0.0, "ann")
    assert client.post(url, json={"feedback": 1.5}).status_code == 422
    assert client.post(url, json={}).status_code == 400
    assert client.post(url, json={"score": 1}).status_code == 422
    missing = client.post("/api/service/requests/999999/feedback", json={"feedback": 1.0})
    assert missing.status_code == 404


def test_wanted_labels_until_one_is_given(site: Site, serving: Serving, client: TestClient) -> None:
    ids = [
        client.post("/api/service/answer", json={"inputs": {"x": x}}).json()["request_id"]
        for x in (0.2, 0.8)
    ]
    data = {"request_ids": [str(i) for i in ids] + ["999999", "junk"], "run_id": 7}
    site.storage.add_service_event(serving.service_id, WANTED_EVENT, "asked", data=data)
    wanted = client.get("/api/service/wanted").json()["wanted"]
    assert sorted(w["request_id"] for w in wanted) == sorted(ids)  # unknown ids left out
    assert all(w["run_id"] == 7 for w in wanted)
    client.post(f"/api/service/requests/{ids[0]}/feedback", json={"label": "lo"})
    assert [w["request_id"] for w in client.get("/api/service/wanted").json()["wanted"]] == [ids[1]]


def test_feedback_on_another_services_request_is_404(
    site: Site, client: TestClient, new_service: object
) -> None:
    assert callable(new_service)
    other = new_service()
    request_id = site.storage.add_service_request(
        other, variant_id=site.champion, arm="champion", inputs=1
    )
    reply = client.post(f"/api/service/requests/{request_id}/feedback", json={"feedback": 1.0})
    assert reply.status_code == 404
    assert not site.storage.get_service_request(request_id).has_feedback


def test_listing_pages_and_filters(client: TestClient) -> None:
    ids = [
        client.post("/api/service/answer", json={"inputs": {"x": x}}).json()["request_id"]
        for x in (0.1, 0.2, 0.9, 0.95, 0.3)
    ]
    client.post(f"/api/service/requests/{ids[2]}/feedback", json={"feedback": 1.0})
    first = client.get("/api/service/requests", params={"limit": 2}).json()
    assert [r["id"] for r in first["requests"]] == ids[:2]
    second = client.get(
        "/api/service/requests", params={"limit": 2, "after_id": first["next_after_id"]}
    ).json()
    assert [r["id"] for r in second["requests"]] == ids[2:4]
    rest = client.get("/api/service/requests", params={"after_id": ids[3]}).json()
    assert [r["id"] for r in rest["requests"]] == ids[4:] and rest["next_after_id"] is None
    rated = client.get("/api/service/requests", params={"with_feedback": "true"}).json()
    assert [r["id"] for r in rated["requests"]] == [ids[2]]
    assert rated["requests"][0]["inputs"] == {"x": 0.9}
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/api/service/requests", params={"since": since}).json()["requests"] == []
    naive = client.get("/api/service/requests", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    assert client.get("/api/service/requests", params={"arm": "nope"}).status_code == 422
    assert client.get("/api/service/requests", params={"limit": 10_000}).status_code == 422
    newest = client.get("/api/service/requests", params={"newest_first": "true", "limit": 1})
    assert [r["id"] for r in newest.json()["requests"]] == [ids[-1]]


def test_status(site: Site, client: TestClient) -> None:
    client.post("/api/service/answer", json={"inputs": {"do": "crash"}})
    status = client.get("/api/service/status").json()
    assert status["champion"] == site.champion and status["candidate_state"] == "none"
    assert (status["requests"], status["errors"], status["workers"]) == (1, 1, 2)


def test_token_rules(serving: Serving) -> None:
    app = create_service_app(serving, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1:8100") as client:
        assert client.get("/api/service/status").status_code == 401
        wrong = {"Authorization": "Bearer wrong-token-0123456789"}
        assert client.get("/api/service/status", headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/service/status", headers=right).status_code == 200
        refused = client.post("/api/service/answer", json={"inputs": {"x": 0.9}})
        assert refused.status_code == 401
        answer = client.post("/api/service/answer", json={"inputs": {"x": 0.9}}, headers=right)
        assert answer.status_code == 200
    assert serving.storage.count_service_requests(serving.service_id) == 1


def test_host_and_origin_rules(serving: Serving) -> None:
    app = create_service_app(serving)
    with TestClient(app, base_url="http://attacker.example:8100") as client:
        assert client.get("/api/service/status").status_code == 400  # DNS rebinding
    with TestClient(app, base_url="http://127.0.0.1:8100") as client:
        cross = client.post(
            "/api/service/answer",
            json={"inputs": {"x": 0.9}},
            headers={"Origin": "http://attacker.example"},
        )
        assert cross.status_code == 403
        assert client.get("/api/service/status").headers["X-Frame-Options"] == "DENY"
    assert serving.storage.count_service_requests(serving.service_id) == 0

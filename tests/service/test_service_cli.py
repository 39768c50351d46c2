"""``hyperagents serve`` over real HTTP with a real sandbox (a process of its own), and
``hyperagents feedback``; records survive a restart of the service."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx
import pytest
from service_helpers import Site

from hyperagents.storages import RDBStorage, RunSpec
from hyperagents.testing.service import service_server

from cli_helpers import cli, invoke_wide

TOKEN = "e2e-token-0123456789abcdef"


@pytest.mark.slow
def test_serve_answer_feedback_and_restart(site: Site) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with service_server(site.url, site.run, workers=2, token=TOKEN) as (base, process):
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                inputs = [{"x": 0.9}, {"x": 0.1}] * 3
                replies = list(
                    pool.map(
                        lambda i: client.post("/api/service/answer", json={"inputs": i}), inputs
                    )
                )
            assert [r.status_code for r in replies] == [200] * 6
            assert [r.json()["output"] for r in replies] == ["hi", "lo"] * 3
            crash = client.post("/api/service/answer", json={"inputs": {"do": "crash"}})
            assert crash.status_code == 502 and "crashed" in crash.json()["error"]
            assert httpx.get(f"{base}/api/service/status").status_code == 401  # no token
            with pytest.raises(httpx.ReadTimeout):  # the client gives up on a looping request
                client.post("/api/service/answer", json={"inputs": {"do": "loop"}}, timeout=0.5)
            deadline = time.monotonic() + 60
            while client.get("/api/service/status").json()["errors"] < 2:  # answered anyway
                assert time.monotonic() < deadline
                time.sleep(0.2)
            first = replies[0].json()["request_id"]
            labelled = cli(
                "feedback", str(first), "--label", '"lo"', "--storage", site.url, cwd=site.tmp
            )
            assert labelled.returncode == 0, labelled.stderr
            scored = cli(
                "feedback", str(first), "--score", "0.25", "--storage", site.url, cwd=site.tmp
            )
            assert scored.returncode == 0, scored.stderr
            assert "score 0.25" in scored.stdout
            status = client.get("/api/service/status").json()
            assert (status["requests"], status["errors"], status["with_feedback"]) == (8, 2, 1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    with (
        service_server(site.url, site.run, workers=1, token=TOKEN) as (base, _),
        httpx.Client(base_url=base, headers=headers, timeout=60) as client,
    ):
        listed = client.get("/api/service/requests", params={"limit": 100}).json()["requests"]
        assert len(listed) == 8 and all(r["answered_at"] for r in listed)
        assert "timeout" in listed[-1]["error"]
        rated = next(r for r in listed if r["id"] == first)
        assert (rated["feedback"], rated["label"]) == (0.25, None)
        again = client.post("/api/service/answer", json={"inputs": {"x": 0.9}}).json()
        assert again["request_id"] > max(r["id"] for r in listed)
    events = site.storage.list_service_events(site.storage.get_service_by_name(site.run).id)
    assert [e.kind for e in events] == ["serving", "stopped", "serving", "stopped"]


def test_feedback_cli_errors(site: Site) -> None:
    code, out = invoke_wide("feedback", "1", "--storage", site.url)
    assert code == 2 and "--label" in out
    code, out = invoke_wide("feedback", "999999", "--score", "1", "--storage", site.url)
    assert code == 1 and "not found" in out
    code, out = invoke_wide("feedback", "1", "--score", "1.5", "--storage", site.url)
    assert code == 2


def test_serve_refuses_an_unsafe_binding_and_a_run_without_champion(site: Site) -> None:
    code, out = invoke_wide("serve", site.run, "--host", "0.0.0.0", "--storage", site.url)
    assert code == 1 and "token" in out and "the service" in out
    code, out = invoke_wide("serve", site.run, "--token", "short", "--storage", site.url)
    assert code == 1 and "at least" in out
    storage = RDBStorage(site.url)
    try:
        program = storage.get_program(storage.get_run(site.run_id).seed_program_id)
        spec = RunSpec(
            name="empty",
            task="toy",
            mode="hyperagent",
            seed=0,
            config={},
            seed_program_id=program.id,
        )
        storage.create_run(spec)
    finally:
        storage.close()
    code, out = invoke_wide("serve", "empty", "--storage", site.url)
    assert code == 1 and "no champion" in out

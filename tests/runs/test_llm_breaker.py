"""A run's circuit breaker: a model that keeps failing is cut off, with a one-line reason,
instead of every job's calls failing for hours; what is not the model's failure counts for
nothing."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, LLMConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.runs._llm import RunLLM
from hyperagents.storages import InMemoryStorage
from hyperagents.testing import FakeOpenAIServer, FakeReply

from toytask import LLM_META_AGENT, ToyTask

pytestmark = pytest.mark.timeout(120)  # a hang guard, far past what a busy machine needs

ASK = {"messages": [{"role": "user", "content": "hi"}], "params": {}, "purpose": "p"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def store_and_run(tmp_path: Path) -> tuple[InMemoryStorage, int]:
    """A stored run with variants 1 to 4 (its own model is a script; each test gives RunLLM
    the model it needs)."""
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["0.5"]))
    store = InMemoryStorage()
    run = Run.create(
        task=ToyTask(meta_agent=LLM_META_AGENT),
        seed=1,
        storage=store,
        name="flaky model",
        config=RunConfig.parse({"llm": f"scripted:{script}", "sandbox": "process"}),
    )
    seed = run.variants()[0].id
    children = [
        store.create_variant(run_id=run.id, generation=g, parent_id=seed) for g in (1, 2, 3)
    ]
    assert [seed, *children] == [1, 2, 3, 4]
    return store, run.id


def ask(model: RunLLM, variant_id: int | None = 1, times: int = 1) -> list[dict[str, Any]]:
    answer = model.handler(variant_id=variant_id, purpose="improve", scope="g1/improve")
    return [answer(ASK) for _ in range(times)]


def test_a_closed_port_opens_the_breaker_and_no_further_call_is_made(
    store_and_run: tuple[InMemoryStorage, int],
) -> None:
    store, run_id = store_and_run
    url = f"http://127.0.0.1:{closed_port()}/v1"
    model = RunLLM(store, run_id, spec=f"{url}#m", retries=0, failure_limit=3)
    failed = ask(model, variant_id=2, times=3)
    assert all("Connection refused" in reply["error"] for reply in failed)
    reason = model.broken
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"the model {url}#m failed 3 calls in a row (last: ")
    assert "Connection refused" in reason
    assert reason.endswith("fix it, then `hyperagents resume 'flaky model'`")
    assert ask(model, variant_id=3) == [{"error": f"request refused: {reason}"}]
    assert len(store.list_llm_calls(run_id)) == 3  # the refused request reached nothing
    assert model.was_cut(2) and model.was_cut(3)
    assert not model.was_cut(2)  # told once


def test_a_server_that_answers_500_opens_it_after_its_retries(
    store_and_run: tuple[InMemoryStorage, int],
) -> None:
    store, run_id = store_and_run
    with FakeOpenAIServer(default=FakeReply(status=500)) as server:
        model = RunLLM(store, run_id, spec=f"{server.base_url}#m", retries=1, failure_limit=2)
        ask(model, times=2)
        assert model.broken is not None and "HTTP 500" in model.broken
        assert server.calls == 4  # two calls, each retried once
        ask(model, times=3)
        assert server.calls == 4
    assert len(store.list_llm_calls(run_id)) == 4  # every attempt recorded


def test_a_success_in_between_starts_the_count_again(
    store_and_run: tuple[InMemoryStorage, int],
) -> None:
    store, run_id = store_and_run
    script: list[FakeReply | str] = [
        FakeReply(status=500),
        "0.5",
        FakeReply(status=500),
        "0.6",
        FakeReply(status=500),
    ]
    with FakeOpenAIServer([*script, FakeReply(status=503)]) as server:
        model = RunLLM(store, run_id, spec=f"{server.base_url}#m", retries=0, failure_limit=2)
        assert [sorted(r) for r in ask(model, times=5)] == [["error"], ["text"]] * 2 + [["error"]]
        assert model.broken is None
        ask(model)
        assert model.broken is not None and "HTTP 503" in model.broken
    model.reset_breaker()  # e.g. before the run goes on in the same process
    assert model.broken is None and not model.was_cut(1)


def test_budget_refusals_do_not_count(store_and_run: tuple[InMemoryStorage, int]) -> None:
    store, run_id = store_and_run
    with FakeOpenAIServer(default="0.5") as server:
        model = RunLLM(
            store, run_id, spec=f"{server.base_url}#m", max_tokens=1, failure_limit=1, retries=0
        )
        first, *refused = ask(model, times=4)
    assert "text" in first and all("budget exhausted" in r["error"] for r in refused)
    assert model.broken is None and model.was_refused(1) and not model.was_cut(1)


def test_requests_the_server_rejects_as_invalid_do_not_count(
    store_and_run: tuple[InMemoryStorage, int],
) -> None:
    # A prompt beyond the model's context is the agent's failure, not the model's: a run must
    # not stop (and stop again on every resume) because one child sends bad requests.
    store, run_id = store_and_run
    rejected = FakeReply(status=400, content="maximum context length is 8192 tokens")
    with FakeOpenAIServer(default=rejected) as server:
        model = RunLLM(store, run_id, spec=f"{server.base_url}#m", retries=0, failure_limit=1)
        replies = ask(model, times=3)
        assert server.calls == 3
    assert all("maximum context length" in r["error"] for r in replies)
    assert model.broken is None


def test_requests_outside_the_limits_do_not_count(
    store_and_run: tuple[InMemoryStorage, int],
) -> None:
    store, run_id = store_and_run
    url = f"http://127.0.0.1:{closed_port()}/v1"
    model = RunLLM(store, run_id, spec=f"{url}#m", retries=0, failure_limit=1)
    answer = model.handler(variant_id=1, purpose="improve")
    for _ in range(3):
        assert "request refused" in answer({**ASK, "params": {"temperature": 9}})["error"]
    assert model.broken is None


def test_a_replay_counts_nothing(store_and_run: tuple[InMemoryStorage, int]) -> None:
    store, run_id = store_and_run
    model = RunLLM(store, run_id, spec=None, replay_of=run_id, failure_limit=1)
    replies = ask(model, times=3)
    assert all("no recorded reply" in r["error"] for r in replies)
    assert model.broken is None and model.diverged.is_set()
    model.probe()  # a replay calls no model: nothing to check


def test_probe_checks_the_runs_model(store_and_run: tuple[InMemoryStorage, int]) -> None:
    store, run_id = store_and_run
    url = f"http://127.0.0.1:{closed_port()}/v1"
    model = RunLLM(store, run_id, spec=f"{url}#m")
    with pytest.raises(LLMConfigError, match=f"cannot reach the model server at {url}"):
        model.probe(timeout=5)


def test_the_limit_is_a_validated_run_setting() -> None:
    assert RunConfig.parse({}).llm_failure_limit == 5
    assert RunConfig.parse({"llm_failure_limit": 1}).llm_failure_limit == 1
    with pytest.raises(ConfigError, match="llm_failure_limit"):
        RunConfig.parse({"llm_failure_limit": 0})

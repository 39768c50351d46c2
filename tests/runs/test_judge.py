"""A judged task in a run: the judge's calls go through the run's gateway (recorded, replayed,
budgeted), a run without a model is refused, and a judge that cannot answer stops the run
without failing the candidate."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState
from hyperagents.testing import FakeOpenAIServer, FakeReply

CONFIG = {"subset_size": 4, "sandbox": "process", "llm_retries": 0}


def keyword_judge(body: dict[str, Any]) -> str:
    """YES when the answer holds the fact's longest word (a deterministic stand-in judge)."""
    prompt = body["messages"][-1]["content"]
    answer = prompt.split("<<<ANSWER\n", 1)[1].split("\nANSWER>>>", 1)[0].lower()
    fact = prompt.rsplit("state this fact: ", 1)[1].split("\n", 1)[0]
    word = max(re.findall(r"[a-z0-9,]+", fact.lower()), key=len)
    return "YES, it does." if word in answer else "NO."


def test_a_judged_task_without_a_model_is_refused() -> None:
    store = InMemoryStorage()
    with pytest.raises(ConfigError, match="scored by an LLM judge: give the run a model"):
        Run.create(task="summaries", seed=0, storage=store, config=dict(CONFIG))
    assert store.list_runs() == []


def test_judge_calls_are_recorded_and_replayed() -> None:
    store = InMemoryStorage()
    with FakeOpenAIServer(handler=keyword_judge, model="m") as server:
        run = Run.create(
            task="summaries",
            seed=0,
            storage=store,
            name="judged",
            config=RunConfig.parse({**CONFIG, "llm": f"{server.base_url}#m"}),
        )
        assert run.optimize(generations=2).status is RunStatus.COMPLETE
        asked = server.calls
    seed = run.variants()[0]
    assert seed.state is VariantState.COMPLETE and 0.0 < seed.scores["val"] < 1.0
    calls = store.list_llm_calls(run.record().id)
    assert asked > 0 and len(calls) == asked
    assert all(c.purpose.startswith("judge/fact") and c.variant_id is None for c in calls)
    prompt = calls[0].request["messages"][0]["content"]
    assert "<<<ANSWER\n" in prompt and "state this fact: " in prompt
    assert calls[0].request["extra"]["scope"] == "judge"
    # The replay answers every judge call from the record: no server, the same scores.
    again = Run.create(
        task="summaries",
        seed=0,
        storage=store,
        name="again",
        config=RunConfig.parse({**CONFIG, "replay_of": "judged"}),
    )
    assert again.optimize(generations=2).status is RunStatus.COMPLETE
    scores = [v.scores for v in run.variants()]
    assert [v.scores for v in again.variants()] == scores


def test_a_spent_budget_while_judging_stops_the_run_and_fails_no_candidate() -> None:
    store = InMemoryStorage()
    with FakeOpenAIServer(handler=keyword_judge, model="m") as server:
        config = {**CONFIG, "llm": f"{server.base_url}#m", "max_tokens": 300}
        run = Run.create(
            task="summaries", seed=0, storage=store, name="b", config=RunConfig.parse(config)
        )
        record = run.optimize(generations=2)
    assert record.status is RunStatus.STOPPED
    assert "budget" in (run.last_stop_reason or "")
    assert all(v.state is not VariantState.FAILED for v in run.variants())


def test_a_request_the_server_rejects_is_the_outputs_failure_not_the_runs() -> None:
    store = InMemoryStorage()
    with FakeOpenAIServer(default=FakeReply(status=400), model="m") as server:
        config = {**CONFIG, "llm": f"{server.base_url}#m"}
        run = Run.create(
            task="summaries", seed=0, storage=store, name="r", config=RunConfig.parse(config)
        )
        assert run.optimize(generations=1).status is RunStatus.COMPLETE
    seed = run.variants()[0]
    assert seed.scores["val"] == 0.0
    evaluation = store.list_evaluations(seed.id)[0]
    assert all("judge's model rejected the request" in r["error"] for r in evaluation.results)

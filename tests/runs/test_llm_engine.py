"""The engine with a model that does not answer: the probe refuses the start, the circuit
breaker stops the run, and a resume goes on once the model answers again."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hyperagents.exceptions import LLMConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState
from hyperagents.testing import FakeOpenAIServer, FakeReply

from toytask import LLM_META_AGENT, ToyTask

CONFIG = {"subset_size": 10, "selector": "best", "sandbox": "process"}


def test_a_model_that_keeps_failing_stops_the_run_and_a_resume_goes_on() -> None:
    store = InMemoryStorage()
    with FakeOpenAIServer(default=FakeReply(status=500), model="m") as server:
        config = {**CONFIG, "llm": f"{server.base_url}#m", "llm_retries": 0}
        run = Run.create(
            task=ToyTask(meta_agent=LLM_META_AGENT),
            seed=1,
            storage=store,
            name="down",
            config=RunConfig.parse({**config, "llm_failure_limit": 2}),
        )
        record = run.optimize(generations=4)
        assert record.status is RunStatus.STOPPED
        assert "failed 2 calls in a row" in (run.last_stop_reason or "")
        assert "`hyperagents resume down`" in (run.last_stop_reason or "")
        assert server.calls == 2  # no call after the breaker opened
        assert run.variants()[-1].state is VariantState.RUNNING  # its job left unfinished
        server.set_handler(lambda body: "0.5")
        resumed = Run.load("down", storage=store, task=run.task)
        assert resumed.optimize().status is RunStatus.COMPLETE


def test_a_closed_port_refuses_the_run_and_stores_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = InMemoryStorage()
    with pytest.raises(LLMConfigError, match="connection refused"):
        Run.create(
            task=ToyTask(meta_agent=LLM_META_AGENT),
            seed=1,
            storage=store,
            config=RunConfig.parse({**CONFIG, "llm": f"http://127.0.0.1:{port}/v1#m"}),
        )
    assert store.list_runs() == []


def test_a_script_that_runs_out_stops_the_run_and_a_longer_one_goes_on(tmp_path: Path) -> None:
    script = tmp_path / "r.json"
    script.write_text(json.dumps(["0.4", "0.5"]))
    store = InMemoryStorage()
    run = Run.create(
        task=ToyTask(meta_agent=LLM_META_AGENT),
        seed=1,
        storage=store,
        name="s",
        config=RunConfig.parse({**CONFIG, "llm": f"scripted:{script}"}),
    )
    assert run.optimize(generations=4).status is RunStatus.STOPPED
    assert "ran out: all 2 of its replies" in (run.last_stop_reason or "")
    script.write_text(json.dumps(["0.4", "0.5", "0.6", "0.63"]))
    resumed = Run.load("s", storage=store, task=run.task)
    assert resumed.optimize().status is RunStatus.COMPLETE
    assert all(v.state is VariantState.COMPLETE for v in resumed.variants())

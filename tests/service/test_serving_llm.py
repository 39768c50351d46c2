"""Serving a champion that calls the language model: the model answers through the sandbox
bridge, each call is recorded with the run (purpose ``serve``), and a request's cost is the sum
of its calls'."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hyperagents.runs import Run, RunConfig
from hyperagents.service import Serving, service_for_run
from hyperagents.storages import RDBStorage

#: Dollars per million tokens of the scripted model, so that its calls cost something.
PRICES = {"scripted": (1_000_000.0, 2_000_000.0)}


@pytest.fixture
def storage(tmp_path: Path) -> RDBStorage:
    store = RDBStorage(f"sqlite:///{tmp_path / 'llm.db'}")
    config = RunConfig.parse({"llm_prices": PRICES}, sandbox="process", subset_size=4)
    Run.create(task="support", name="support", seed=0, storage=store, config=config).optimize(0)
    return store


def test_the_model_answers_and_its_cost_is_the_requests(
    storage: RDBStorage, tmp_path: Path
) -> None:
    script = tmp_path / "script.txt"
    script.write_text("refund\n---\nrefund\n---\nrefund\n")
    service = service_for_run(storage, "support")
    serving = Serving(storage, service.id, workers=1, model=f"scripted:{script}")
    serving.start()
    try:
        # The keyword fallback says billing; the model says refund.
        first = serving.answer({"message": "I was charged twice", "channel": "email"})
        second = serving.answer({"message": "my invoice is wrong", "channel": "chat"})
    finally:
        serving.close()
    assert (first.output, second.output) == ("refund", "refund")
    calls = storage.list_llm_calls(service.run_id)
    assert [c.purpose.split("/")[0] for c in calls] == ["serve", "serve"]
    scopes = [c.request["extra"]["scope"] for c in calls]
    assert scopes == [f"serve/{first.request_id}", f"serve/{second.request_id}"]
    for answer, call in zip((first, second), calls, strict=True):
        recorded = storage.get_service_request(answer.request_id)
        assert call.cost > 0 and recorded.cost == pytest.approx(call.cost)


def test_without_a_model_the_agent_falls_back(storage: RDBStorage) -> None:
    service = service_for_run(storage, "support")
    serving = Serving(storage, service.id, workers=1)  # the run has no model
    serving.start()
    try:
        answer = serving.answer({"message": "I was charged twice", "channel": "email"})
    finally:
        serving.close()
    assert answer.output == "billing"
    assert storage.get_service_request(answer.request_id).cost == 0.0
    assert storage.list_llm_calls(service.run_id) == []


def test_a_cut_off_model_is_tried_again_after_the_cool_down(
    storage: RDBStorage, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"error": "error"}] * 5 + ["refund"]))
    service = service_for_run(storage, "support")
    ask = {"message": "I was charged twice", "channel": "email"}
    serving = Serving(
        storage, service.id, workers=1, model=f"scripted:{script}", model_cooldown=0.5
    )
    serving.start()
    try:
        failing = [serving.answer(ask).output for _ in range(5)]  # the keyword fallback
        assert serving.llm is not None and serving.llm.broken is not None
        refused = serving.answer(ask)  # the breaker is open: the model is not called
        time.sleep(0.6)
        again = serving.answer(ask)
    finally:
        serving.close()
    assert failing == ["billing"] * 5 and refused.output == "billing"
    assert again.output == "refund"
    assert len(storage.list_llm_calls(service.run_id)) == 6

"""A model whose calls come before their run: each call goes to its journal as it is made, and
attaching writes the calls into the run and tells the journal in one transaction (a failure in
between leaves neither), so the run's record holds each call exactly once."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hyperagents.exceptions import StorageError
from hyperagents.llm import LLMCall
from hyperagents.runs import PendingJournal, Run, RunLLM
from hyperagents.storages import BaseStorage, InMemoryStorage, RDBStorage
from postgres_helpers import postgres_databases

from toytask import ToyTask


class ListJournal:
    """Records in lists; ``fail`` makes :meth:`attached` fail (as a kill inside the write)."""

    def __init__(self) -> None:
        self.calls: list[LLMCall] = []
        self.runs: list[tuple[int, int]] = []
        self.fail = False

    def pending(self, call: LLMCall) -> None:
        self.calls.append(call)

    def attached(self, run_id: int, calls: Sequence[LLMCall]) -> Sequence[LLMCall]:
        if self.fail:
            raise StorageError("the journal could not be written")
        self.runs.append((run_id, len(calls)))
        return calls


def scripted(tmp_path: Path, replies: list[str]) -> str:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps({"replies": replies}))
    return f"scripted:{path}"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStorage]:
    if request.param == "memory":
        yield InMemoryStorage()
    elif request.param == "sqlite":
        yield RDBStorage(f"sqlite:///{tmp_path / 'journal.db'}")
    else:
        with postgres_databases() as make:
            store = RDBStorage(make())
            yield store
            store.close()


def test_pending_calls_are_journalled_as_made_and_attached_exactly_once(
    storage: BaseStorage, tmp_path: Path
) -> None:
    run_id = Run.create(task=ToyTask(), seed=1, storage=storage).id
    journal = ListJournal()
    typed: PendingJournal = journal  # the protocol RunLLM takes
    model = RunLLM(storage, None, spec=scripted(tmp_path, ["a", "b", "c"]), journal=typed)
    ask = model.handler(variant_id=None, purpose="plan", scope="plan/0")
    assert ask({"messages": [{"role": "user", "content": "one"}]}) == {"text": "a"}
    assert ask({"messages": [{"role": "user", "content": "two"}]}) == {"text": "b"}
    # Durable the moment they are made (the journal), not yet in any run.
    assert [c.reply for c in journal.calls] == ["a", "b"] and len(model.pending) == 2
    assert storage.list_llm_calls(run_id) == []
    journal.fail = True  # dies between writing the run's calls and marking them attached
    with pytest.raises(StorageError):
        model.attach(run_id)
    assert storage.list_llm_calls(run_id) == [] and len(model.pending) == 2  # neither half
    journal.fail = False
    model.attach(run_id)
    assert [c.reply for c in storage.list_llm_calls(run_id)] == ["a", "b"]  # once each
    assert journal.runs == [(run_id, 2)] and model.pending == []
    # Later calls go straight into the run, never into the journal.
    assert ask({"messages": [{"role": "user", "content": "three"}]}) == {"text": "c"}
    assert [c.reply for c in storage.list_llm_calls(run_id)] == ["a", "b", "c"]
    assert len(journal.calls) == 2
    replay = RunLLM(storage, None, spec=None, replay_of=run_id)
    again = replay.handler(variant_id=None, purpose="plan", scope="plan/0")
    assert again({"messages": [{"role": "user", "content": "one"}]}) == {"text": "a"}


def test_calls_answered_before_are_answered_again_once_without_asking_the_model(
    storage: BaseStorage, tmp_path: Path
) -> None:
    spec = scripted(tmp_path, ["a", "b"])
    first = RunLLM(storage, None, spec=spec)
    ask = first.handler(variant_id=None, purpose="plan", scope="plan/0")
    assert ask({"messages": [{"role": "user", "content": "one"}]}) == {"text": "a"}
    assert ask({"messages": [{"role": "user", "content": "two"}]}) == {"text": "b"}
    made = list(first.pending)  # a process that dies here has paid for both
    scripted(tmp_path, ["fresh"])  # what the model would say now
    journal = ListJournal()
    again = RunLLM(storage, None, spec=spec, answered=made, journal=journal)
    ask = again.handler(variant_id=None, purpose="plan", scope="plan/1")
    one = {"messages": [{"role": "user", "content": "one"}]}
    assert ask(one) == {"text": "a"}  # answered from the call made before
    assert ask(one) == {"text": "fresh"}  # once: asked again, the model answers
    assert ask({"messages": [{"role": "user", "content": "two"}]}) == {"text": "b"}
    assert [c.reply for c in journal.calls] == ["a", "fresh", "b"]
    again_made = [again.pending[0], again.pending[2]]
    assert [(c.key, c.prompt_tokens, c.completion_tokens) for c in again_made] == [
        (c.key, c.prompt_tokens, c.completion_tokens) for c in made
    ]


class TakenJournal(ListJournal):
    """Finds the first call attached elsewhere meanwhile: writes it as cached, costing
    nothing (as :class:`~hyperagents.service.PlanJournal` does for an orphan another process
    attached first)."""

    def attached(self, run_id: int, calls: Sequence[LLMCall]) -> Sequence[LLMCall]:
        super().attached(run_id, calls)
        first = dataclasses.replace(calls[0], cached=True, cost=0.0)
        return [first, *calls[1:]]


def test_a_call_the_journal_writes_otherwise_is_counted_as_written(
    storage: BaseStorage, tmp_path: Path
) -> None:
    run_id = Run.create(task=ToyTask(), seed=1, storage=storage).id
    prices = {"scripted": (100.0, 200.0)}
    model = RunLLM(
        storage, None, spec=scripted(tmp_path, ["a", "b"]), prices=prices, journal=TakenJournal()
    )
    ask = model.handler(variant_id=None, purpose="plan", scope="plan/0")
    for content in ("one", "two"):
        assert "text" in ask({"messages": [{"role": "user", "content": content}]})
    paid = model.gateway.usage()
    assert paid.cost > 0 and paid.cached == 0
    model.attach(run_id)
    stored = storage.llm_usage(run_id)
    usage = model.gateway.usage()
    assert usage.cost == pytest.approx(float(stored["cost"]))
    assert 0 < usage.cost < paid.cost
    assert usage.calls == paid.calls == 2 and usage.cached == 1
    assert usage.total_tokens < paid.total_tokens

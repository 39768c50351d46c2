"""``--llm scripted:FILE`` and ``local:FILE``: the file is stored with its absolute path (a run
resumes from any directory), and a script that runs out says so and how to go on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperagents.runs import Run, RunConfig
from hyperagents.runs._llm import RunLLM
from hyperagents.storages import InMemoryStorage, RunStatus

from toytask import LLM_META_AGENT, ToyTask

REPLIES = ["0.4", "0.5", "0.6", "0.63"]
CONFIG = {"subset_size": 10, "selector": "best", "sandbox": "process"}
ASK = {"messages": [{"role": "user", "content": "hi"}], "params": {}, "purpose": "p"}


def test_a_run_made_with_a_relative_script_resumes_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made, elsewhere = tmp_path / "made", tmp_path / "elsewhere"
    made.mkdir()
    elsewhere.mkdir()
    (made / "replies.json").write_text(json.dumps({"replies": REPLIES}))
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.chdir(made)
    run = Run.create(
        task=ToyTask(meta_agent=LLM_META_AGENT),
        seed=1,
        storage=url,
        name="portable",
        config=RunConfig.parse({**CONFIG, "llm": "scripted:replies.json"}),
    )
    assert run.optimize(generations=2).status is RunStatus.COMPLETE
    assert run.record().config["llm"] == f"scripted:{made / 'replies.json'}"
    monkeypatch.chdir(elsewhere)
    resumed = Run.load("portable", storage=url, task=run.task)
    assert resumed.optimize(generations=2).status is RunStatus.COMPLETE
    calls = resumed.storage.list_llm_calls(resumed.id)
    assert [c.reply for c in calls] == REPLIES  # the script went on where it was


def test_model_files_are_made_absolute_and_other_specs_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert RunConfig.parse({"llm": "local:models/m.gguf"}).llm == f"local:{tmp_path}/models/m.gguf"
    assert RunConfig.parse({"llm": "Scripted: r.txt"}).llm == f"scripted:{tmp_path}/r.txt"
    for kept in ("local", "openai:gpt-4.1-mini", "http://127.0.0.1:8080/v1#m", "bogus:x", None):
        assert RunConfig.parse({"llm": kept}).llm == kept


def test_a_script_that_runs_out_says_so_and_a_longer_one_goes_on(tmp_path: Path) -> None:
    script = tmp_path / "replies.txt"
    script.write_text("0.4\n---\n0.5\n")
    store = InMemoryStorage()
    run = Run.create(
        task=ToyTask(meta_agent=LLM_META_AGENT),
        seed=1,
        storage=store,
        name="short script",
        config=RunConfig.parse({**CONFIG, "llm": f"scripted:{script}"}),
    )
    seed = run.variants()[0].id
    model = RunLLM(store, run.id, spec=f"scripted:{script}")
    answer = model.handler(variant_id=seed, purpose="improve", scope="g1/improve")
    assert [answer(ASK), answer(ASK)] == [{"text": "0.4"}, {"text": "0.5"}]
    ran_out = answer(ASK)["error"]
    assert ran_out == (
        f"the LLM script {str(script)!r} ran out: all 2 of its replies were used; add replies "
        "to it to go on (a resumed run continues with reply 3)"
    )
    # It will not get better by asking again: the breaker opens at once.
    assert model.broken == f"{ran_out}; fix it, then `hyperagents resume 'short script'`"
    assert answer(ASK) == {"error": f"request refused: {model.broken}"}
    assert model.was_cut(seed)

    script.write_text("0.4\n---\n0.5\n---\n0.6\n---\n0.7\n")
    resumed = RunLLM(store, run.id, spec=f"scripted:{script}")
    answer = resumed.handler(variant_id=seed, purpose="improve", scope="g1/improve")
    assert answer(ASK) == {"text": "0.6"}  # the call that ran out consumed no reply

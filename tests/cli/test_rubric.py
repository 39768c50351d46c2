"""``hyperagents rubric draft``: a scripted model drafts a judged task's rubrics to a file for
review, which the task's ``rubric`` option then reads; refusals are clear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperagents.tasks import Split, load_task
from hyperagents.testing import FakeOpenAIServer

from cli_helpers import invoke_wide, wrapped_task

DRAFT = '[{"fact": "the key event", "weight": 3}, {"fact": "a number", "weight": 1}]'


def test_draft_writes_a_reviewable_rubric_file_the_task_reads(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps([f"Here it is: {DRAFT}"] * 11 + ["I cannot."]))
    out = tmp_path / "rubric.json"
    code, text = invoke_wide(
        "rubric", "draft", "--task", "summaries", "--llm", f"scripted:{script}", "-o", str(out)
    )
    assert code == 1  # one instance's draft failed: said, and the rest kept
    assert "drafted 11 rubrics" in text and "1 failed; 12 calls" in text
    document = json.loads(out.read_text())
    assert document["task"] == "summaries" and len(document["rubrics"]) == 11
    assert document["failed"] == {
        "test-11": "test-11: the model's reply holds no JSON list: 'I cannot.'"
    }
    assert document["rubrics"]["train-00"] == [
        {"fact": "the key event", "weight": 3.0},
        {"fact": "a number", "weight": 1.0},
    ]
    calls = (tmp_path / "rubric.json.calls.jsonl").read_text().splitlines()
    assert len(calls) == 12 and '"purpose": "rubric-draft"' in calls[0]
    task = load_task("summaries", {"rubric": str(out)})
    assert task.instances(Split.TRAIN)[0].target[0].text == "the key event"
    assert task.instances(Split.TEST)[-1].target[0].weight == 3.0  # kept built-in: not drafted
    code, text = invoke_wide(
        "rubric", "draft", "--task", "summaries", "--llm", f"scripted:{script}", "-o", str(out)
    )
    assert code == 1 and "exists: give --force" in text


def test_a_wrapped_judged_task_gets_its_rubrics_drafted(tmp_path: Path) -> None:
    spec = wrapped_task(tmp_path, "summaries")
    out = tmp_path / "r.json"
    with FakeOpenAIServer(default=DRAFT, model="m") as server:
        code, text = invoke_wide(
            "rubric", "draft", "--task", spec, "--llm", f"{server.base_url}#m", "-o", str(out)
        )
    assert code == 0, text
    document = json.loads(out.read_text())
    assert document["task"] == "summaries" and len(document["rubrics"]) == 12
    task = load_task(spec, {"rubric": str(out)})  # the wrapper hands the option on
    assert task.instances(Split.TEST)[-1].target[0].text == "the key event"
    code, text = invoke_wide(
        "rubric", "draft", "--task", wrapped_task(tmp_path, "review"), "--llm", "x", "-o",
        str(tmp_path / "n.json"),
    )  # fmt: skip
    assert code == 1 and "is not judged by an LLM" in text


def test_draft_through_an_openai_compatible_server(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with FakeOpenAIServer(default=DRAFT, model="m") as server:
        code, text = invoke_wide(
            "rubric",
            "draft",
            "-t",
            "summaries",
            "--llm",
            f"{server.base_url}#m",
            "-o",
            str(out),
            "--facts",
            "2",
        )
        prompt = server.requests[0]["messages"][0]["content"]
    assert code == 0, text
    assert "Write a rubric of 2 short, checkable facts" in prompt and "Eastbrook" in prompt
    assert len(json.loads(out.read_text())["rubrics"]) == 12


def test_draft_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERAGENTS_LLM", raising=False)
    out = str(tmp_path / "r.json")
    code, text = invoke_wide("rubric", "draft", "--task", "snake", "--llm", "scripted:x", "-o", out)
    assert code == 1 and "not judged by an LLM" in text
    code, text = invoke_wide("rubric", "draft", "--task", "summaries", "-o", out)
    assert code == 1 and "needs a model: give --llm" in text

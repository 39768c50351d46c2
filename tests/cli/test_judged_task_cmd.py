"""``hyperagents test-task`` on a task scored by an LLM judge: refused without a model, checked
and its seed scored with one (the judge's questions go to that model)."""

from __future__ import annotations

from pathlib import Path

from hyperagents.testing import FakeOpenAIServer

from cli_helpers import invoke_wide, wrapped_task


def test_a_judged_task_needs_a_model_to_be_checked() -> None:
    code, out = invoke_wide("test-task", "summaries")
    assert code == 1 and "scored by an LLM judge: give --llm SPEC" in out


def test_a_judged_task_is_checked_and_its_seed_scored_with_a_model() -> None:
    with FakeOpenAIServer(default="YES", model="m") as server:
        code, out = invoke_wide("test-task", "summaries", "--llm", f"{server.base_url}#m")
        asked = [r["messages"][0]["content"] for r in server.requests]
    assert code == 0, out
    assert "seed agent on val: 1.0000 (4 instances, 0 errors" in out
    assert asked and all("<<<ANSWER" in prompt for prompt in asked)


def test_a_wrapped_judged_task_gets_the_judge_of_the_task_it_wraps(tmp_path: Path) -> None:
    spec = wrapped_task(tmp_path, "summaries")
    code, out = invoke_wide("test-task", spec)
    assert code == 1 and "scored by an LLM judge: give --llm SPEC" in out
    with FakeOpenAIServer(default="YES", model="m") as server:
        code, out = invoke_wide("test-task", spec, "--llm", f"{server.base_url}#m")
        asked = [r["messages"][0]["content"] for r in server.requests]
    assert code == 0, out
    assert "seed agent on val: 1.0000 (4 instances, 0 errors" in out
    assert asked and all("<<<ANSWER" in prompt for prompt in asked)

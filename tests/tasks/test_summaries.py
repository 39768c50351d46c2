"""The ``summaries`` task: scoring by a judge (a scripted stand-in here), the length rule, the
rubric option, and no scoring without a judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.tasks import (
    Fact,
    Split,
    judge_rubric,
    load_task,
    param_space_errors,
    parse_rubric,
)
from hyperagents.tasks.summaries import SummariesTask

from task_checks import load_agent, seed_source


class ScriptedJudge:
    """Says YES to the facts whose text is in ``confirmed``; records every prompt."""

    def __init__(self, *confirmed: str) -> None:
        self.confirmed = confirmed
        self.prompts: list[tuple[str, str]] = []

    def __call__(self, prompt: str, *, purpose: str) -> str:
        self.prompts.append((purpose, prompt))
        fact = prompt.rsplit("state this fact: ", 1)[1].split("\n", 1)[0]
        return "Yes - it says so." if fact in self.confirmed else "NO, it does not."


def judged_task(judge: ScriptedJudge, **options: str) -> SummariesTask:
    task = load_task("summaries", options)
    assert isinstance(task, SummariesTask) and task.uses_judge
    task.attach_judge(judge)
    return task


def test_the_score_is_the_weight_of_the_facts_the_judge_confirms() -> None:
    judge = ScriptedJudge(
        "the old library on Mill Street will close", "the move saves 40,000 dollars a year"
    )
    task = judged_task(judge)
    inst = task.instances(Split.TRAIN)[0]
    verdict = task.score(inst, "Eastbrook closes its Mill Street library to save money.")
    assert verdict.value == pytest.approx(5 / 7)
    assert "rubric 5/7" in verdict.feedback
    assert "a new library opens in the school in March (weight 2)" in verdict.feedback
    assert [purpose for purpose, _ in judge.prompts] == ["fact0", "fact1", "fact2"]
    _, prompt = judge.prompts[0]
    assert "<<<ANSWER\nEastbrook closes" in prompt and inst.inputs["text"] in prompt


def test_malformed_or_long_outputs_score_zero_without_asking() -> None:
    judge = ScriptedJudge()
    task = judged_task(judge)
    inst = task.instances(Split.VAL)[0]
    for output in (None, 3, ["a"], "", "   ", inst.inputs["text"]):
        verdict = task.checked_score(inst, output)
        assert verdict.value == 0.0, output
    assert "words: a summary has at most 30" in task.score(inst, inst.inputs["text"]).feedback
    assert judge.prompts == []


def test_no_judge_no_score() -> None:
    task = load_task("summaries")
    inst = task.instances(Split.TEST)[0]
    with pytest.raises(TaskError, match="judged by the run's LLM"):
        task.checked_score(inst, "A short summary.")


def test_judge_failures_pass_through_checked_score() -> None:
    from hyperagents.exceptions import RunStateError

    def broken(prompt: str, *, purpose: str) -> str:
        raise RunStateError("budget spent")

    task = load_task("summaries")
    assert isinstance(task, SummariesTask)
    task.attach_judge(broken)
    with pytest.raises(RunStateError, match="budget spent"):
        task.checked_score(task.instances(Split.TRAIN)[0], "A summary.")


def test_a_rubric_file_replaces_the_built_in_rubrics(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"rubrics": {"val-01": [{"fact": "it rained", "weight": 2}]}}))
    judge = ScriptedJudge("it rained")
    task = judged_task(judge, rubric=str(path))
    inst = task.instances(Split.VAL)[0]
    assert inst.id == "val-01" and inst.target == (Fact("it rained", 2.0),)
    assert task.score(inst, "Rain flooded homes.").value == 1.0
    assert task.rubrics()["train-00"][0].text == "the old library on Mill Street will close"
    path.write_text(json.dumps({"nope-1": ["x"]}))
    with pytest.raises(TaskError, match="unknown instance ids nope-1"):
        load_task("summaries", {"rubric": str(path)})


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "x",
        [{"fact": ""}],
        [{"fact": "a", "weight": 0}],
        [{"fact": "a", "weight": True}],
        [{"fact": "a", "extra": 1}],
        [{"fact": "a"}] * 21,
    ],
)
def test_bad_rubrics_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_rubric(bad, "here")


def test_the_first_word_decides() -> None:
    rubric = (Fact("a"), Fact("b", 3.0))
    replies = iter(["NO. Yes it mentions...", "  yes."])
    value, _ = judge_rubric(lambda prompt, *, purpose: next(replies), "ctx", "out", rubric)
    assert value == 0.75


def test_the_seed_keeps_the_lead_within_the_limit() -> None:
    source = seed_source(SummariesTask)
    assert param_space_errors(source) == []
    agent = load_agent(source, "summaries_seed")
    task = load_task("summaries")
    for inst in task.instances(Split.TRAIN):
        summary = agent.solve(inst.inputs)
        assert inst.inputs["text"].startswith(summary) and len(summary.split()) <= 30
    agent.PARAMS.update(sentences=3)
    long = agent.solve(task.instances(Split.TRAIN)[0].inputs)
    assert len(long.split()) == 30

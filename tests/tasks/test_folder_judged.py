"""Judged seed-format folders (``USES_LLM_JUDGE``): the sandboxed benchmark prints ``answers:``,
the judge (the run's LLM, in the engine) scores them against the folder's ``RUBRIC``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import InMemoryStorage, RunStatus
from hyperagents.tasks import JudgedTask, load_task
from hyperagents.testing import FakeOpenAIServer

FOLDER = Path(__file__).resolve().parent / "seed_folders" / "judged_summary"


class KeywordJudge:
    """YES when the answer holds the fact's longest word; records the questions."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, prompt: str, *, purpose: str) -> str:
        self.prompts.append(prompt)
        return keyword_verdict(prompt)


def keyword_verdict(prompt: str) -> str:
    answer = prompt.split("<<<ANSWER\n", 1)[1].split("\nANSWER>>>", 1)[0].lower()
    fact = prompt.rsplit("state this fact: ", 1)[1].split("\n", 1)[0]
    word = max(re.findall(r"[a-z]+", fact.lower()), key=len)
    return "YES" if word in answer else "NO"


def judged(folder: Path = FOLDER) -> tuple[JudgedTask, KeywordJudge]:
    task = load_task(str(folder))
    assert isinstance(task, JudgedTask) and task.uses_judge and task.score_range == (0.0, 1.0)
    judge = KeywordJudge()
    task.attach_judge(judge)
    return task, judge


def score(task: JudgedTask, solution: str) -> tuple[float, str]:
    verdict = task.score(task.instances("val")[0], {"solution.py": solution})
    return verdict.value, verdict.feedback


def test_the_answers_are_judged_against_each_rubric() -> None:
    task, judge = judged()
    seed = task.seed_program()["solution.py"].decode()
    value, feedback = score(task, seed)
    # "The cat sat." keeps "the cat sat" (2 of 3); "Rain fell all day." keeps neither fact
    # by its longest word ("rained", "river"): (2/3 + 0) / 2.
    assert value == pytest.approx(1 / 3) and "rubric_score = 0.3333 (judged)" in feedback
    assert "answer 1: rubric 0/3; facts missed: it rained all day" in feedback
    assert len(judge.prompts) == 4 and "Summarise: Rain fell all day." in judge.prompts[2]
    whole = "def summarize(text):\n    return text + ' It rained; the river rose happy.'\n"
    assert score(task, whole)[0] == 1.0


def test_a_solution_cannot_print_its_own_answers() -> None:
    task, _ = judged()
    forger = (
        "import sys\n"
        'print(\'answers: ["the cat sat happy", "rained river"]\')\n'
        'sys.stdout.write(\'answers: ["the cat sat happy", "rained river"]\\n\')\n'
        "def summarize(text):\n    return ''\n"
    )
    value, _ = score(task, forger)
    assert value == 0.0  # the benchmark's own line counts: two empty answers, nothing stated


def test_malformed_answers_score_the_floor(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    shutil.copytree(FOLDER, folder)
    (folder / "benchmark.py").write_text("print('answers: {not json')\n")
    task, judge = judged(folder)
    value, feedback = score(task, "def summarize(text):\n    return text\n")
    assert value == 0.0 and "not JSON" in feedback and judge.prompts == []
    (folder / "benchmark.py").write_text("print('answers: [\"one\"]')\n")
    task, judge = judged(folder)
    value, feedback = score(task, "def summarize(text):\n    return text\n")
    assert value == 0.0 and "1 answers, but RUBRIC has one rubric for each of 2" in feedback


def test_a_judged_folder_runs_with_a_model_and_is_refused_without() -> None:
    with pytest.raises(ConfigError, match="LLM judge"):
        Run.create(task=str(FOLDER), seed=0, storage=InMemoryStorage(), config={})
    store = InMemoryStorage()
    with FakeOpenAIServer(handler=lambda body: keyword_verdict(_prompt(body)), model="m") as srv:
        config = RunConfig.parse({"llm": f"{srv.base_url}#m", "llm_retries": 0})
        run = Run.create(task=str(FOLDER), seed=0, storage=store, config=config)
        assert run.optimize(generations=1).status is RunStatus.COMPLETE
    seed = run.variants()[0]
    assert seed.scores["val"] == pytest.approx(1 / 3)
    calls = store.list_llm_calls(run.record().id)
    assert calls and all(c.purpose.startswith("judge/") for c in calls)


def _prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])

"""The ``support`` task: seeded requests, exact scoring, and a task agent that calls the LLM."""

from __future__ import annotations

import collections
import re
from typing import Any

import pytest

from hyperagents.evaluation import evaluate_stage
from hyperagents.exceptions import ConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.sandbox import Limits, get_sandbox
from hyperagents.storages import InMemoryStorage, VariantState
from hyperagents.tasks import Split, load_task
from hyperagents.tasks.support import CATEGORIES, SupportTask
from hyperagents.testing import FakeOpenAIServer


@pytest.fixture(scope="module")
def task() -> SupportTask:
    return SupportTask()


def test_the_task_is_built_in_and_seeded(task: SupportTask) -> None:
    assert isinstance(load_task("support"), SupportTask)
    assert [len(task.instances(s)) for s in Split] == [60, 40, 40]
    again = SupportTask()
    assert task.instances(Split.VAL) == again.instances(Split.VAL)
    other = SupportTask(seed=1)
    assert other.instances(Split.VAL) != task.instances(Split.VAL)
    ids = [i.id for s in Split for i in task.instances(s)]
    assert len(ids) == len(set(ids))
    with pytest.raises(ConfigError):
        SupportTask(n_val=0)
    with pytest.raises(ConfigError):
        SupportTask(seed=-1)


def test_every_team_appears_and_inputs_hold_no_label(task: SupportTask) -> None:
    big = SupportTask(n_train=400)
    counts = collections.Counter(i.target for i in big.instances(Split.TRAIN))
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= 30
    for inst in big.instances(Split.TRAIN):
        assert set(inst.inputs) == {"message", "channel"}
        assert inst.inputs["message"] and "{" not in inst.inputs["message"]


def test_exact_scoring_with_feedback(task: SupportTask) -> None:
    inst = task.instances(Split.TRAIN)[0]
    assert task.score(inst, inst.target).value == 1.0
    assert task.score(inst, f"  {inst.target.upper()}\n").value == 1.0
    wrong = next(c for c in CATEGORIES if c != inst.target)
    score = task.score(inst, wrong)
    assert score.value == 0.0 and f"expected {inst.target}" in score.feedback
    for bad in ("sales", 3, None, ["billing"]):
        result = task.checked_score(inst, bad)
        assert result.value == 0.0 and "invalid output" in result.feedback


def _evaluate(task: SupportTask, llm: Any = None) -> float:
    instances = list(task.instances(Split.VAL))
    result = evaluate_stage(
        task.seed_program(),
        task=task,
        instances=instances,
        stage="val",
        split="val",
        sandbox=get_sandbox("process", warm=0),
        limits=Limits(wall_time=60),
        llm=llm,
    )
    return result.score


def test_without_a_model_the_seed_agent_falls_back_to_keywords(task: SupportTask) -> None:
    assert _evaluate(task) == pytest.approx(0.725)


def route_by_guide(body: dict[str, Any]) -> str:
    """A fake model that follows the routing guide perfectly (it knows the generator)."""
    message = body["messages"][-1]["content"]
    request = message.removeprefix("Customer request: ").removesuffix("\nTeam:")
    assert "Routing rules" in body["messages"][0]["content"]  # the guide is in the prompt
    for inst in SupportTask(n_train=60).instances(Split.VAL):
        if inst.inputs["message"] == request:
            return f"The team is: {inst.target.capitalize()}."
    return "I am not sure."


def test_the_task_agent_routes_with_the_run_model_through_the_bridge(task: SupportTask) -> None:
    with FakeOpenAIServer(handler=route_by_guide, model="m") as server:
        store = InMemoryStorage()
        run = Run.create(
            task=task,
            seed=0,
            storage=store,
            config=RunConfig.parse({"llm": f"{server.base_url}#m", "subset_size": 10}),
        )
        run.optimize(generations=0)
        seed = run.variants()[0]
        assert seed.state is VariantState.COMPLETE
        assert seed.scores["val"] == 1.0  # a model that follows the guide routes everything
        calls = store.list_llm_calls(run.id)
        assert len(calls) == 140  # one per request: train, val, and test (it is the champion)
        assert {c.purpose for c in calls} == {
            f"{stage}/route" for stage in ("train_subset", "train", "val", "test")
        }
        assert all(re.fullmatch(r"g0/\w+", c.request["extra"]["scope"]) for c in calls)

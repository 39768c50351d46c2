"""Behaviour of the built-in ``review`` task and its seed task agent."""

from __future__ import annotations

import ast
import importlib.resources
import importlib.util
import json
import math
import random
import time
from types import ModuleType
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.tasks._base import Instance, Split
from hyperagents.tasks.review import ReviewTask
from hyperagents.tasks.review._data import NOISE_RATE, ideal_decision

SEED_AGENT = importlib.resources.files("hyperagents.tasks.review").joinpath("seed/task_agent.py")


def load_agent(source: str, name: str = "review_seed_agent") -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def task() -> ReviewTask:
    return ReviewTask()


@pytest.fixture()
def agent() -> ModuleType:
    return load_agent(SEED_AGENT.read_text("utf-8"))


def accuracy(task: ReviewTask, agent: ModuleType, split: Split) -> float:
    insts = task.instances(split)
    # The JSON round trip is what the sandbox boundary does to inputs and outputs.
    outs = [json.loads(json.dumps(agent.solve(json.loads(json.dumps(i.inputs))))) for i in insts]
    return sum(task.score(i, o).value for i, o in zip(insts, outs, strict=True)) / len(insts)


def test_split_sizes_defaults_and_custom(task: ReviewTask) -> None:
    assert [len(task.instances(s)) for s in Split] == [400, 200, 200]
    small = ReviewTask(n_train=10, n_val=5, n_test=7)
    assert [len(small.instances(s)) for s in Split] == [10, 5, 7]
    assert task.describe()["splits"] == {"train": 400, "val": 200, "test": 200}


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ConfigError):
        ReviewTask(n_train=0)
    with pytest.raises(ConfigError):
        ReviewTask(seed=-1)


def test_same_seed_same_data_other_seed_other_data(task: ReviewTask) -> None:
    again = ReviewTask(seed=0)
    other = ReviewTask(seed=1)
    for split in Split:
        a, b, c = task.instances(split), again.instances(split), other.instances(split)
        assert [(i.id, i.inputs, i.target) for i in a] == [(i.id, i.inputs, i.target) for i in b]
        assert [i.inputs for i in a] != [i.inputs for i in c]


def test_a_split_does_not_depend_on_the_size_of_another() -> None:
    a = ReviewTask(n_train=50).instances(Split.VAL)
    b = ReviewTask(n_train=400).instances(Split.VAL)
    assert [i.inputs for i in a] == [i.inputs for i in b]


def test_ids_unique_across_splits(task: ReviewTask) -> None:
    ids = [i.id for s in Split for i in task.instances(s)]
    assert len(ids) == len(set(ids)) == 800
    assert task.instances(Split.TRAIN)[7].id == "train-0007"


def test_inputs_are_json_records_without_the_target(task: ReviewTask) -> None:
    for split in Split:
        for inst in task.instances(split):
            assert inst.target in ("accept", "reject")
            assert json.loads(json.dumps(inst.inputs)) == inst.inputs
            assert not {"label", "target", "decision", "accept"} & set(inst.inputs)
            assert "accept" not in inst.inputs.values() and "reject" not in inst.inputs.values()
            assert {"lines_changed", "ci_status", "change_type", "has_tests"} <= set(inst.inputs)


def test_label_noise_rate_is_as_documented(task: ReviewTask) -> None:
    for split in Split:
        insts = task.instances(split)
        flipped = sum(ideal_decision(i.inputs) != i.target for i in insts)
        assert flipped == round(NOISE_RATE * len(insts))
        assert 0.05 <= flipped / len(insts) <= 0.10


def test_labels_are_balanced_enough_and_depend_on_interactions(task: ReviewTask) -> None:
    insts = [i for s in Split for i in task.instances(s)]
    rate = sum(i.target == "accept" for i in insts) / len(insts)
    assert 0.35 <= rate <= 0.65
    # Large changes: accepted more often with tests than without.
    big = [i for i in insts if i.inputs["lines_changed"] > 300 and i.inputs["ci_status"] == "pass"]
    with_tests = [ideal_decision(i.inputs) == "accept" for i in big if i.inputs["has_tests"]]
    without = [ideal_decision(i.inputs) == "accept" for i in big if not i.inputs["has_tests"]]
    assert sum(with_tests) / len(with_tests) > sum(without) / len(without) + 0.2


def test_score_correct_wrong_and_case_insensitive(task: ReviewTask) -> None:
    inst = Instance("x", {}, target="reject")
    assert task.score(inst, "reject").value == 1.0
    assert task.score(inst, "  REJECT\n").value == 1.0
    wrong = task.score(inst, "accept")
    assert wrong.value == 0.0
    assert "predicted accept, expected reject" in wrong.feedback


@pytest.mark.parametrize(
    "output", [None, 1, 0.5, True, ["accept"], {"decision": "accept"}, "", "maybe", "accepted"]
)
def test_score_malformed_output_gives_minimum_with_reason(task: ReviewTask, output: Any) -> None:
    result = task.checked_score(Instance("x", {}, target="accept"), output)
    assert result.value == 0.0
    assert "invalid output" in result.feedback


def test_seed_agent_is_standalone_and_declares_its_parameters() -> None:
    source = SEED_AGENT.read_text("utf-8")
    tree = ast.parse(source)
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "hyperagents" not in imported
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        if node.targets[0].id in ("PARAMS", "PARAM_SPACE")
    }
    params, space = assigned["PARAMS"], assigned["PARAM_SPACE"]
    assert set(params) == set(space)
    assert 10 <= len(params) <= 25
    for key, value in params.items():
        spec = space[key]
        if spec["type"] in ("float", "int"):
            assert spec["low"] <= value <= spec["high"], key
            assert isinstance(value, float if spec["type"] == "float" else int), key
        if spec.get("scale") == "log":
            assert spec["low"] > 0
        if "feature" in spec:
            assert spec["feature"] in ReviewTask().instances(Split.TRAIN)[0].inputs


def test_seed_agent_is_fast_deterministic_and_leaves_headroom(
    task: ReviewTask, agent: ModuleType
) -> None:
    inst = task.instances(Split.VAL)
    # CPU time of this thread: what the agent costs, not how busy the machine is.
    start = time.thread_time()
    first = [agent.solve(i.inputs) for i in inst]
    per_instance = (time.thread_time() - start) / len(inst)
    assert per_instance < 1e-3
    assert first == [agent.solve(i.inputs) for i in inst]
    seed_val = accuracy(task, agent, Split.VAL)
    ceiling = sum(ideal_decision(i.inputs) == i.target for i in inst) / len(inst)
    assert ceiling >= 0.9
    assert seed_val <= ceiling - 0.15
    assert 0.5 <= seed_val <= 0.7


def test_seed_agent_reads_params_at_call_time(task: ReviewTask, agent: ModuleType) -> None:
    record = task.instances(Split.TRAIN)[0].inputs
    agent.PARAMS = {**agent.PARAMS, "bias": 100.0, "ci_fail": 0.0}
    assert agent.solve(record) == "accept"
    agent.PARAMS = {**agent.PARAMS, "bias": -100.0}
    assert agent.solve(record) == "reject"


def test_single_parameter_search_from_the_seed_makes_gradual_progress(
    task: ReviewTask, agent: ModuleType
) -> None:
    """A naive hill climb, one parameter at a time, on train only, improves val clearly."""
    rng = random.Random(0)
    space = agent.PARAM_SPACE
    train = task.instances(Split.TRAIN)

    def train_acc(params: dict[str, Any]) -> float:
        agent.PARAMS = params
        return sum(agent.solve(i.inputs) == i.target for i in train) / len(train)

    best = dict(agent.PARAMS)
    best_acc = start = train_acc(best)
    improvements = 0
    for _ in range(400):
        key = rng.choice(sorted(space))
        spec, cand = space[key], dict(best)
        low, high = spec["low"], spec["high"]
        if spec.get("scale") == "log":
            span = math.log(high) - math.log(low)
            value = math.exp(math.log(best[key]) + rng.gauss(0, 0.15) * span)
        else:
            value = best[key] + rng.gauss(0, 0.15) * (high - low)
        value = min(max(value, low), high)
        cand[key] = round(value) if spec["type"] == "int" else value
        acc = train_acc(cand)
        if acc >= best_acc:
            improvements += acc > best_acc
            best, best_acc = cand, acc
    agent.PARAMS = best
    assert improvements >= 8  # many small steps, not one lucky jump
    assert best_acc >= start + 0.15
    assert accuracy(task, agent, Split.VAL) >= 0.75


def test_seed_program_holds_task_and_meta_agent(task: ReviewTask) -> None:
    try:
        program = task.seed_program()
    except TaskError as exc:  # the offline meta agent is built elsewhere
        pytest.skip(str(exc))
    assert set(program) >= {"task_agent.py", "meta_agent.py"}
    assert program["task_agent.py"].decode() == SEED_AGENT.read_text("utf-8")

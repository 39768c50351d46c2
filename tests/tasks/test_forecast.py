"""Behaviour of the built-in ``forecast`` task and its 31-parameter seed forecaster."""

from __future__ import annotations

import importlib.resources
import time
from types import ModuleType
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.tasks import load_task, param_space_errors
from hyperagents.tasks._base import Instance, Split
from hyperagents.tasks.forecast import ForecastTask
from hyperagents.tasks.forecast._data import HISTORY_DAYS, HORIZON

from task_checks import (
    assert_splits_disjoint_and_deterministic,
    declared_space,
    load_agent,
    mean_score,
)

SEED_SOURCE = (
    importlib.resources.files("hyperagents.tasks.forecast")
    .joinpath("seed/task_agent.py")
    .read_text("utf-8")
)

#: The seed's parameters after a hill climb on train (1,500 steps): better, not the optimum.
TUNED_PARAMS: dict[str, float] = {}


@pytest.fixture(scope="module")
def task() -> ForecastTask:
    return ForecastTask()


@pytest.fixture()
def agent() -> ModuleType:
    return load_agent(SEED_SOURCE, "forecast_seed_agent")


def test_registered_with_sizes_and_range(task: ForecastTask) -> None:
    assert isinstance(load_task("forecast"), ForecastTask)
    assert task.describe()["splits"] == {"train": 300, "val": 150, "test": 150}
    assert task.score_range == (0.0, 1.0)
    with pytest.raises(ConfigError):
        ForecastTask(n_test=0)


def test_splits_are_disjoint_deterministic_and_hide_the_future(task: ForecastTask) -> None:
    assert_splits_disjoint_and_deterministic(task, ForecastTask(), ForecastTask(seed=1))
    for inst in task.instances(Split.VAL):
        inputs = inst.inputs
        assert set(inputs) == {"history", "promo", "holiday", "first_weekday", "horizon"}
        assert len(inputs["history"]) == HISTORY_DAYS and min(inputs["history"]) >= 0
        assert len(inputs["promo"]) == len(inputs["holiday"]) == HISTORY_DAYS + HORIZON
        assert set(inputs["promo"]) | set(inputs["holiday"]) <= {0, 1}
        assert len(inst.target) == inputs["horizon"] == HORIZON
    assert ForecastTask(n_train=5).instances(Split.VAL) == task.instances(Split.VAL)


def test_score_is_one_minus_wape_with_feedback(task: ForecastTask) -> None:
    inst = Instance("x", {}, target=[10] * 7 + [30] * 7)
    assert task.score(inst, [10] * 7 + [30] * 7).value == 1.0
    assert task.score(inst, [0] * 14).value == 0.0
    half = task.score(inst, [5.0] * 7 + [15.0] * 7)
    assert half.value == pytest.approx(0.5)
    assert "forecast total 140.0 vs actual 280 (-50%)" in half.feedback
    assert "worst day 8: forecast 15.0, actual 30" in half.feedback
    assert task.score(inst, [1e6] * 14).value == 0.0


@pytest.mark.parametrize(
    "output",
    [
        None,
        "[1, 2]",
        {"forecast": [1.0] * 14},
        [1.0] * 13,
        [1.0] * 15,
        [True] * 14,
        [1.0] * 13 + ["x"],
        [1.0] * 13 + [float("nan")],
        [1e308] * 14,
        [1e308, -1e308] * 7,
    ],
)
def test_any_output_scores_in_range_without_raising(task: ForecastTask, output: Any) -> None:
    result = task.checked_score(Instance("x", {}, target=[3] * 14), output)
    assert result.value == 0.0
    assert result.feedback


def test_seed_declares_over_thirty_valid_parameters_inside_their_bounds() -> None:
    assert param_space_errors(SEED_SOURCE) == []
    params, space = declared_space(SEED_SOURCE)
    assert set(params) == set(space) and len(params) >= 30
    for key, value in params.items():
        assert space[key]["low"] < value < space[key]["high"], key


def test_seed_is_fast_deterministic_and_mediocre(task: ForecastTask, agent: ModuleType) -> None:
    insts = task.instances(Split.VAL)
    start = time.thread_time()
    first = [agent.solve(i.inputs) for i in insts]
    assert (time.thread_time() - start) / len(insts) < 5e-3
    assert first == [agent.solve(i.inputs) for i in insts]
    assert 0.68 <= mean_score(task, agent, insts) <= 0.76

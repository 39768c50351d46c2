"""Baseline arms: the declared space read and written by trusted code, the samplers, and
baseline runs (parent always the seed, same stages, reproducible from the seed)."""

from __future__ import annotations

import importlib.util
import math
import random
from typing import Any

import pytest

from hyperagents.evaluation import (
    BaselineImprover,
    BaselineTrial,
    check_baseline,
    propose,
)
from hyperagents.exceptions import ConfigError
from hyperagents.improvers import ImproveRequest
from hyperagents.program import Program
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import InMemoryStorage, VariantState
from hyperagents.tasks import declared_space

from toytask import ToyTask

SOURCE = '''"""Agent — with a non-ASCII docstring (é) before the literal."""
PARAMS = {
    "x": 0.5,  # a comment that stays
    "n": 3, "mode": "a",
    "flag": False,
    "lr": 1e-3,
    "fixed": 7,
}
PARAM_SPACE = {
    "x": {"type": "float", "low": -1.0, "high": 2.0},
    "n": {"type": "int", "low": 1, "high": 9},
    "mode": {"choices": ["a", "b", ["c", 1]]},
    "flag": {"type": "bool"},
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "scale": "log"},
    "fixed": {"type": "int", "low": 7, "high": 7},
}


def solve(inputs):
    return PARAMS["x"] * inputs["v"] + PARAMS["n"]
'''

TOY_AGENT = """PARAMS = {"t": 0.2, "k": 1}
PARAM_SPACE = {
    "t": {"type": "float", "low": 0.0, "high": 1.0},
    "k": {"type": "int", "low": 0, "high": 3},
}


def solve(inputs):
    return "hi" if inputs["x"] > PARAMS["t"] else "lo"
"""

HAS_OPTUNA = importlib.util.find_spec("optuna") is not None
HAS_CMAES = HAS_OPTUNA and importlib.util.find_spec("cmaes") is not None


def test_the_space_is_read_without_fixed_parameters() -> None:
    space = declared_space(SOURCE)
    assert [p.name for p in space.params] == ["x", "n", "mode", "flag", "lr"]
    assert space.values["fixed"] == 7
    lr = next(p for p in space.params if p.name == "lr")
    assert lr.log and lr.kind == "float"


def test_write_changes_only_the_values_spans() -> None:
    space = declared_space(SOURCE)
    new = space.write(SOURCE, {"x": 1.25, "n": 8, "mode": ["c", 1], "flag": True, "lr": 0.01})
    assert "# a comment that stays" in new and "é" in new
    reread = declared_space(new).values
    assert reread["x"] == 1.25 and reread["n"] == 8 and reread["mode"] == ["c", 1]
    assert reread["flag"] is True and reread["lr"] == 0.01 and reread["fixed"] == 7
    # Unchanged values keep their exact text; lines not holding a changed value are identical.
    assert space.write(SOURCE, {"x": 0.5}) == SOURCE
    changed = [a for a, b in zip(SOURCE.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 4  # "n" and "mode" share a line


def test_write_refuses_an_unknown_parameter() -> None:
    space = declared_space(SOURCE)
    with pytest.raises(ConfigError, match="fixed"):
        space.write(SOURCE, {"fixed": 3})


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("PARAMS = {'a': 1}\n", "no PARAM_SPACE"),
        ("PARAMS = {'a': 1}\nPARAM_SPACE = {'a': {'type': 'int', 'low': 0, 'hi': 3}}\n", "hi"),
        ("PARAMS = {'a': 1}\nPARAM_SPACE = {'a': {'type': 'int', 'low': 1, 'high': 1}}\n", "one"),
    ],
)
def test_an_unusable_space_is_refused_with_the_reason(source: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        declared_space(source)


def test_uniform_draws_cover_the_space_and_respect_log_scale() -> None:
    space = declared_space(SOURCE)
    rng = random.Random(0)
    draws = [space.sample(rng) for _ in range(2000)]
    xs = [d["x"] for d in draws]
    assert min(xs) >= -1.0 and max(xs) <= 2.0 and abs(sum(xs) / len(xs) - 0.5) < 0.1
    assert {d["n"] for d in draws} == set(range(1, 10))
    assert {str(d["mode"]) for d in draws} == {"a", "b", "['c', 1]"}
    logs = [math.log10(d["lr"]) for d in draws]
    # Log-uniform: as many draws in each decade.
    per_decade = [sum(1 for v in logs if lo <= v < lo + 1) for lo in range(-5, -1)]
    assert min(per_decade) > 0.8 * max(per_decade)


def test_random_proposals_depend_on_the_seed_only() -> None:
    space = declared_space(SOURCE)
    trials = [BaselineTrial(dict(space.values), "complete", 0.3)]
    assert propose("random", space, trials, seed=5) == propose("random", space, [], seed=5)
    assert propose("random", space, [], seed=5) != propose("random", space, [], seed=6)


def test_an_unknown_baseline_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown baseline"):
        check_baseline("grid")


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name)
    )
    with pytest.raises(ConfigError, match=r"hyperagents\[optuna\]"):
        check_baseline("optuna-tpe")


def _quadratic_history(name: str, n: int, seed: int) -> list[BaselineTrial]:
    """``n`` trials of baseline ``name`` on -(x - 1.5)^2 - (lr-decade + 2)^2, told as run."""
    space = declared_space(SOURCE)
    trials: list[BaselineTrial] = []
    for k in range(n):
        params, attrs = propose(name, space, trials, seed=seed * 1000 + k)
        value = -((params["x"] - 1.5) ** 2) - (math.log10(params["lr"]) + 2) ** 2
        trials.append(BaselineTrial(params, "complete", value, attrs))
    return trials


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna is not installed")
def test_tpe_learns_from_the_trials_it_is_told() -> None:
    best = {
        name: [max(t.value or -math.inf for t in _quadratic_history(name, 40, s)) for s in range(4)]
        for name in ("random", "optuna-tpe")
    }
    # TPE, told the outcomes, finds better points than blind draws on every seed's median.
    assert sorted(best["optuna-tpe"])[1] > sorted(best["random"])[1]


@pytest.mark.skipif(not HAS_OPTUNA, reason="optuna is not installed")
def test_a_rebuilt_study_proposes_the_same_point() -> None:
    space = declared_space(SOURCE)
    trials = _quadratic_history("optuna-tpe", 12, 0)
    again = [BaselineTrial.from_json(t.to_json()) for t in trials]
    assert propose("optuna-tpe", space, trials, seed=99) == propose(
        "optuna-tpe", space, again, seed=99
    )


@pytest.mark.skipif(not HAS_CMAES, reason="optuna or cmaes is not installed")
def test_cmaes_keeps_its_state_in_the_trials() -> None:
    trials = _quadratic_history("optuna-cmaes", 30, 1)
    generations = [t.attrs.get("cma:generation") for t in trials]
    assert max(g for g in generations if g is not None) >= 1  # told a whole population
    assert any(any(k.startswith("cma:optimizer") for k in t.attrs) for t in trials)


def test_pruned_and_failed_trials_are_accepted() -> None:
    space = declared_space(SOURCE)
    trials = [
        BaselineTrial(dict(space.values), "complete", 0.1),
        BaselineTrial({"x": 9.0}, "complete", 0.9),  # outside the space: left out
        BaselineTrial(dict(space.values), "pruned", 0.05),
        BaselineTrial(dict(space.values), "failed"),
    ]
    names = ["random"] + (["optuna-tpe"] if HAS_OPTUNA else [])
    for name in names:
        params, _ = propose(name, space, trials, seed=1)
        assert set(params) == {"x", "n", "mode", "flag", "lr"}


def test_the_improver_writes_the_proposal_into_the_seed() -> None:
    seed = Program({"task_agent.py": SOURCE, "meta_agent.py": "def improve(w, r): pass\n"})
    result = BaselineImprover("random").improve(ImproveRequest(seed, {"trials": []}, 3))
    assert result.program is not None and result.reason is None
    assert seed.changed_paths(result.program) == ["task_agent.py"]
    assert (
        declared_space(result.program.text("task_agent.py")).values["x"]
        == (result.meta_info["params"]["x"])
    )
    broken = BaselineImprover("random").improve(
        ImproveRequest(Program({"task_agent.py": "PARAMS = {"}), {}, 3)
    )
    assert broken.program is None and broken.reason is not None


def _baseline_run(mode: str, storage: InMemoryStorage, seed: int = 0) -> Run:
    config = RunConfig.parse({}, sandbox="process", subset_size=10)
    return Run.create(
        task=ToyTask(task_agent=TOY_AGENT), storage=storage, seed=seed, mode=mode, config=config
    )


@pytest.mark.parametrize("mode", ["random", "optuna-tpe", "optuna-cmaes"])
def test_a_baseline_run_draws_children_of_the_seed(mode: str) -> None:
    if mode != "random" and not (HAS_CMAES if mode == "optuna-cmaes" else HAS_OPTUNA):
        pytest.skip("optuna is not installed")
    storage = InMemoryStorage()
    run = _baseline_run(mode, storage)
    run.optimize(12)
    variants = run.variants()
    seed = variants[0]
    children = variants[1:]
    assert len(children) == 12 and all(v.parent_id == seed.id for v in children)
    assert all(v.meta_info.get("baseline") == mode for v in children)
    assert {v.state for v in children} <= {VariantState.COMPLETE, VariantState.PRUNED}
    # The child's program is the seed with the proposed values, nothing else.
    child = children[0]
    assert child.program_id is not None and seed.program_id is not None
    program = storage.get_program(child.program_id)
    assert storage.get_program(seed.program_id).changed_paths(program) == ["task_agent.py"]
    values: dict[str, Any] = declared_space(program.text("task_agent.py")).values
    assert values == child.meta_info["params"]
    again = _baseline_run(mode, InMemoryStorage())
    again.optimize(12)
    assert [v.meta_info["params"] for v in again.variants()[1:]] == [
        v.meta_info["params"] for v in children
    ]


def test_a_baseline_run_needs_a_declared_space() -> None:
    with pytest.raises(ConfigError, match="PARAM_SPACE"):
        Run.create(
            task=ToyTask(), storage=InMemoryStorage(), mode="random", config={"sandbox": "process"}
        )

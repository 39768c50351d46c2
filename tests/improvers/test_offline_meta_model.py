"""The offline meta agent's ``surrogate`` mechanism (``meta_model.py``): a TPE-like density
ratio fitted on the archive's history proposes parameters."""

from __future__ import annotations

import math
import random
from types import ModuleType
from typing import Any

import pytest

from seed_agents import offline_modules

OPTIMUM = [0.3, 0.7, 0.2, 0.8, 0.55, 0.4]


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    ws = tmp_path_factory.mktemp("model")
    return offline_modules(ws, model="meta_model", space="meta_space", history="meta_history")


def _quadratic(x: list[float]) -> float:
    return -sum((a - b) ** 2 for a, b in zip(x, OPTIMUM, strict=True))


def test_tpe_proposes_closer_to_the_optimum_than_uniform_draws(modules: dict[str, Any]) -> None:
    dims = [modules["space"].Dim(name=f"x{i}", kind="float") for i in range(len(OPTIMUM))]
    model_dist, uniform_dist = [], []
    for seed in range(12):
        rng = random.Random(seed)
        rows = [[rng.random() for _ in OPTIMUM] for _ in range(40)]
        proposal, summary = modules["model"].propose_tpe(
            rows, [_quadratic(r) for r in rows], dims, random.Random(1000 + seed)
        )
        assert summary["points"] == 40 and summary["good"] == 10
        assert all(0.0 <= x <= 1.0 for x in proposal)
        model_dist.append(math.dist(proposal, OPTIMUM))
        uniform_dist.append(math.dist([rng.random() for _ in OPTIMUM], OPTIMUM))
    assert sum(model_dist) / len(model_dist) < 0.75 * sum(uniform_dist) / len(uniform_dist)


def _archive(n: int, seed: int) -> list[dict[str, Any]]:
    """Members over a float, an int, a bool and a choice; the best: a=0.3, n=7, flag, mode c."""
    rng = random.Random(seed)
    archive: list[dict[str, Any]] = []
    for vid in range(n):
        params = {
            "a": round(rng.random(), 4),
            "n": rng.randint(1, 10),
            "flag": rng.random() < 0.5,
            "mode": rng.choice("abc"),
        }
        quality = (
            -((params["a"] - 0.3) ** 2)
            - ((params["n"] - 7) / 10) ** 2
            + 0.3 * params["flag"]
            + 0.3 * (params["mode"] == "c")
        )
        archive.append(
            {
                "variant_id": vid,
                "parent_id": 0,
                "state": "invalid" if vid % 11 == 5 else "complete",
                "scores": {"train": quality, "val": quality},
                "meta_info": {"params": params},
            }
        )
    return archive


SPACE = {
    "a": {"type": "float", "low": 0.0, "high": 1.0},
    "n": {"type": "int", "low": 1, "high": 10},
    "flag": {"type": "bool"},
    "mode": {"type": "choice", "choices": ["a", "b", "c"]},
}
CURRENT = {"a": 0.9, "n": 2, "flag": False, "mode": "a"}


def test_mixed_space_proposals_favour_the_good_region(modules: dict[str, Any]) -> None:
    space = modules["space"].build_space(SPACE, CURRENT)
    flags = modes = 0
    for seed in range(10):
        history = modules["history"].History.from_report({"archive": _archive(40, seed)})
        found = modules["model"].propose_surrogate(history, space, CURRENT, random.Random(seed))
        assert found is not None
        new, _ = found
        assert set(new) == set(CURRENT)
        assert isinstance(new["a"], float) and 0.0 <= new["a"] <= 1.0
        assert isinstance(new["n"], int) and 1 <= new["n"] <= 10
        flags += new["flag"] is True
        modes += new["mode"] == "c"
    assert flags >= 7 and modes >= 7


def test_too_few_points_give_no_model_and_the_same_seed_the_same_proposal(
    modules: dict[str, Any],
) -> None:
    space = modules["space"].build_space(SPACE, CURRENT)
    few = modules["history"].History.from_report({"archive": _archive(5, 0)})
    assert modules["model"].propose_surrogate(few, space, CURRENT, random.Random(0)) is None
    empty = modules["history"].History.from_report({})
    assert modules["model"].propose_surrogate(empty, space, CURRENT, random.Random(0)) is None
    history = modules["history"].History.from_report({"archive": _archive(30, 1)})
    runs = [
        modules["model"].propose_surrogate(history, space, CURRENT, random.Random(seed))
        for seed in (3, 3, 4)
    ]
    assert runs[0] == runs[1] and runs[0] != runs[2]

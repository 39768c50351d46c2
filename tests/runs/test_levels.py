"""Levels as presets of one engine: each level resolves to its mode and config, the arena
level resolves through the arena package (a driven level, not a mode), and level 1 never builds
on a worse child."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from hyperagents.archive import champion_of
from hyperagents.exceptions import ConfigError
from hyperagents.runs import (
    LEVELS,
    LevelPreset,
    Mode,
    Run,
    RunConfig,
    StartRequest,
    apply_level,
    level_preset,
)
from hyperagents.storages import InMemoryStorage, VariantState

from toytask import ToyTask

CONFIG = {"subset_size": 10, "sandbox": "process"}


@pytest.mark.parametrize(
    ("level", "mode", "selector", "review"),
    [
        ("autoresearch", Mode.FROZEN_META, "best", False),
        ("feedback", Mode.FROZEN_META, "best", True),
        ("hyperagent", Mode.HYPERAGENT, "score_child", False),
    ],
)
def test_each_level_resolves_to_its_mode_and_config(
    level: str, mode: Mode, selector: str, review: bool
) -> None:
    request = StartRequest(task="shipping", level=level)
    config = request.run_config()
    assert request.run_mode() is mode
    assert (config.level, config.selector, config.review) == (level, selector, review)
    # The same through the Python API: the level named in the config sets the mode.
    store = InMemoryStorage()
    run = Run.create(task=ToyTask(), storage=store, config={**CONFIG, "level": level})
    assert run.mode is mode
    assert (run.config.level, run.config.selector, run.config.review) == (level, selector, review)
    assert run.name == f"toy-{level}-s0"
    # A reviewer's run gets the default reviewer as a meta file of its seed.
    assert ("reviewer.py" in run.program(run.variants()[0])) is review


def test_a_value_the_level_sets_cannot_be_given_otherwise() -> None:
    with pytest.raises(ConfigError, match="sets selector to 'best'"):
        StartRequest(task="shipping", level="autoresearch", selector="random").run_config()
    with pytest.raises(ConfigError, match="sets review to True"):
        StartRequest(task="shipping", level="feedback", config={"review": False}).run_config()
    with pytest.raises(ConfigError, match="runs in mode frozen-meta"):
        StartRequest(task="shipping", level="feedback", mode=Mode.HYPERAGENT).run_mode()
    with pytest.raises(ConfigError, match="unknown level"):
        StartRequest(task="shipping", level="level5").run_config()
    with pytest.raises(ConfigError, match="runs in mode frozen-meta"):
        Run.create(task=ToyTask(), storage=InMemoryStorage(), mode="hyperagent",
                   config={**CONFIG, "level": "autoresearch"})  # fmt: skip
    # Giving what the level sets anyway is fine.
    same = StartRequest(task="shipping", level="autoresearch", selector="best")
    assert same.run_config().selector == "best"
    assert StartRequest(task="shipping").run_mode() is Mode.HYPERAGENT
    # A level named in a config file is a level too.
    from_file = StartRequest(task="shipping", config={"level": "autoresearch"})
    assert from_file.run_mode() is Mode.FROZEN_META
    assert from_file.run_config().level == "autoresearch"
    with pytest.raises(ConfigError, match="the config says level 'feedback'"):
        StartRequest(
            task="shipping", level="autoresearch", config={"level": "feedback"}
        ).run_config()


def test_the_arena_level_waits_for_the_arena_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hyperagents.arena", None)  # as if not installed
    with pytest.raises(ConfigError, match="the arena level needs the arena package"):
        level_preset("arena")
    with pytest.raises(ConfigError, match="the arena level needs"):
        StartRequest(task="shipping", level="arena").run_config()
    # The seam: once hyperagents.arena defines level_preset(), the level resolves through it.
    arena = types.ModuleType("hyperagents.arena")
    preset = LevelPreset("arena", Mode.HYPERAGENT, {"review": False}, "co-evolution")
    arena.level_preset = lambda: preset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hyperagents.arena", arena)
    assert level_preset("arena") is preset
    assert apply_level("arena", {"subset_size": 5}) == (
        Mode.HYPERAGENT,
        {"subset_size": 5, "review": False, "level": "arena"},
    )
    broken = types.ModuleType("hyperagents.arena")
    broken.level_preset = lambda: "not a preset"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hyperagents.arena", broken)
    with pytest.raises(ConfigError, match="returned 'not a preset'"):
        level_preset("arena")
    assert LEVELS == ("autoresearch", "feedback", "hyperagent", "arena")


def _objective(variant: Any) -> float:
    return float(variant.scores["val"])


def test_level_1_builds_every_child_on_the_current_best_and_never_on_a_worse_one() -> None:
    store = InMemoryStorage()
    run = Run.create(
        task=ToyTask(), storage=store, seed=3, config={**CONFIG, "level": "autoresearch"}
    )
    run.optimize(generations=10)
    variants = run.variants()
    assert max(v.generation for v in variants) == 10
    by_id = {v.id: v for v in variants}
    worse_children = 0
    for child in variants[1:]:
        earlier = [v for v in variants if v.generation < child.generation]
        best = champion_of(earlier)
        assert best is not None
        assert child.parent_id == best.id  # the current best, ties to the earliest
        parent = by_id[child.parent_id]
        if child.state is not VariantState.COMPLETE or _objective(child) <= _objective(parent):
            worse_children += 1
            # ...and a child that is not better never becomes anyone's base.
            assert all(v.parent_id != child.id for v in variants)
    assert worse_children > 0  # the run did make children that were not kept
    # The base only ever rose: parents' val scores along the generations never decrease.
    bases = [_objective(by_id[v.parent_id]) for v in variants[1:] if v.parent_id is not None]
    assert bases == sorted(bases)
    # A fixed worker: every child keeps the seed's meta agent (the toy one edits itself).
    seed_meta = run.program(variants[0])["meta_agent.py"]
    assert all(run.program(v)["meta_agent.py"] == seed_meta for v in variants if v.program_id)


def test_level_config_round_trips_through_storage() -> None:
    config = RunConfig.parse({"level": "feedback", "review": True, "selector": "best"})
    again = RunConfig.parse(config.model_dump(mode="json"))
    assert again == config
    with pytest.raises(ConfigError, match="level"):
        RunConfig.parse({"level": "level5"})


def test_the_service_starts_a_run_of_a_level(tmp_path: Any) -> None:
    from pathlib import Path

    from hyperagents.runs import RunService

    toy = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"
    service = RunService(InMemoryStorage())
    drive = service.start(
        StartRequest(task=toy, level="feedback", generations=2, workers=1, config=CONFIG)
    )
    run = drive.run
    assert run.mode is Mode.FROZEN_META and run.name == "toy-feedback-s0"
    assert (run.config.level, run.config.selector, run.config.review) == ("feedback", "best", True)
    run.optimize()
    assert len(run.storage.list_events(run.id, kinds=["variant.reviewed"])) == 2


def test_the_arena_provides_a_driven_level_that_the_engine_refuses_to_run_as_a_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    preset = level_preset("arena")
    assert preset.mode is None and preset.driver is not None and preset.driver.mode == "arena"
    with pytest.raises(ConfigError, match="not a mode of the run engine"):
        Run.create(task=ToyTask(), storage=InMemoryStorage(), config={**CONFIG, "level": "arena"})
    # A preset must be a mode or a driven loop, not both.
    both = types.ModuleType("hyperagents.arena")
    both.level_preset = lambda: LevelPreset("arena", Mode.HYPERAGENT, {}, "", preset.driver)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hyperagents.arena", both)
    with pytest.raises(ConfigError, match="returned"):
        level_preset("arena")

"""``subset_size`` and ``subset_margin`` default to ``auto``: numbers from the train split's size,
resolved when a run is created and stored with it; values given are kept as they are."""

from __future__ import annotations

import pytest

import hyperagents.runs._stages as stages
from hyperagents.exceptions import ConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.runs._stages import SubsetPruner, resolve_subset, subset_defaults
from hyperagents.storages import InMemoryStorage

from toytask import ToyTask


@pytest.mark.parametrize(
    ("n_train", "size", "margin"),
    [
        (400, 50, 0.1),  # the defaults before auto: a large split is unchanged
        (200, 50, 0.1),
        (100, 25, 0.1),
        (60, 15, 0.129),
        (40, 10, 0.158),
        (21, 10, 0.158),
        (20, 20, 0.112),  # up to 2 * SUBSET_MIN: the first stage is all of train
        (4, 4, 0.25),
        (1, 1, 0.5),
        (0, 1, 0.5),
    ],
)
def test_the_rule(n_train: int, size: int, margin: float) -> None:
    assert subset_defaults(n_train) == (size, margin)


def test_a_size_given_sets_the_margin_by_what_it_covers() -> None:
    assert subset_defaults(400, 10) == (10, 0.158)
    assert subset_defaults(5, 50) == (50, 0.224)  # 50 asked, 5 there


def test_the_config_says_auto_until_a_run_resolves_it() -> None:
    config = RunConfig.parse({})
    assert (config.subset_size, config.subset_margin) == ("auto", "auto")
    resolved = resolve_subset(config, 60)
    assert (resolved.subset_size, resolved.subset_margin) == (15, 0.129)
    with pytest.raises(ConfigError, match="subset_margin 'auto' is resolved"):
        SubsetPruner.from_config(config, (0.0, 1.0))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"subset_size": 50, "subset_margin": 0.1}, (50, 0.1)),
        ({"subset_size": 50}, (50, 0.1)),  # 50 asked of 40: the margin of 40
        ({"subset_margin": None}, (10, None)),  # no relative threshold stays none
        ({"subset_margin": 0.3}, (10, 0.3)),
    ],
)
def test_values_given_are_kept(given: dict[str, object], expected: tuple[object, ...]) -> None:
    resolved = resolve_subset(RunConfig.parse(given), 40)
    assert (resolved.subset_size, resolved.subset_margin) == expected
    explicit = RunConfig.parse({"subset_size": 7, "subset_margin": 0.2})
    assert resolve_subset(explicit, 40) is explicit


def test_a_run_stores_the_resolved_numbers_and_evaluates_by_them() -> None:
    run = Run.create(task=ToyTask(), storage=InMemoryStorage(), config={"sandbox": "process"})
    stored = run.record().config
    assert (stored["subset_size"], stored["subset_margin"]) == (10, 0.158)
    run.optimize(generations=1)
    seed = run.variants()[0]
    evaluations = {e.stage: e.n for e in run.storage.list_evaluations(seed.id)}
    assert evaluations["train_subset"] == 10 and evaluations["train"] == 40


def test_a_tiny_train_split_is_evaluated_whole_first() -> None:
    task = ToyTask(sizes=(12, 6, 6))
    run = Run.create(task=task, storage=InMemoryStorage(), config={"sandbox": "process"})
    assert run.config.subset_size == 12
    run.optimize(generations=1)
    seed = run.variants()[0]
    evaluations = {e.stage: e.n for e in run.storage.list_evaluations(seed.id)}
    assert evaluations["train_subset"] == 12 and evaluations["train"] == 12


def test_a_resumed_run_keeps_its_numbers_when_the_rule_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryStorage()
    run = Run.create(task=ToyTask(), storage=store, name="kept")
    subset = run._ctx.subset()
    monkeypatch.setattr(stages, "SUBSET_FRACTION", 0.5)
    assert subset_defaults(40) != (10, 0.158)  # the rule did change
    again = Run.load("kept", storage=store, task=ToyTask())
    assert (again.config.subset_size, again.config.subset_margin) == (10, 0.158)
    assert again._ctx.subset() == subset


def test_a_stored_auto_is_resolved_when_the_run_is_opened() -> None:
    store = InMemoryStorage()
    run = Run.create(task=ToyTask(), storage=store, name="auto")
    config = {**run.record().config, "subset_size": "auto", "subset_margin": "auto"}
    store.update_run_config(run.id, config)
    again = Run.load("auto", storage=store, task=ToyTask())
    assert (again.config.subset_size, again.config.subset_margin) == (10, 0.158)

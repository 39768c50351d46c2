"""The stage plan (the order of stages and their instances) and the pruner policy."""

from __future__ import annotations

import pytest

from hyperagents.runs import Run, RunConfig
from hyperagents.runs._context import RunContext
from hyperagents.runs._stages import StagePlan, SubsetPruner, merge_stage_metrics
from hyperagents.storages import InMemoryStorage, VariantRecord, VariantState
from hyperagents.tasks import Split

from toytask import ToyTask


def test_no_pruner_settings_prune_nothing() -> None:
    assert SubsetPruner().prune(-5.0, 1.0) is None


def test_the_threshold_is_absolute() -> None:
    pruner = SubsetPruner(threshold=0.5)
    assert pruner.prune(0.5, None) is None
    assert "below the threshold 0.5" in (pruner.prune(0.49, 0.0) or "")


def test_the_margin_is_a_fraction_of_the_score_range_below_the_parent() -> None:
    pruner = SubsetPruner(margin=0.1, score_range=(0.0, 10.0))
    assert pruner.prune(7.0, 8.0) is None  # 1.0 below: exactly the margin
    assert "more than 0.1 of the range below the parent's 8" in (pruner.prune(6.9, 8.0) or "")
    assert pruner.prune(0.0, None) is None  # a parent without a subset score: nothing to compare


def test_the_threshold_is_checked_first() -> None:
    pruner = SubsetPruner(threshold=0.5, margin=0.0)
    assert "threshold" in (pruner.prune(0.4, 0.9) or "")


def test_from_config() -> None:
    cfg = RunConfig.parse({"subset_threshold": 0.3, "subset_margin": 0.2})
    assert SubsetPruner.from_config(cfg, (0.0, 2.0)) == SubsetPruner(0.3, 0.2, (0.0, 2.0))


def _plan(seed: int = 0, subset_size: int = 10) -> tuple[StagePlan, RunContext]:
    store = InMemoryStorage()
    run = Run.create(task=ToyTask(), storage=store, seed=seed, config={"subset_size": subset_size})
    ctx = RunContext(storage=store, record=run.record(), task=run.task)
    return StagePlan(ctx), ctx


def _variant(**scores: float) -> VariantRecord:
    return VariantRecord(
        id=7,
        run_id=1,
        generation=3,
        parent_id=1,
        program_id="p",
        state=VariantState.EVALUATING,
        scores=scores,
    )


def test_the_order_of_stages() -> None:
    plan, _ = _plan()
    assert plan.pending(_variant(), recheck=False) == ["train_subset", "train", "val"]
    assert plan.pending(_variant(train_subset=1.0), recheck=False) == ["train", "val"]
    done = _variant(train_subset=1.0, train=1.0, val=1.0)
    assert plan.pending(done, recheck=False) == []
    assert plan.pending(done, recheck=True) == ["recheck"]


def test_the_subset_and_the_rest_of_train_split_train_in_two_by_the_seed() -> None:
    plan, ctx = _plan(seed=3)
    split, subset = plan.instances("train_subset", _variant())
    _, rest = plan.instances("train", _variant())
    train = [i.id for i in ctx.instances(Split.TRAIN)]
    assert split is Split.TRAIN and len(subset) == 10 and len(rest) == len(train) - 10
    assert sorted(i.id for i in [*subset, *rest]) == sorted(train)
    again, _ = _plan(seed=3)
    assert [i.id for i in again.instances("train_subset", _variant())[1]] == [i.id for i in subset]
    other, _ = _plan(seed=4)
    assert [i.id for i in other.instances("train_subset", _variant())[1]] != [i.id for i in subset]
    split, val = plan.instances("val", _variant())
    assert split is Split.VAL and [i.id for i in val] == [i.id for i in ctx.instances(Split.VAL)]
    split, fresh = plan.instances("recheck", _variant())
    assert split is Split.VAL and fresh[0].id.startswith("holdout")


def test_merged_metrics_sum_and_weigh() -> None:
    a = {"n": 1, "wall_seconds": 1.0, "errors": 1, "peak_memory_mb": 5, "wall_per_instance": 1.0}
    b = {"n": 3, "wall_seconds": 2.0, "timeouts": 1, "peak_memory_mb": 9, "wall_per_instance": 2.0}
    merged = merge_stage_metrics(a, b)
    assert merged["n"] == 4 and merged["wall_seconds"] == 3.0 and merged["errors"] == 1
    assert merged["timeouts"] == 1 and merged["peak_memory_mb"] == 9
    assert merged["wall_per_instance"] == pytest.approx(1.75)

"""A run whose children all fail the same way says so in its warnings (and so in ``status``)."""

from __future__ import annotations

from hyperagents.runs import Run, RunConfig
from hyperagents.runs._failure_pattern import common_failure
from hyperagents.storages import InMemoryStorage, VariantRecord, VariantState

from toytask import ToyTask

IDLE_META = """def improve(workspace, report):
    return {"operator": "none", "reason": "no mutable parameter in PARAM_SPACE"}
"""


def child(vid: int, state: VariantState, reason: str | None) -> VariantRecord:
    return VariantRecord(
        id=vid, run_id=1, generation=vid, parent_id=0, program_id=None, state=state, reason=reason
    )


SEED = VariantRecord(
    id=0, run_id=1, generation=0, parent_id=None, program_id="p", state=VariantState.COMPLETE
)


def test_children_failing_one_way_up_to_numbers_and_temporary_names_are_named() -> None:
    children = [
        child(k, VariantState.INVALID, f"ImportError: no module 'np' (/tmp/ws-{k}x/a.py, {k} s)")
        for k in range(1, 5)
    ]
    warning = common_failure([SEED, *children])
    assert warning is not None
    assert warning.startswith("every child so far (4) ended invalid the same way: ImportError")


def test_no_pattern_with_a_success_mixed_reasons_or_too_few_children() -> None:
    same = [child(k, VariantState.FAILED, "the meta agent made no change") for k in (1, 2, 3)]
    assert common_failure([SEED, *same]) is not None
    assert common_failure([SEED, *same[:2]]) is None
    assert common_failure([SEED, *same, child(4, VariantState.COMPLETE, None)]) is None
    assert common_failure([SEED, *same, child(4, VariantState.FAILED, "timed out")]) is None
    assert common_failure([SEED, *same, child(4, VariantState.INVALID, same[0].reason)]) is None
    unfinished = child(4, VariantState.RUNNING, None)
    assert common_failure([SEED, *same, unfinished]) is not None  # running children wait


def test_a_run_whose_meta_agent_never_changes_anything_says_why() -> None:
    run = Run.create(
        task=ToyTask(meta_agent=IDLE_META),
        storage=InMemoryStorage(),
        config=RunConfig.parse({"subset_size": 10}),
    )
    run.optimize(4)
    warnings = run.warnings()
    assert warnings[-1] == (
        "every child so far (4) ended failed the same way: the meta agent made no change: "
        "no mutable parameter in PARAM_SPACE"
    )

"""The gate's decisions: who would lead, what quarantine holds back, what waits for approval,
and what the constitution does to a child before it runs."""

from __future__ import annotations

from typing import Any

import pytest

from hyperagents.archive import ArchiveView
from hyperagents.runs import Run, RunConfig
from hyperagents.runs._gate import (
    leader_approval_reason,
    quarantine_reason,
    would_lead,
)
from hyperagents.storages import InMemoryStorage, VariantRecord, VariantState

from toytask import TASK_AGENT, ToyTask

C, E = VariantState.COMPLETE, VariantState.PENDING


def v(vid: int, generation: int, state: VariantState = C, **scores: float) -> VariantRecord:
    return VariantRecord(
        id=vid,
        run_id=1,
        generation=generation,
        parent_id=None if generation == 0 else 1,
        program_id=f"p{vid}",
        state=state,
        scores=scores,
    )


#: Champions 0.5 -> 0.6 -> 0.7 (gains 0.1, 0.1); generation 3 waits for a person.
HISTORY = ArchiveView.of(
    [v(1, 0, val=0.5), v(2, 1, val=0.6), v(3, 2, val=0.7), v(4, 3, E, val=0.95)]
)


def config(**values: Any) -> RunConfig:
    return RunConfig.parse({"quarantine_gap": 0.2, "quarantine_jump": 2.0, **values})


def test_would_lead_compares_with_the_settled_generations_only() -> None:
    assert would_lead(v(9, 4, val=0.8), HISTORY, horizon=3) == pytest.approx((0.8, 0.7))
    assert would_lead(v(9, 4, val=0.65), HISTORY, horizon=3) is None
    assert would_lead(v(9, 4, val=0.65), HISTORY, horizon=1) == pytest.approx((0.65, 0.6))
    assert would_lead(v(9, 0, val=0.1), ArchiveView(()), horizon=0) == (0.1, None)
    assert would_lead(v(9, 4, train=0.9), HISTORY, horizon=3) is None  # no val score


@pytest.mark.parametrize(
    ("scores", "said"),
    [
        ({"val": 0.75, "recheck": 0.74, "train": 0.7}, None),
        ({"val": 0.75, "recheck": 0.5, "train": 0.7}, "when re-evaluated on held-out data"),
        ({"val": 0.75, "recheck": 0.74, "train": 0.3}, "far above train"),
        ({"val": 0.99, "recheck": 0.98, "train": 0.9}, "a jump of 0.29 over the champion"),
    ],
)
def test_quarantine_reasons(scores: dict[str, float], said: str | None) -> None:
    reason = quarantine_reason(
        v(9, 4, **scores), HISTORY, horizon=3, config=config(), score_range=(0.0, 1.0)
    )
    assert reason is None if said is None else said in (reason or "")


def test_a_jump_needs_a_history_of_two_gains() -> None:
    short = ArchiveView.of([v(1, 0, val=0.5), v(2, 1, val=0.6)])
    child = v(9, 2, val=0.99, recheck=0.98, train=0.9)
    assert (
        quarantine_reason(child, short, horizon=1, config=config(), score_range=(0.0, 1.0)) is None
    )


def test_approval_of_would_be_champions() -> None:
    leader, follower = v(9, 4, val=0.72), v(9, 4, val=0.6)
    manual, auto = config(approval="manual"), config(approval="auto")
    threshold = config(approval="threshold", approval_threshold=0.05)
    assert "would become champion" in (
        leader_approval_reason(leader, HISTORY, horizon=3, config=manual) or ""
    )
    assert leader_approval_reason(leader, HISTORY, horizon=3, config=auto) is None
    assert leader_approval_reason(follower, HISTORY, horizon=3, config=manual) is None
    assert leader_approval_reason(leader, HISTORY, horizon=3, config=threshold) is None  # +0.02
    big = v(9, 4, val=0.8)
    assert leader_approval_reason(big, HISTORY, horizon=3, config=threshold) is not None
    seed = v(1, 0, val=0.5)  # nothing to beat: never held back
    assert leader_approval_reason(seed, ArchiveView(()), horizon=0, config=manual) is None


def _constitution_run() -> Run:
    rules = [
        {"name": "no-eval", "kind": "forbidden_calls", "calls": ["eval"]},
        {"name": "soft-exec", "kind": "forbidden_calls", "calls": ["exec"], "soft": True},
    ]
    return Run.create(
        task=ToyTask(),
        storage=InMemoryStorage(),
        config=RunConfig.parse(
            {"subset_size": 10, "constitution": {"rule": rules, "penalty": 2.0}}
        ),
    )


def test_the_constitution_rejects_hard_and_penalises_soft_violations() -> None:
    run = _constitution_run()
    job = run.ask()
    hard = run.tell(
        job, job.request.program.with_files({"task_agent.py": TASK_AGENT + "\neval('1')\n"})
    )
    assert hard.state is VariantState.REJECTED and "no-eval" in (hard.reason or "")
    job = run.ask()
    soft = run.tell(
        job, job.request.program.with_files({"task_agent.py": TASK_AGENT + "\nexec('1')\n"})
    )
    assert soft.state is VariantState.COMPLETE
    assert soft.metrics["constitution"]["alignment"] == pytest.approx(0.5)
    penalised = run.storage.list_events(run.id, kinds=["variant.penalised"])
    assert [e.variant_id for e in penalised] == [soft.id]

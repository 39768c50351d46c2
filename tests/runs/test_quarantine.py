"""Quarantine of suspicious gains: a would-be champion is re-evaluated on fresh held-out data;
a gap between the stages or a jump far beyond the run's history sends it to review instead of
promotion."""

from __future__ import annotations

from typing import Any

from hyperagents.runs import Run, RunConfig, approve, champion_of
from hyperagents.storages import InMemoryStorage, VariantState
from hyperagents.tasks import Split

from toytask import TASK_AGENT, ToyTask


def _run(task: ToyTask, **config: Any) -> Run:
    return Run.create(
        task=task,
        storage=InMemoryStorage(),
        seed=5,
        mode="frozen-meta",
        config=RunConfig.parse(
            {}, sandbox="process", subset_size=10, subset_margin=None, quarantine=True, **config
        ),
    )


def _tell(run: Run, task_agent: str) -> Any:
    job = run.ask()
    return run.tell(job, run.program(job.parent_id).with_files({"task_agent.py": task_agent}))


def _threshold(t: float) -> str:
    return TASK_AGENT.replace('"t": 0.2', f'"t": {t}')


def test_hard_coded_val_answers_are_quarantined_not_promoted() -> None:
    task = ToyTask(sizes=(40, 200, 20))
    run = _run(task, quarantine_gap=0.2)
    run.optimize(1)
    answers = {i.inputs["x"]: i.target for i in task.instances(Split.VAL)}
    cheat = _tell(
        run,
        f"ANSWERS = {answers!r}\n\n"
        + TASK_AGENT.replace(
            "def solve(inputs):\n",
            "def solve(inputs):\n"
            "    if inputs['x'] in ANSWERS:\n"
            "        return ANSWERS[inputs['x']]\n",
        ),
    )
    assert cheat.scores["val"] == 1.0
    assert cheat.state is VariantState.PENDING
    assert cheat.reason.startswith("quarantined: val 1 but") and "held-out" in cheat.reason
    recheck = next(e for e in run.storage.list_evaluations(cheat.id) if e.stage == "recheck")
    assert recheck.split == "holdout" and recheck.n == 200
    assert all(r["id"].startswith("holdout-") for r in recheck.results)
    assert recheck.score < 0.8
    champion = champion_of(run.variants())
    assert champion is not None and champion.id != cheat.id
    kinds = [e.kind for e in run.storage.list_events(run.id, variant_id=cheat.id)]
    assert "variant.quarantined" in kinds and "variant.completed" not in kinds
    # A person may still decide otherwise; the decision is recorded.
    approve(run.storage, cheat, who="a reviewer", note="known fixture")
    assert champion_of(run.variants()).id == cheat.id  # type: ignore[union-attr]


def test_a_real_improvement_is_rechecked_and_promoted() -> None:
    task = ToyTask(sizes=(40, 200, 20))
    run = _run(task, quarantine_gap=0.2)
    run.optimize(1)
    seed = run.variants()[0]
    assert seed.state is VariantState.COMPLETE and "recheck" not in seed.scores  # nothing to beat
    better = _tell(run, _threshold(0.63))
    assert better.state is VariantState.COMPLETE, better.reason
    assert abs(better.scores["val"] - better.scores["recheck"]) <= 0.2
    assert champion_of(run.variants()).id == better.id  # type: ignore[union-attr]
    worse = _tell(run, _threshold(0.9))
    assert worse.state is VariantState.COMPLETE and "recheck" not in worse.scores  # not a leader


def test_a_jump_far_beyond_the_history_is_quarantined() -> None:
    task = ToyTask(sizes=(40, 200, 20))
    run = _run(task, quarantine_gap=0.5, quarantine_jump=3.0)
    run.optimize(1)
    xs = sorted(i.inputs["x"] for i in task.instances(Split.VAL) if 0.2 < i.inputs["x"] < 0.63)
    small = [round(xs[0] + 1e-4, 5), round(xs[1] + 1e-4, 5)]  # one more val instance right each
    for t in small:
        step = _tell(run, _threshold(t))
        assert step.state is VariantState.COMPLETE, step.reason
    jump = _tell(run, _threshold(0.63))
    assert jump.state is VariantState.PENDING
    assert (
        jump.reason.startswith("quarantined: a jump of") and "largest earlier gain" in jump.reason
    )

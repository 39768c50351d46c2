"""The run's time and evaluation budgets: reaching one stops the run gracefully, with a clear
reason; raising it and resuming continues the same run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hyperagents.runs import Run, RunConfig
from hyperagents.storages import InMemoryStorage, RDBStorage, RunStatus

from toytask import ToyTask


def _evaluations(run: Run) -> int:
    return sum(len(v.scores) for v in run.variants())


def test_evaluation_budget_stops_and_a_raised_one_continues() -> None:
    storage = InMemoryStorage()
    config = RunConfig.parse({}, sandbox="process", subset_size=10, max_evaluations=12)
    run = Run.create(task=ToyTask(), storage=storage, seed=3, config=config)
    record = run.optimize(50)
    assert record.status is RunStatus.STOPPED
    assert run.last_stop_reason is not None and "evaluation budget of 12" in run.last_stop_reason
    spent = _evaluations(run)
    generations = len(run.variants())
    # No generation starts once reached; work already in flight (one worker: none) finishes.
    assert 12 <= spent < 12 + 4 and generations < 51
    events = storage.list_events(run.id)
    assert events[-1].kind == "run.stopped" and "evaluation budget" in events[-1].message
    again = run.optimize()
    assert again.status is RunStatus.STOPPED and len(run.variants()) == generations
    storage.update_run_config(run.id, {**dict(run.record().config), "max_evaluations": 40})
    more = Run.load(run.id, storage=storage, task=ToyTask())
    assert more.optimize().status is RunStatus.STOPPED
    assert len(more.variants()) > generations and 40 <= _evaluations(more) < 44
    assert more.summary()["max_evaluations"] == 40


def test_time_budget_counts_engine_time_over_resumes() -> None:
    storage = InMemoryStorage()
    config = RunConfig.parse({}, sandbox="process", subset_size=10, max_seconds=0.5)
    run = Run.create(task=ToyTask(), storage=storage, seed=4, config=config)
    record = run.optimize(10_000)
    assert record.status is RunStatus.STOPPED
    assert run.last_stop_reason is not None and "time budget of 0.5 s" in run.last_stop_reason
    elapsed = run.record().elapsed_seconds
    assert elapsed >= 0.5
    generations = len(run.variants())
    # Spent is spent: a resume without a larger budget starts nothing new.
    assert run.optimize().status is RunStatus.STOPPED and len(run.variants()) == generations


def test_cli_resume_raises_a_budget(tmp_path: Path) -> None:
    toy = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"
    url = f"sqlite:///{tmp_path / 'b.db'}"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("HYPERAGENTS_STORAGE", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hyperagents", *args, "--storage", url],
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=300,
        )

    first = cli(
        "run", "--task", toy, "-g", "30", "-w", "1", "--name", "b", "--max-evaluations", "9"
    )
    assert first.returncode == 0, first.stderr
    assert "stopped: evaluation budget of 9 reached" in first.stderr
    assert "of 9" in first.stdout  # status: evaluations N of 9
    storage = RDBStorage(url)
    before = storage.count_variants(storage.get_run_by_name("b").id)
    raised = cli("resume", "b", "--max-evaluations", "30")
    assert raised.returncode == 0, raised.stderr
    record = storage.get_run_by_name("b")
    assert record.config["max_evaluations"] == 30
    assert storage.count_variants(record.id) > before
    lifted = cli("resume", "b", "--no-budget")
    assert lifted.returncode == 0, lifted.stderr
    record = storage.get_run_by_name("b")
    assert record.config["max_evaluations"] is None and record.status is RunStatus.COMPLETE
    assert storage.count_variants(record.id) == 31
    storage.close()


def test_a_champion_settled_by_the_work_in_flight_is_tested_before_a_budget_stop() -> None:
    # whichever child the budget stops after, the champion the run ends with has its test
    # score (test scores are for the report, not a search cost: they never wait for a resume)
    for budget in (4, 8, 12, 16, 20):
        storage = InMemoryStorage()
        config = RunConfig.parse({}, sandbox="process", subset_size=10, max_evaluations=budget)
        run = Run.create(task=ToyTask(), storage=storage, seed=5, config=config)
        assert run.optimize(50).status is RunStatus.STOPPED
        champion = run.champion()
        assert champion is not None and "test" in champion.scores, (budget, champion)
        tested = storage.list_events(run.id, kinds=["champion.test"], variant_id=champion.id)
        assert len(tested) == 1

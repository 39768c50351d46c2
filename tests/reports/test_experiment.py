"""Experiment grids: modes × seeds in one storage, independent replicates, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.reports import (
    ExperimentRequest,
    ExperimentSpec,
    experiment_progress,
    experiment_runs,
    run_experiment,
)
from hyperagents.runs import Mode, Run
from hyperagents.storages import InMemoryStorage, RunStatus, get_storage

from toytask import ToyTask

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


def spec(**changes: Any) -> ExperimentSpec:
    values: dict[str, Any] = {
        "name": "grid",
        "task": TOY,
        "modes": "hyperagent,no-archive",
        "seeds": 2,
        "generations": 3,
        "config": {"subset_size": 10},
    }
    values.update(changes)
    return ExperimentSpec.parse(**values)


def fingerprint(store: Any, run_id: int) -> list[tuple[Any, ...]]:
    return [
        (v.generation, v.state, v.program_id, tuple(sorted(v.scores.items())))
        for v in store.list_variants(run_id)
    ]


def test_the_grid_runs_every_mode_and_seed_as_independent_replicates() -> None:
    store = InMemoryStorage()
    records = run_experiment(spec(), storage=store, workers=2, task=ToyTask())
    assert [(r.name, r.mode, r.seed) for r in records] == [
        ("grid-hyperagent-s0", "hyperagent", 0),
        ("grid-hyperagent-s1", "hyperagent", 1),
        ("grid-no-archive-s0", "no-archive", 0),
        ("grid-no-archive-s1", "no-archive", 1),
    ]
    assert all(r.status is RunStatus.COMPLETE for r in records)
    assert [r.id for r in experiment_runs(store, "grid")] == [r.id for r in records]
    for record in records:
        assert max(v.generation for v in store.list_variants(record.id)) == 3
    # Replicates differ (their seeds drive every choice)...
    assert fingerprint(store, records[0].id) != fingerprint(store, records[1].id)
    # ...and each is the run a lone run with that seed gives, whatever ran beside it.
    alone = Run.create(task=ToyTask(), seed=1, storage=store, config={"subset_size": 10})
    alone.optimize(generations=3)
    assert fingerprint(store, alone.id) == fingerprint(store, records[1].id)


def test_running_it_again_does_nothing_twice_and_more_generations_extend_it() -> None:
    store = InMemoryStorage()
    first = run_experiment(spec(generations=2), storage=store, workers=2, task=ToyTask())
    before = {r.id: fingerprint(store, r.id) for r in first}
    again = run_experiment(spec(generations=2), storage=store, workers=2, task=ToyTask())
    assert {r.id: fingerprint(store, r.id) for r in again} == before
    more = run_experiment(spec(generations=3, seeds=3), storage=store, workers=2, task=ToyTask())
    assert len(more) == 6  # a third seed added
    for record in more:
        prints = fingerprint(store, record.id)
        assert max(p[0] for p in prints) == 3
        if record.id in before:
            assert prints[: len(before[record.id])] == before[record.id]


def test_bad_specs_and_foreign_runs_are_refused() -> None:
    with pytest.raises(ConfigError, match="distinct"):
        spec(seeds=[1, 1])
    with pytest.raises(ConfigError):
        spec(modes="hyperagent,sideways")
    with pytest.raises(ConfigError, match="at least one mode"):
        spec(modes="")
    store = InMemoryStorage()
    Run.create(task=ToyTask(), name="grid-hyperagent-s0", storage=store)
    with pytest.raises(ConfigError, match="not part of experiment"):
        run_experiment(spec(), storage=store, task=ToyTask())
    assert spec().modes == (Mode.HYPERAGENT, Mode.NO_ARCHIVE)


def test_a_request_becomes_the_spec_it_describes() -> None:
    request = ExperimentRequest(
        task=TOY, modes="hyperagent, no-archive", seeds=2, generations=3, sandbox="process",
        config={"subset_size": 10, "sandbox": "bwrap"},
    )  # fmt: skip
    made = request.spec()
    assert made == ExperimentSpec.parse(
        name="toy-experiment", task=TOY, modes=["hyperagent", "no-archive"], seeds=[0, 1],
        generations=3, config={"subset_size": 10, "sandbox": "process"},
    )  # fmt: skip
    assert request.config["sandbox"] == "bwrap"  # the request itself is left as it was
    named = ExperimentRequest(task=TOY, name="grid", seeds=[3, 5], modes=["frozen-meta"])
    assert named.spec(task_name="unused").name == "grid"
    assert named.spec().seeds == (3, 5)
    assert ExperimentRequest(workers=3).engine_workers == 3
    assert ExperimentRequest().engine_workers == (os.cpu_count() or 1)
    with pytest.raises(ConfigError, match="at least one mode"):
        ExperimentRequest(task=TOY, modes=" ").spec()
    with pytest.raises(pydantic.ValidationError):
        ExperimentRequest(task=TOY, mode="hyperagent")  # type: ignore[call-arg]


def test_progress_counts_the_generations_finished_of_every_arm() -> None:
    store = InMemoryStorage()
    grid = spec(generations=2)
    assert experiment_progress(store, grid) == (2 * 2 * 2, 0)
    run_experiment(grid, storage=store, workers=2, task=ToyTask())
    assert experiment_progress(store, grid) == (8, 8)
    assert experiment_progress(store, spec(generations=3, seeds=3)) == (2 * 3 * 3, 8)
    # With an evaluation budget, progress counts stage evaluations.
    budget = spec(config={"subset_size": 10, "max_evaluations": 30})
    spent = sum(len(v.scores) for r in store.list_runs() for v in store.list_variants(r.id))
    assert experiment_progress(store, budget) == (2 * 2 * 30, spent)


def test_the_cli_runs_and_continues_an_experiment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subset_size": 10}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERAGENTS_")}
    env["COLUMNS"] = "200"  # one table row per run
    command = [
        sys.executable, "-m", "hyperagents", "experiment", "-t", TOY,
        "--modes", "hyperagent,frozen-meta", "--seeds", "2", "-g", "2", "-w", "2",
        "--storage", url, "--config", str(config), "-n", "cli-grid", "-q",
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "cli-grid-frozen-meta-s1" in proc.stdout
    assert "warning: 2 seed(s) per mode: `hyperagents report` needs at least 3" in " ".join(
        proc.stderr.split()
    )
    store = get_storage(url)
    runs = experiment_runs(store, "cli-grid")
    assert len(runs) == 4 and all(r.status is RunStatus.COMPLETE for r in runs)
    counts = [len(store.list_variants(r.id)) for r in runs]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert [len(store.list_variants(r.id)) for r in experiment_runs(store, "cli-grid")] == counts


def test_an_interrupted_experiment_continues_to_the_same_results(tmp_path: Path) -> None:
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERAGENTS_")}

    def command(db: str) -> list[str]:
        return [
            sys.executable, "-m", "hyperagents", "experiment", "-t", TOY,
            "--modes", "hyperagent,no-archive", "--seeds", "2", "-g", "8", "-w", "2",
            "--storage", f"sqlite:///{tmp_path / db}", "-n", "x", "-q",
        ]  # fmt: skip

    proc = subprocess.Popen(
        command("cut.db"),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as a terminal delivers it, even where pytest was started in the background
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    store = get_storage(f"sqlite:///{tmp_path / 'cut.db'}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if (tmp_path / "cut.db").exists():
            runs = experiment_runs(store, "x")
            if sum(len(store.list_variants(r.id)) for r in runs) >= 6:
                break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "run the same command again" in stderr
    stopped = experiment_runs(store, "x")
    assert any(r.status is not RunStatus.COMPLETE for r in stopped)
    assert subprocess.run(command("cut.db"), env=env, check=False).returncode == 0
    assert subprocess.run(command("whole.db"), env=env, check=False).returncode == 0
    whole = get_storage(f"sqlite:///{tmp_path / 'whole.db'}")
    for a, b in zip(experiment_runs(store, "x"), experiment_runs(whole, "x"), strict=True):
        assert a.status is RunStatus.COMPLETE and a.name == b.name
        assert [x[1:] for x in fingerprint(store, a.id)] == [
            x[1:] for x in fingerprint(whole, b.id)
        ]


BASELINE_AGENT = """PARAMS = {"t": 0.2}
PARAM_SPACE = {"t": {"type": "float", "low": 0.0, "high": 1.0}}


def solve(inputs):
    return "hi" if inputs["x"] > PARAMS["t"] else "lo"
"""


def test_arms_share_an_evaluation_budget_and_are_compared_at_it(tmp_path: Path) -> None:
    from hyperagents.reports import build_report

    request = ExperimentRequest(
        task="toy",
        modes="hyperagent,random",
        seeds=2,
        evaluations=16,
        name="budget",
        config={"subset_size": 10, "sandbox": "process", "meta_agent": "offline"},
    )
    built = request.spec(task_name="toy")
    assert built.generations == 16 and built.config["max_evaluations"] == 16
    storage = InMemoryStorage()
    task = ToyTask(task_agent=BASELINE_AGENT)
    records = run_experiment(built, storage=storage, workers=2, task=task)
    assert {r.arm for r in records} == {"hyperagent", "random"}
    for record in records:
        variants = storage.list_variants(record.id)
        spent = sum(len(v.scores) for v in variants)
        assert 16 <= spent < 16 + 4  # the budget ended the run, not the generations
        assert max(v.generation for v in variants) < 16
    report = build_report("budget", storage=storage, out=tmp_path)
    stats = report.statistics
    fewest = min(
        sum(len(v.scores) - ("test" in v.scores) for v in storage.list_variants(r.id))
        for r in records
    )
    assert stats["evaluations"] == fewest
    assert set(stats["modes"]) == {"hyperagent", "random"}
    assert "at equal evaluations" in report.files["markdown"].read_text()

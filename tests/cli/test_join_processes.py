"""Four engine processes on one PostgreSQL run (``hyperagents resume RUN --join``), one of them
SIGKILLed mid-run: the run ends with exactly its target's generations, each made and evaluated
once, the killed engine's work taken over by the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperagents.runs import Run, RunConfig
from hyperagents.storages import EngineStatus, RDBStorage, RunStatus, VariantState
from postgres_helpers import postgres_databases

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKLOAD = Path(__file__).resolve().parents[2] / "benchmarks" / "engines_workload" / "task.py"
GENERATIONS = 24
ENGINES = 4


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_databases() as make:
        yield make()


def _engine(url: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    env["HYPERAGENTS_ENGINES_WORKLOAD_MS"] = "300"
    command = [sys.executable, "-m", "hyperagents", "resume", "crew", "--join", "-q", "-w", "2"]
    return subprocess.Popen(
        [*command, "--storage", url],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when_busy(store: RDBStorage, run_id: int, victim: subprocess.Popen[str]) -> str:
    """SIGKILL ``victim`` once it holds unfinished work; return its owner token."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        mine = [e.owner for e in store.list_engines(run_id) if e.pid == victim.pid]
        if mine:
            held = [
                v
                for v in store.list_variants(run_id)
                if v.owner == mine[0] and not v.state.is_terminal and v.generation > 2
            ]
            if held:
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                return mine[0]
        assert victim.poll() is None, victim.communicate()
        time.sleep(0.05)
    raise AssertionError("the engine to kill never held work")


def test_four_engines_one_killed_nothing_lost_nothing_twice(url: str, tmp_path: Path) -> None:
    run = Run.create(
        task=f"{WORKLOAD}:EnginesWorkload",
        name="crew",
        storage=url,
        config=RunConfig.parse({"parallel_generations": 8, "heartbeat_interval": 0.5}),
        generations=GENERATIONS,
    )
    run_id = run.id
    run.storage.close()
    engines = [_engine(url, tmp_path) for _ in range(ENGINES)]
    store = RDBStorage(url)
    try:
        victim = _kill_when_busy(store, run_id, engines[1])
        survivors = [e for k, e in enumerate(engines) if k != 1]
        for engine in survivors:
            out, err = engine.communicate(timeout=400)
            assert engine.returncode == 0, out + err
        record = store.get_run(run_id)
        variants = store.list_variants(run_id)
        engine_rows = {e.owner: e for e in store.list_engines(run_id)}
        events = store.list_events(run_id)
    finally:
        store.close()
    # Nothing lost: exactly the target's generations, every one settled.
    assert record.status is RunStatus.COMPLETE and record.engine is None
    assert [v.generation for v in variants] == list(range(GENERATIONS + 1))
    assert all(v.state.is_terminal for v in variants), [(v.generation, v.state) for v in variants]
    assert not [v for v in variants if v.state is VariantState.FAILED]
    # Nothing done twice: one creation, one recorded improvement and one evaluation each.
    created = Counter(e.variant_id for e in events if e.kind == "variant.created")
    improved = Counter(e.variant_id for e in events if e.kind == "variant.improved")
    assert set(created.values()) == {1} and len(created) == GENERATIONS + 1  # the seed too
    assert set(improved.values()) == {1}
    assert [e.kind for e in events if e.kind.startswith("run.")] == [
        "run.created",
        "run.started",
        "run.completed",
    ]  # one lead started the run and recorded its end
    store = RDBStorage(url)
    try:
        for v in variants:
            stages = [e.stage for e in store.list_evaluations(v.id)]
            assert len(stages) == len(set(stages)), (v.generation, stages)
            if v.state is VariantState.COMPLETE:
                assert stages.count("val") == 1, (v.generation, stages)
    finally:
        store.close()
    # The killed engine's work was taken over; every engine is accounted for.
    reclaimed = [e for e in events if e.kind == "variant.reclaimed"]
    assert reclaimed and all(e.data["previous_owner"] == victim for e in reclaimed)
    assert engine_rows[victim].status is EngineStatus.LOST
    others = [e for owner, e in engine_rows.items() if owner != victim]
    assert len(others) == ENGINES - 1 and all(e.status is EngineStatus.LEFT for e in others)
    ran = Counter(v.engine for v in variants if v.generation)
    assert len(ran) >= 3  # the work was shared
    assert all(v.worker in (0, 1) for v in variants if v.generation)

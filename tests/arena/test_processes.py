"""``hyperagents run --level arena`` as separate processes, as a user runs it: while it plays its
process holds the run (``hyperagents resume`` from another process is refused); SIGKILLed
mid-run, ``hyperagents resume`` finishes it with no round lost or played twice; ``hyperagents
stop`` ends it between rounds, recorded as stopped, and ``hyperagents resume`` finishes it. Each
ends with the variants of an arena never stopped. A ``hyperagents arena`` signalled (SIGINT,
SIGTERM) in the middle of a round stores the work it did of that round, and ``hyperagents
resume --workers`` goes on from there, with those workers, to the end of an arena never
interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arena_helpers import arena_outcome, level_variants, played_rounds, step_keys
from hyperagents.arena import ArenaConfig, ArenaLevel, run_arena
from hyperagents.storages import InMemoryStorage, RDBStorage, RunRecord, RunStatus
from hyperagents.tasks import load_task

from cli_helpers import cli, spawn_cli

ROUNDS = 6
RUN = ("run", "--task", "email_validation", "--level", "arena", "-g", str(ROUNDS), "--sandbox",
       "process", "--name", "k", "-q")  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> list[tuple[Any, ...]]:
    """The variants of the same arena run played through, never stopped."""
    store = InMemoryStorage()
    record = ArenaLevel().drive(
        task=load_task("email_validation", {}), name="k", seed=0, storage=store,
        config={"sandbox": "process"}, generations=ROUNDS,
    )  # fmt: skip
    assert record.status is RunStatus.COMPLETE
    return level_variants(store, record.id)


@dataclass
class Playing:
    """The arena run ``k`` played by a ``hyperagents run`` process, once its first round is
    stored (while the process still plays)."""

    tmp_path: Path
    url: str
    engine: subprocess.Popen[str]
    store: RDBStorage
    run: RunRecord


def _after_round_one(store: RDBStorage, engine: subprocess.Popen[str]) -> RunRecord:
    """The run once its first round is stored (while its process still plays)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and engine.poll() is None:
        try:
            run = store.get_run_by_name("k")
            if played_rounds(store, run.id):
                return run
        except Exception:  # the database or the run is not made yet
            pass
        time.sleep(0.05)
    engine.kill()
    out, err = engine.communicate()
    pytest.fail(f"no round was stored while the arena played: {out}{err}")


@pytest.fixture
def playing(tmp_path: Path) -> Iterator[Playing]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = spawn_cli(*RUN, "--storage", url, cwd=tmp_path)
    store = RDBStorage(url)
    try:
        yield Playing(tmp_path, url, engine, store, _after_round_one(store, engine))
    finally:
        if engine.poll() is None:
            engine.kill()
        store.close()


def _resume_to_the_end(playing: Playing, reference: list[tuple[Any, ...]]) -> None:
    """The rounds stored are the first ones, each once, short of the end; ``hyperagents
    resume`` ends the run complete with every round once and the variants of the reference."""
    store, run_id = playing.store, playing.run.id
    played = played_rounds(store, run_id)
    assert played == list(range(1, len(played) + 1)) and len(played) < ROUNDS
    assert len(store.list_variants(run_id)) >= len(played)  # the rounds a variant recorded
    resumed = cli("resume", "k", "--storage", playing.url, "-q", cwd=playing.tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert '"status": "complete"' in resumed.stdout and f'"rounds": {ROUNDS}' in resumed.stdout
    record = store.get_run(run_id)
    assert record.status is RunStatus.COMPLETE and not record.engine
    assert played_rounds(store, run_id) == list(range(1, ROUNDS + 1))  # none lost, none twice
    assert level_variants(store, run_id) == reference


@pytest.mark.slow
def test_a_killed_arena_run_resumes_with_no_round_lost_or_played_twice(
    playing: Playing, reference: list[tuple[Any, ...]]
) -> None:
    run, engine = playing.run, playing.engine
    # Its process holds the run: another driver is refused, and changes nothing.
    assert run.status is RunStatus.RUNNING
    assert str(run.engine).split("|")[1] == str(engine.pid)
    refused = cli("resume", "k", "--storage", playing.url, cwd=playing.tmp_path)
    assert refused.returncode == 1 and "being driven by another engine" in refused.stderr
    os.kill(engine.pid, signal.SIGKILL)
    engine.communicate(timeout=60)
    assert playing.store.get_run(run.id).engine == run.engine  # a dead holder, taken over
    _resume_to_the_end(playing, reference)


@pytest.mark.slow
def test_stop_ends_an_arena_run_between_rounds_and_resume_finishes_it(
    playing: Playing, reference: list[tuple[Any, ...]]
) -> None:
    store, run, engine = playing.store, playing.run, playing.engine
    stopped = cli("stop", "k", "--storage", playing.url, cwd=playing.tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "stop requested" in stopped.stdout + stopped.stderr
    out, err = engine.communicate(timeout=300)
    assert engine.returncode == 0, err
    assert '"status": "stopped"' in out and "stopped: continue with hyperagents resume k" in err
    record = store.get_run(run.id)
    assert record.status is RunStatus.STOPPED and not record.engine  # the slot given back
    assert store.list_events(run.id, kinds=["run.stopped"])[-1].message == "stopped by request"
    assert len(store.list_variants(run.id)) == len(played_rounds(store, run.id)) + 1
    _resume_to_the_end(playing, reference)


def test_experiment_levels_drive_the_arena_arm_and_resume_adds_rounds_to_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    done = cli("experiment", "--task", "email_validation", "--levels", "arena", "--seeds", "1",
               "-g", "2", "--sandbox", "process", "--name", "e", "--storage", url, "-q",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = RDBStorage(url)
    try:
        run = store.get_run_by_name("e-arena-s0")
        assert (run.experiment, run.arm, run.mode) == ("e", "arena", "arena")
        assert run.status is RunStatus.COMPLETE and played_rounds(store, run.id) == [1, 2]
        more = cli("resume", "e-arena-s0", "-g", "1", "--storage", url, "-q", cwd=tmp_path)
        assert more.returncode == 0, more.stderr
        assert '"level": "arena"' in more.stdout and '"rounds": 3' in more.stdout
        assert played_rounds(store, run.id) == [1, 2, 3]
        assert [v.generation for v in store.list_variants(run.id)] == [0, 1, 2, 3]
        assert store.get_run(run.id).experiment == "e"  # still the experiment's arm
    finally:
        store.close()


# -- a signal in the middle of a round (``hyperagents arena``, resumed by ``hyperagents resume``)
GOLDEN = {"rounds": 4, "proposals": 12, "children": 3, "heldout_size": 40, "sandbox": "process"}
ARENA = ("arena", "--rounds", "4", "--proposals", "12", "--children", "3", "--heldout", "40",
         "--sandbox", "process", "--name", "g")  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted() -> dict[str, Any]:
    """The same arena played through in this process, never interrupted."""
    store = InMemoryStorage()
    result = run_arena(ArenaConfig(**GOLDEN), storage=store, name="g")
    return arena_outcome(store, result.run_id)


def _mid_round(store: RDBStorage, engine: subprocess.Popen[str]) -> tuple[RunRecord, int]:
    """The run once a step of a round after the first is stored and that round is not (while
    its process still plays), and that round."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and engine.poll() is None:
        try:
            run = store.get_run_by_name("g")
            played = played_rounds(store, run.id)
            steps = step_keys(store, run.id)
        except Exception:  # the database or the run is not made yet
            played, steps = [], []
        going = len(played) + 1
        if played and any(key.startswith(f"{going}/") for key in steps):
            return run, going
        time.sleep(0.02)
    engine.kill()
    out, err = engine.communicate()
    pytest.fail(f"no round was caught in the middle: {out}{err}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_arena_signalled_mid_round_resumes_the_round_and_ends_as_never_interrupted(
    tmp_path: Path, uninterrupted: dict[str, Any], signum: int
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = spawn_cli(*ARENA, "--workers", "1", "--storage", url, cwd=tmp_path)
    store = RDBStorage(url)
    try:
        run, going = _mid_round(store, engine)
        os.kill(engine.pid, signum)
        _, err = engine.communicate(timeout=300)
        assert engine.returncode == (130 if signum == signal.SIGINT else 143), err
        assert "continue with hyperagents resume g" in err
        record = store.get_run(run.id)
        assert record.status is RunStatus.STOPPED and not record.engine
        # The round in flight did not end, but its work done so far (and the step in flight
        # when the signal came) is stored.
        assert played_rounds(store, run.id) == list(range(1, going))
        # Only the round in flight's: the finished rounds' went with their records.
        cut = step_keys(store, run.id)
        assert cut and all(key.startswith(f"{going}/") for key in cut)
        resumed = cli("resume", "g", "--workers", "2", "--storage", url, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "with 2 workers" in resumed.stderr
        # The resume took the workers it was given (the run engine's record of it).
        assert [e.workers for e in store.list_engines(run.id)] == [1, 2]
        assert store.get_run(run.id).status is RunStatus.COMPLETE
        assert played_rounds(store, run.id) == [1, 2, 3, 4]  # none lost, none played twice
        assert step_keys(store, run.id) == []  # every round recorded: no step kept
        assert arena_outcome(store, run.id) == uninterrupted
    finally:
        if engine.poll() is None:
            engine.kill()
        store.close()

"""``hyperagents stop RUN [--now]`` from another process, on a run whose engine is mid-work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperagents.storages import RDBStorage, RunStatus, VariantState

SLOW = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:SlowMetaToyTask"


def _cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    return subprocess.Popen(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _start(tmp_path: Path) -> tuple[str, subprocess.Popen[str], RDBStorage]:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    engine = _cli(
        "run",
        "--task",
        SLOW,
        "-g",
        "4",
        "-w",
        "1",
        "--name",
        "slow",
        "--storage",
        url,
        "-q",
        cwd=tmp_path,
    )
    storage = RDBStorage(url)
    deadline = time.time() + 300
    while time.time() < deadline:  # until generation 2's meta agent is at work (asleep)
        try:
            run = storage.get_run_by_name("slow")
            second = storage.get_variant_by_generation(run.id, 2)
            if second is not None and second.state is VariantState.RUNNING:
                break
        except Exception:
            pass
        time.sleep(0.1)
    else:
        engine.kill()
        pytest.fail(
            "generation 2 never started: " + (engine.stderr.read() if engine.stderr else "")
        )
    time.sleep(0.5)
    return url, engine, storage


def _stop(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYPERAGENTS_STORAGE"}
    return subprocess.run(
        [sys.executable, "-m", "hyperagents", "stop", "slow", "--storage", url, *extra],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )


def test_graceful_stop_finishes_the_work_in_flight(tmp_path: Path) -> None:
    url, engine, storage = _start(tmp_path)
    stopped = _stop(url, tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "finishes the work in flight" in stopped.stderr
    engine.wait(timeout=300)
    run = storage.get_run_by_name("slow")
    assert run.status is RunStatus.STOPPED
    variants = storage.list_variants(run.id)
    assert [v.generation for v in variants] == [0, 1, 2]  # no generation started after the stop
    assert all(v.state.is_terminal for v in variants)  # generation 2 was finished, not lost
    kinds = [e.kind for e in storage.list_events(run.id)]
    assert "run.stop_requested" in kinds and kinds[-1] == "run.stopped"
    again = _stop(url, tmp_path)
    assert again.returncode == 1 and "not running" in again.stderr
    storage.close()


def test_stop_now_kills_the_engine_and_resume_redoes_its_work(tmp_path: Path) -> None:
    url, engine, storage = _start(tmp_path)
    stopped = _stop(url, tmp_path, "--now")
    assert stopped.returncode == 0, stopped.stderr
    assert "killed" in stopped.stderr
    engine.wait(timeout=120)  # rc -9 below: killed, not waited for
    assert engine.returncode == -9
    run = storage.get_run_by_name("slow")
    assert run.status is RunStatus.STOPPED
    events = storage.list_events(run.id)
    request = next(e for e in events if e.kind == "run.stop_requested")
    assert request.data["now"] is True and "command line" in request.data["by"]
    assert events[-1].kind == "run.killed"
    second = storage.get_variant_by_generation(run.id, 2)
    assert second is not None and not second.state.is_terminal  # cut off, not recorded as done
    resumed = _cli("resume", "slow", "--storage", url, "-q", cwd=tmp_path)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    run = storage.get_run_by_name("slow")
    variants = storage.list_variants(run.id)
    assert run.status is RunStatus.COMPLETE
    assert [v.generation for v in variants] == [0, 1, 2, 3, 4]
    assert all(v.state.is_terminal for v in variants)
    storage.close()

"""SIGKILL a running ``hyperagents run`` and resume it: the archive equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hyperagents.storages import RDBStorage, RunStatus, VariantState

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"
GENERATIONS = 10


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


def _archive(url: str, name: str) -> list[tuple[Any, ...]]:
    store = RDBStorage(url)
    try:
        run = store.get_run_by_name(name)
        variants = store.list_variants(run.id)
        generation_of = {v.id: v.generation for v in variants}
        return [
            (
                v.generation,
                generation_of.get(v.parent_id) if v.parent_id else None,
                v.state,
                v.program_id,
                tuple(sorted(v.scores.items())),
                v.reason,
            )
            for v in variants
        ]
    finally:
        store.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    work = tmp_path_factory.mktemp("reference")
    url = f"sqlite:///{work / 'ref.db'}"
    proc = _cli(
        "run",
        "-t",
        TOY,
        "-g",
        str(GENERATIONS),
        "-s",
        "9",
        "-n",
        "r",
        "-q",
        "--subset-size",
        "10",
        "--storage",
        url,
        cwd=work,
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    return _archive(url, "r")


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_events", [3, 17, 40])
def test_sigkill_then_resume_matches_uninterrupted_run(
    tmp_path: Path, reference: list[tuple[Any, ...]], kill_after_events: int
) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    proc = _cli(
        "run",
        "-t",
        TOY,
        "-g",
        str(GENERATIONS),
        "-s",
        "9",
        "-n",
        "r",
        "-q",
        "--subset-size",
        "10",
        "--storage",
        url,
        cwd=tmp_path,
    )
    deadline = time.time() + 300
    killed = False
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if not (tmp_path / "run.db").exists():
            continue
        try:
            store = RDBStorage(url)
            try:
                events = len(store.list_events(store.get_run_by_name("r").id))
            finally:
                store.close()
        except Exception:  # the database may not be initialised yet
            continue
        if events >= kill_after_events:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=60)
    assert killed, "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL

    # Killed before the run ended: work is missing (variants, scores or the run's own end; a
    # busy machine can let every variant be made before the kill lands).
    partial = _archive(url, "r")
    store = RDBStorage(url)
    try:
        status = store.get_run_by_name("r").status
    finally:
        store.close()
    assert partial != reference or status is not RunStatus.COMPLETE

    resumed = _cli("resume", "r", "-q", "--storage", url, cwd=tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out + err
    assert _archive(url, "r") == reference

    store = RDBStorage(url)
    try:
        run = store.get_run_by_name("r")
        variants = store.list_variants(run.id)
        assert all(v.state.is_terminal and v.owner is None for v in variants)
        assert sum(v.state is VariantState.COMPLETE for v in variants) >= 1
        # Nothing done twice: one recorded child program and one evaluation per stage each.
        improved = Counter(
            e.variant_id for e in store.list_events(run.id, kinds=["variant.improved"])
        )
        assert all(count == 1 for count in improved.values())
        for v in variants:
            stages = [e.stage for e in store.list_evaluations(v.id)]
            assert len(stages) == len(set(stages))
    finally:
        store.close()

"""SIGKILL ``hyperagents run`` while a child trains, then resume: the training is done again
(from scratch before its first checkpoint, from its newest checkpoint after one), recorded
once, and the archive equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from hyperagents.storages import RDBStorage, VariantState

from cli_helpers import spawn_cli

TASK = f"{Path(__file__).resolve().parents[1] / 'weightstask.py'}:WeightsTask"
#: The trainer sleeps this long first: the window in which the engine is killed.
SLEEP = 4


def _run_args(url: str, options: str = f'{{"epochs": 60, "sleep": {SLEEP}}}') -> list[str]:
    return [
        "run",
        "-t",
        TASK,
        "--task-option",
        f"options={options}",
        "-g",
        "2",
        "-s",
        "4",
        "-n",
        "k",
        "-q",
        "--subset-size",
        "10",
        "-w",
        "1",
        "--storage",
        url,
    ]


def _archive(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[int | None, str]]]:
    store = RDBStorage(url)
    try:
        run = store.get_run_by_name("k")
        variants = [
            (v.generation, v.state, v.program_id, tuple(sorted(v.scores.items())))
            for v in store.list_variants(run.id)
        ]
        trained = [
            (e.variant_id, e.message) for e in store.list_events(run.id, kinds=["variant.trained"])
        ]
        return variants, trained
    finally:
        store.close()


def _training_due(path: Path, checkpointed: bool = False) -> bool:
    """Whether generation 1's training has started and is not recorded yet (and, with
    ``checkpointed``, has kept a checkpoint)."""
    if not path.exists():  # (opening it here would create it)
        return False
    url = f"sqlite:///{path}"
    try:
        store = RDBStorage(url)
    except Exception:
        return False
    try:
        run = store.get_run_by_name("k")
        child = store.get_variant_by_generation(run.id, 1)
        if child is None:
            return False
        if (child.metrics.get("training") or {}).get("state") != "due":
            return False
        kinds = ["training.checkpoint"]
        return not checkpointed or bool(store.list_events(run.id, kinds=kinds, variant_id=child.id))
    except Exception:  # not initialised yet
        return False
    finally:
        store.close()


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_and_trains_once(tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    reference.mkdir()
    ref_url = f"sqlite:///{reference / 'ref.db'}"
    proc = spawn_cli(*_run_args(ref_url), cwd=reference)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err

    url = f"sqlite:///{tmp_path / 'run.db'}"
    proc = spawn_cli(*_run_args(url), cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not _training_due(tmp_path / "run.db"):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before its training could be interrupted"
    time.sleep(1.0)  # inside the trainer's sleep
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    variants, trained = _archive(url)
    assert not trained and variants[1][1] is VariantState.RUNNING

    resume = spawn_cli("resume", "k", "-q", "--storage", url, cwd=tmp_path)
    out, err = resume.communicate(timeout=600)
    assert resume.returncode == 0, out + err
    variants, trained = _archive(url)
    expected_variants, expected_trained = _archive(ref_url)
    assert variants == expected_variants
    assert [m for _, m in trained] == [m for _, m in expected_trained]
    assert len(trained) == 2  # each child trained, and recorded, once


@pytest.mark.slow
def test_a_run_killed_after_a_checkpoint_resumes_the_training_from_it(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"training": {"checkpoint_seconds": 0.5}}))
    options = '{"epochs": 60, "pace": 0.1}'  # six seconds of training a child
    args = [*_run_args("", options)[:-2], "--config", str(config), "--storage"]
    reference = tmp_path / "ref"
    reference.mkdir()
    ref_url = f"sqlite:///{reference / 'ref.db'}"
    proc = spawn_cli(*args, ref_url, cwd=reference)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err

    url = f"sqlite:///{tmp_path / 'run.db'}"
    proc = spawn_cli(*args, url, cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if _training_due(tmp_path / "run.db", checkpointed=True):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before its training could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = (tmp_path / "run.db.checkpoints").iterdir()
    assert [p.name for p in kept if not p.name.startswith(".")] == ["run1-variant2.zip"]

    resume = spawn_cli("resume", "k", "-q", "--storage", url, cwd=tmp_path)
    out, err = resume.communicate(timeout=600)
    assert resume.returncode == 0, out + err
    store = RDBStorage(url)
    try:
        (resumed,) = store.list_events(1, kinds=["training.resumed"])
        assert resumed.variant_id == 2 and resumed.data["step"] > 0
        child = store.get_variant(2)
        assert child.metrics["training"]["resumed_from"] == resumed.data["step"]
    finally:
        store.close()
    variants, trained = _archive(url)
    expected_variants, expected_trained = _archive(ref_url)
    assert variants == expected_variants  # the resumed training wrote the same model
    assert [m for _, m in trained] == [m for _, m in expected_trained]
    assert not list((tmp_path / "run.db.checkpoints").iterdir())  # dropped once recorded

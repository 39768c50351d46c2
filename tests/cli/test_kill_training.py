"""SIGKILL ``hyperagents run`` while a child trains, then resume: the training is done again
(from scratch before its first checkpoint, from its newest checkpoint after one), recorded
once, and the archive equals an uninterrupted run's; on PostgreSQL an engine on another
machine (another folder and cache, nothing of the killed engine's files left) resumes it from
the checkpoint the killed one kept in the storage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperagents.storages import RDBStorage, VariantState
from postgres_helpers import postgres_databases

from cli_helpers import cli_env, spawn_cli

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


def _training_due(url: str, checkpointed: bool = False) -> bool:
    """Whether generation 1's training has started and is not recorded yet (and, with
    ``checkpointed``, has kept a checkpoint)."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return False  # (opening it here would create it)
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


def _checkpointing_reference(tmp_path: Path) -> tuple[list[str], str]:
    """The arguments of a run whose trainer checkpoints every half second (the storage URL
    last, to add), and the URL of that run done without interruption (under ``ref/``)."""
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
    return args, ref_url


def _kill_after_a_checkpoint(proc: subprocess.Popen[str], url: str) -> None:
    """SIGKILL the engine ``proc`` once generation 1's training has kept a checkpoint."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if _training_due(url, checkpointed=True):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before its training could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


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
    while time.time() < deadline and proc.poll() is None and not _training_due(url):
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
    args, ref_url = _checkpointing_reference(tmp_path)

    url = f"sqlite:///{tmp_path / 'run.db'}"
    _kill_after_a_checkpoint(spawn_cli(*args, url, cwd=tmp_path), url)
    folder = tmp_path / "run.db.artifacts" / "checkpoints"  # in the storage's artifact store
    kept = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    assert len(kept) == 1 and kept[0].startswith("run1-variant2-")
    assert not (tmp_path / "run.db.checkpoints").exists()  # nothing on this machine alone

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
    assert not list(folder.iterdir())  # dropped once recorded


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a new, empty PostgreSQL database (dropped afterwards)."""
    with postgres_databases() as make:
        yield make()


def _spawn_on(machine: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``hyperagents ARGS`` as if on another machine: in its own folder, with its own
    home and cache folders (where a storage's files for this machine only would go)."""
    env = cli_env()
    env.update(HOME=str(machine / "home"), XDG_CACHE_HOME=str(machine / "cache"))
    for folder in ("home", "cache"):
        (machine / folder).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "hyperagents", *args],
        cwd=machine,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_an_engine_elsewhere_resumes_a_killed_training_from_its_checkpoint(
    tmp_path: Path, postgres_url: str
) -> None:
    args, ref_url = _checkpointing_reference(tmp_path)

    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    _kill_after_a_checkpoint(_spawn_on(machine_a, *args, postgres_url), postgres_url)
    store = RDBStorage(postgres_url)
    try:
        kept = store.get_checkpoint(1, 2)
        assert kept is not None and kept.step > 0  # in the database, not on machine A
    finally:
        store.close()
    shutil.rmtree(machine_a)  # nothing of machine A is left to resume from

    resume = _spawn_on(machine_b, "resume", "k", "-q", "--storage", postgres_url)
    out, err = resume.communicate(timeout=600)
    assert resume.returncode == 0, out + err
    store = RDBStorage(postgres_url)
    try:
        (resumed,) = store.list_events(1, kinds=["training.resumed"])
        assert resumed.variant_id == 2 and resumed.data["step"] >= kept.step
        child = store.get_variant(2)
        assert child.metrics["training"]["resumed_from"] == resumed.data["step"]
        progress = store.list_events(1, kinds=["training.progress"], variant_id=2)
        last_attempt = progress[-1].data["attempt"]
        steps = [e.data["step"] for e in progress if e.data["attempt"] == last_attempt]
        assert min(steps) > resumed.data["step"]  # machine B did not start from step 0
        assert store.get_checkpoint(1, 2) is None  # dropped once the training was recorded
    finally:
        store.close()
    variants, trained = _archive(postgres_url)
    expected_variants, expected_trained = _archive(ref_url)
    assert variants == expected_variants  # the resumed training wrote the same model
    assert [m for _, m in trained] == [m for _, m in expected_trained]

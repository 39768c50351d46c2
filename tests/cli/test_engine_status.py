"""What ``status`` and ``runs`` say about a run's engine, and two engines started on one run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperagents.runs import Run, RunConfig
from hyperagents.runs._owner import new_owner_token
from hyperagents.storages import RDBStorage, RunStatus, VariantState

from cli_helpers import cli, cli_env

TESTS = Path(__file__).resolve().parents[1]

TOY = f"{TESTS / 'toytask.py'}:ToyTask"
SLOW = f"{TESTS / 'toytask.py'}:SlowMetaToyTask"


def _dead_token() -> str:
    """The owner token of an engine process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}|{proc.pid}|123|dead"


@pytest.fixture
def created(tmp_path: Path) -> tuple[str, RDBStorage]:
    """A run created with a target of 2 generations, never driven."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = RDBStorage(url)
    Run.create(
        task=TOY,
        name="toy",
        storage=storage,
        config=RunConfig.parse({}, subset_size=10),
        generations=2,
    )
    return url, storage


def _status(url: str, cwd: Path) -> tuple[str, str, dict[str, object]]:
    """``status``, ``runs`` and ``status --json`` of the run "toy"."""
    shown = cli("status", "toy", "--storage", url, cwd=cwd)
    listed = cli("runs", "--storage", url, cwd=cwd)
    as_json = cli("status", "toy", "--json", "--storage", url, cwd=cwd)
    for proc in (shown, listed, as_json):
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return shown.stdout, listed.stdout, json.loads(as_json.stdout)


def test_a_running_run_whose_engine_died_says_so(
    created: tuple[str, RDBStorage], tmp_path: Path
) -> None:
    url, storage = created
    record = storage.get_run_by_name("toy")
    # An engine that died without letting go (killed, or its storage failed).
    assert storage.claim_run_engine(record.id, _dead_token(), expected=None)
    storage.set_run_status(record.id, RunStatus.RUNNING)
    shown, listed, info = _status(url, tmp_path)
    assert "running (engine dead)" in shown and "running (engine dead)" in listed
    assert info["status"] == "running" and info["engine"] == "dead"
    # Resuming takes the run over and drives it to the target stored at creation.
    resumed = cli("resume", "toy", "-q", "--storage", url, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    shown, listed, info = _status(url, tmp_path)
    assert (info["status"], info["engine"], info["generations"]) == ("complete", "none", 2)
    assert "engine" not in shown.split("status", 1)[1].splitlines()[0]


def test_a_running_run_with_an_empty_slot_or_a_silent_engine(
    created: tuple[str, RDBStorage], tmp_path: Path
) -> None:
    url, storage = created
    record = storage.get_run_by_name("toy")
    storage.set_run_status(record.id, RunStatus.RUNNING)
    shown, listed, info = _status(url, tmp_path)
    assert "running (no engine)" in shown and "running (no engine)" in listed
    assert info["engine"] == "none"
    # An engine on another host whose heartbeat is older than the run's grace period.
    storage.update_run_config(record.id, {**record.config, "heartbeat_grace": 0.5})
    assert storage.claim_run_engine(record.id, "elsewhere|1|1|x", expected=None)
    time.sleep(0.6)
    shown, listed, info = _status(url, tmp_path)
    assert "running (engine dead)" in shown and info["engine"] == "dead"


def test_a_live_engine_is_shown_running_and_not_doubled(
    created: tuple[str, RDBStorage], tmp_path: Path
) -> None:
    url, storage = created
    record = storage.get_run_by_name("toy")
    live = new_owner_token()  # this test process: alive
    assert storage.claim_run_engine(record.id, live, expected=None)
    storage.set_run_status(record.id, RunStatus.RUNNING)
    shown, listed, info = _status(url, tmp_path)
    assert info["engine"] == "live" and "engine dead" not in shown + listed
    refused = cli("resume", "toy", "-q", "--storage", url, cwd=tmp_path)
    assert refused.returncode == 1 and "another engine" in refused.stderr
    after = storage.get_run(record.id)
    assert (after.status, after.engine) == (RunStatus.RUNNING, live)
    assert storage.list_variants(record.id)[0].owner is None


def test_a_second_resume_is_refused_and_the_first_engine_stays_in_charge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    args = ["run", "-t", SLOW, "-g", "4", "-w", "1", "-n", "slow", "--subset-size", "10"]
    first = subprocess.Popen(
        [sys.executable, "-m", "hyperagents", *args, "--storage", url, "-q"],
        cwd=tmp_path,
        env=cli_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    storage = RDBStorage(url)
    try:
        deadline = time.time() + 120
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
            pytest.fail("generation 2 never started")
        holder = storage.get_run_by_name("slow").engine
        assert holder is not None and holder.split("|")[1] == str(first.pid)
        doubled = cli("resume", "slow", "-q", "--storage", url, cwd=tmp_path)
        assert doubled.returncode == 1, doubled.stdout + doubled.stderr
        assert "being driven by another engine" in doubled.stderr
        run = storage.get_run_by_name("slow")
        assert (run.status, run.engine) == (RunStatus.RUNNING, holder)
        kinds = [e.kind for e in storage.list_events(run.id) if e.kind.startswith("run.")]
        assert kinds == ["run.created", "run.started"]
        # The engine is still the run's: a stop reaches it.
        stopped = cli("stop", "slow", "--storage", url, cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, out + err
        run = storage.get_run_by_name("slow")
        assert (run.status, run.engine) == (RunStatus.STOPPED, None)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        storage.close()

"""SIGTERM (``kill``, ``timeout``) stops ``run`` and ``resume`` as Ctrl-C does: the engine
finishes its work in flight and lets go, the command says how to resume and exits with 143, and
the run is shown stopped, not running. ``stop`` on a run whose engine died says so."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperagents.cli._drive import terminate_as_interrupt
from hyperagents.runs import Run, RunConfig
from hyperagents.storages import RDBStorage, RunStatus

from cli_helpers import cli, cli_env

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


def _terminate_once_busy(
    args: list[str], url: str, cwd: Path, *, done_before: int
) -> subprocess.CompletedProcess[str]:
    """Start the command, SIGTERM it once two more generations are recorded; its outcome."""
    engine = subprocess.Popen(
        [sys.executable, "-m", "hyperagents", *args, "--storage", url],
        cwd=cwd,
        env=cli_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    storage = RDBStorage(url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                run = storage.get_run_by_name("t")
                done = [v for v in storage.list_variants(run.id) if v.state.is_terminal]
                if run.engine is not None and len(done) >= done_before + 2:
                    break
            except Exception:  # the run is not created yet
                pass
            time.sleep(0.05)
        else:
            engine.kill()
            pytest.fail("the run never got going: " + engine.communicate()[1])
        engine.send_signal(signal.SIGTERM)
        out, err = engine.communicate(timeout=120)
        return subprocess.CompletedProcess(engine.args, engine.returncode, out, err)
    finally:
        if engine.poll() is None:
            engine.kill()
        storage.close()


def _assert_stopped_cleanly(proc: subprocess.CompletedProcess[str], url: str, cwd: Path) -> int:
    """Exit code, message, and a stopped run that nobody holds; return its variants' count."""
    assert proc.returncode == 143, proc.stdout + proc.stderr
    assert "terminated (SIGTERM): continue with hyperagents resume t" in proc.stderr
    shown = cli("status", "t", "--storage", url, cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    status_line = shown.stdout.split("status", 1)[1].splitlines()[0]
    assert "stopped" in status_line and "running" not in status_line
    listed = cli("runs", "--storage", url, cwd=cwd).stdout
    assert "stopped" in listed and "running" not in listed
    storage = RDBStorage(url)
    try:
        run = storage.get_run_by_name("t")
        assert (run.status, run.engine) == (RunStatus.STOPPED, None)
        last = storage.list_events(run.id, newest_first=True, limit=1)[0]
        assert (last.kind, last.message) == ("run.stopped", "interrupted")
        variants = storage.list_variants(run.id)
        assert all(v.state.is_terminal for v in variants)  # the work in flight was finished
        return len(variants)
    finally:
        storage.close()


def test_sigterm_stops_run_and_resume_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = ["run", "-t", TOY, "-g", "100000", "-w", "1", "-n", "t", "--subset-size", "10", "-q"]
    proc = _terminate_once_busy(run, url, tmp_path, done_before=0)
    count = _assert_stopped_cleanly(proc, url, tmp_path)
    resume = ["resume", "t", "-w", "1", "-q"]
    proc = _terminate_once_busy(resume, url, tmp_path, done_before=count)
    assert _assert_stopped_cleanly(proc, url, tmp_path) >= count + 2


def test_sigterm_stops_an_experiment_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    command = [sys.executable, "-m", "hyperagents", "experiment", "-t", TOY, "-n", "x", "-q"]
    command += ["--modes", "hyperagent", "--seeds", "2", "-g", "100000", "-w", "2"]
    engine = subprocess.Popen(
        [*command, "--storage", url], cwd=tmp_path, env=cli_env(), text=True, stderr=subprocess.PIPE
    )
    storage = RDBStorage(url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                runs = [r for r in storage.list_runs() if r.name.startswith("x-")]
                if len(runs) == 2 and all(len(storage.list_variants(r.id)) > 2 for r in runs):
                    break
            except Exception:  # the experiment has not created its runs yet
                pass
        engine.send_signal(signal.SIGTERM)
        _, err = engine.communicate(timeout=120)
        assert engine.returncode == 143, err
        assert "terminated (SIGTERM): run the same command again to continue" in err
        for run in storage.list_runs():
            assert (run.status, run.engine) == (RunStatus.STOPPED, None), run.name
    finally:
        if engine.poll() is None:
            engine.kill()
        storage.close()


def test_terminate_as_interrupt_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with terminate_as_interrupt() as received:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in this thread before the sleep ends
        assert received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == before


# -- stop on a run nobody drives --------------------------------------------------------------
def _dead_token() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}|{proc.pid}|123|dead"


@pytest.mark.parametrize("holder", ["dead", "none"])
def test_stop_says_when_no_engine_drives_the_run(tmp_path: Path, holder: str) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = RDBStorage(url)
    Run.create(task=TOY, name="t", storage=storage, config=RunConfig.parse({}), generations=2)
    record = storage.get_run_by_name("t")
    if holder == "dead":  # an engine killed without letting go
        assert storage.claim_run_engine(record.id, _dead_token(), expected=None)
    storage.set_run_status(record.id, RunStatus.RUNNING)
    stopped = cli("stop", "t", "--storage", url, cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    why = " (its engine is dead)" if holder == "dead" else ""
    assert (
        f"t: no engine drives it{why}: it is marked stopped; `hyperagents resume t` continues it"
        in " ".join(stopped.stderr.split())
    )
    assert "finishes the work in flight" not in stopped.stderr
    after = storage.get_run(record.id)
    assert (after.status, after.engine) == (RunStatus.STOPPED, None)
    shown = cli("status", "t", "--storage", url, cwd=tmp_path).stdout
    assert shown.split("status", 1)[1].splitlines()[0].split() == ["│", "stopped", "│"]
    storage.close()

"""Process cleanup: a run's process group, and what escaped it, die with the run."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hyperagents.sandbox._cleanup import (
    kill_group,
    kill_processes_in,
    processes_in,
    processes_of,
)
from hyperagents.testing.hostile import stray_processes


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _sleeper(token: str) -> str:
    return f"import time; time.sleep(600)  # {token}"


def test_kill_group_kills_the_leader_and_its_children() -> None:
    token = secrets.token_hex(8)
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {_sleeper(token)!r}])\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    try:
        _until(lambda: len(stray_processes(token=token)) == 1)
        kill_group(proc.pid)
        assert proc.wait(timeout=30) == -9
        _until(lambda: stray_processes(token=token) == [])
    finally:
        proc.kill()
        proc.wait()
    kill_group(proc.pid)  # already gone: nothing raised


def test_what_left_the_group_is_found_by_its_directory(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "sub").mkdir(parents=True)
    token = secrets.token_hex(8)
    # Its own session, started in a directory below the workspace: only its cwd gives it away.
    escaped = subprocess.Popen(
        [sys.executable, "-c", _sleeper(token)], cwd=workspace / "sub", start_new_session=True
    )
    elsewhere = subprocess.Popen([sys.executable, "-c", _sleeper(token)], cwd=tmp_path)
    try:
        assert escaped.pid in processes_in(workspace)
        assert elsewhere.pid not in processes_in(workspace)
        assert kill_processes_in(workspace) >= 1
        assert escaped.wait(timeout=30) == -9
        assert elsewhere.poll() is None
    finally:
        for proc in (escaped, elsewhere):
            proc.kill()
            proc.wait()


def test_processes_are_found_by_uid_never_this_one_by_directory(tmp_path: Path) -> None:
    assert os.getpid() in processes_of(os.getuid())
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert os.getpid() not in processes_in(tmp_path)
    finally:
        os.chdir(here)

"""Engines in processes of their own: how a run is driven in the background.

A detached engine is ``python -m hyperagents resume`` started in a new session against a shared
storage: it keeps going when the process that started it (the dashboard) stops, and that
process never runs agent code. Its command line is built here, and only here, from a
:class:`~hyperagents.runs.ResumeRequest` (:func:`engine_command`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperagents.exceptions import RunStateError
from hyperagents.runs._requests import ResumeRequest
from hyperagents.storages import STORAGE_ENV_VAR, RunRecord

__all__ = ["NOT_SHARED", "EngineLauncher", "engine_command"]

#: Seconds a freshly started engine is watched for an immediate failure (a bad option, a task
#: that does not load…), which is then reported to the person who asked.
_STARTUP_WATCH = 1.5
#: Environment variables an engine process must not inherit.
_PRIVATE_ENV = ("HYPERAGENTS_DASHBOARD_TOKEN",)
#: Why runs cannot be driven in the background over a storage no other process can open.
NOT_SHARED = (
    "this dashboard's storage lives in its own process: runs cannot be driven from here "
    "(start the dashboard with --storage sqlite:///FILE or a PostgreSQL URL)"
)


def engine_command(run: RunRecord, request: ResumeRequest) -> list[str]:
    """The command line of an engine process that resumes ``run`` as ``request`` asks.

    The run is named by its (unique) name after ``--``, so it is never taken for an option.
    Budgets are not on it: the caller merges them into the stored config first (see
    :func:`~hyperagents.runs.merge_budgets`). Nor is the storage URL: it travels in the
    environment, so that a password in it stays out of ``ps``.
    """
    command = [sys.executable, "-m", "hyperagents", "resume", "-q"]
    if request.generations is not None:
        command += ["--generations", str(request.generations)]
    if request.workers is not None:
        command += ["--workers", str(request.workers)]
    if request.timeout is not None:
        command += ["--timeout", repr(request.timeout)]
    if request.task is not None:
        command += ["--task", request.task]
    if request.join:
        command += ["--join"]
    return [*command, "--", run.name]


@dataclass
class _Engine:
    run: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.time)


class EngineLauncher:
    """Starts engine processes (:func:`engine_command`) against one storage URL and keeps
    track of those still running.

    Args:
        storage_url: The storage the engines open (None: runs cannot be driven).
        log_dir: Where each engine writes its output (default: a new temporary directory).
    """

    def __init__(self, storage_url: str | None, log_dir: Path | None = None) -> None:
        self._url = storage_url
        self._log_dir = log_dir
        self._engines: list[_Engine] = []
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether runs can be driven: another process can open the storage."""
        url = self._url
        if url is None or url == "memory" or ":memory:" in url:
            return False
        return not (url.startswith("sqlite") and url.split("?")[0].rstrip("/").endswith(":"))

    def _logs(self) -> Path:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="hyperagents-dashboard-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self._log_dir

    def launch(self, run: RunRecord, request: ResumeRequest) -> int:
        """Start an engine driving ``run`` as ``request`` asks; return its process id.

        Raises:
            RunStateError: The storage is not shared with other processes, or the engine
                failed at once (its error message is given).
        """
        if not self.available:
            raise RunStateError(NOT_SHARED)
        assert self._url is not None
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env[STORAGE_ENV_VAR] = self._url
        log = self._logs() / f"run-{run.id}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        with open(log, "wb") as sink:
            process = subprocess.Popen(
                engine_command(run, request),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives its starter, and its Ctrl-C
                close_fds=True,
            )
        with self._lock:
            self._engines.append(_Engine(run.name, process, log))
        threading.Thread(target=process.wait, name="hyperagents-engine-reaper", daemon=True).start()
        try:
            code = process.wait(timeout=_STARTUP_WATCH)
        except subprocess.TimeoutExpired:
            return process.pid
        if code != 0:
            said = _last_error(log)
            raise RunStateError(f"the engine for {run.name!r} stopped at once: {said}")
        return process.pid

    def running(self) -> list[dict[str, Any]]:
        """Engines started by this launcher that still run."""
        with self._lock:
            self._engines = [e for e in self._engines if e.process.poll() is None]
            return [
                {"run": e.run, "pid": e.process.pid, "started": e.started, "log": str(e.log)}
                for e in self._engines
            ]


def _last_error(log: Path) -> str:
    """The engine's error message (its last ``error:`` line), else its last line."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    for line in reversed(lines):
        if line.strip().startswith("error:"):
            return line.strip()[len("error:") :].strip()
    return lines[-1].strip()[:500] if lines else "no output"

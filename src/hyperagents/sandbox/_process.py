"""The ``process`` sandbox: a separate, resource-limited process with a scrubbed environment."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._base import Limits, Outcome, SandboxResult

__all__ = ["ProcessSandbox", "harness_path", "scrubbed_environment"]

#: Environment variables passed to sandboxed code; everything else (API keys…) is dropped.
_ENV_KEEP = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def harness_path() -> Path:
    """Filesystem path of the harness script run inside the sandbox."""
    return Path(str(resources.files("hyperagents.sandbox").joinpath("_harness.py")))


def scrubbed_environment(workspace: Path) -> dict[str, str]:
    """The whole environment a sandboxed process gets: no credentials, no user settings."""
    env = dict(_ENV_KEEP)
    env.update(
        HOME=str(workspace),
        TMPDIR=str(workspace),
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONIOENCODING="utf-8",
    )
    env.update(dict.fromkeys(_THREAD_VARS, "1"))
    return env


class _CappedReader(threading.Thread):
    """Drains a pipe into memory up to a cap (the rest is read and dropped)."""

    def __init__(self, stream: IO[bytes], cap: int) -> None:
        super().__init__(daemon=True)
        self._stream, self._cap = stream, cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                chunk = self._stream.read1(65536) if hasattr(self._stream, "read1") else b""
                if not chunk:
                    break
                if self.size < self._cap:
                    keep = chunk[: self._cap - self.size]
                    self.chunks.append(keep)
                    self.size += len(keep)
                    if len(keep) < len(chunk):
                        self.truncated = True
                else:
                    self.truncated = True

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class ProcessSandbox:
    """Runs the harness in a child process in its own session with rlimits and a hard kill.

    The child gets a scrubbed environment (no API keys or user settings), the workspace as its
    current directory and home, and limits on CPU time, address space, process count and file
    size that the harness applies to itself before any agent code is imported. The whole process
    group is killed at the wall-clock limit and again after the run, so nothing it started in
    its group outlives it. Isolation of the filesystem and network is *not* provided by this
    sandbox (see the ``bwrap`` sandbox).

    Args:
        python: Interpreter to run (default: the engine's own).
    """

    name = "process"

    def __init__(self, *, python: str | None = None) -> None:
        self._python = python or sys.executable

    def run(self, workspace: Path, request: dict[str, Any], *, limits: Limits) -> SandboxResult:
        """Run one harness action; see :class:`~hyperagents.sandbox.Sandbox`.

        Raises:
            SandboxError: The workspace is missing or the interpreter cannot start.
        """
        workspace = Path(workspace)
        if not workspace.is_dir():
            raise SandboxError(f"workspace {workspace} does not exist")
        cpu = limits.cpu_time if limits.cpu_time is not None else math.ceil(limits.wall_time) + 1
        payload = dict(request)
        payload["limits"] = {
            "cpu_time": cpu,
            "memory_mb": limits.memory_mb,
            "max_processes": limits.max_processes,
            "max_file_size_mb": limits.max_file_size_mb,
        }
        try:
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"request is not JSON-serialisable: {exc}") from exc
        read_fd, write_fd = os.pipe()
        argv = [self._python, "-I", str(harness_path()), str(write_fd)]
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=workspace,
                env=scrubbed_environment(workspace),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            raise SandboxError(f"cannot start sandboxed interpreter {self._python}: {exc}") from exc
        os.close(write_fd)
        assert proc.stdin and proc.stdout and proc.stderr
        result_stream = os.fdopen(read_fd, "rb")
        readers = [
            _CappedReader(proc.stdout, limits.max_output_bytes),
            _CappedReader(proc.stderr, limits.max_output_bytes),
            _CappedReader(result_stream, limits.max_result_bytes),
        ]
        for reader in readers:
            reader.start()
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
            _kill_group(proc.pid)

        timer = threading.Timer(limits.wall_time, kill_on_timeout)
        timer.daemon = True
        timer.start()
        writer = threading.Thread(target=_feed, args=(proc.stdin, body), daemon=True)
        writer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError as exc:  # pragma: no cover - would be a bug in the engine
            raise SandboxError(f"lost the sandboxed process: {exc}") from exc
        finally:
            timer.cancel()
            # Whatever the child left in its group (daemonised helpers…) dies with it.
            _kill_group(proc.pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        for reader in readers:
            reader.join(timeout=5.0)
        with contextlib.suppress(OSError):
            result_stream.close()
        exit_code = proc.returncode
        cpu_used = usage.ru_utime + usage.ru_stime
        peak_mb = usage.ru_maxrss / 1024.0
        stdout = readers[0].data.decode("utf-8", "replace")
        stderr = readers[1].data.decode("utf-8", "replace")
        messages, garbage = _parse_messages(readers[2].data)
        return _classify(
            messages=messages,
            garbage=garbage or readers[2].truncated,
            timed_out=timed_out.is_set(),
            exit_code=exit_code,
            cpu_used=cpu_used,
            cpu_limit=cpu,
            limits=limits,
            stdout=stdout,
            stderr=stderr,
            wall=wall,
            peak_mb=peak_mb,
        )


def _feed(stream: IO[bytes], body: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(body)
    with contextlib.suppress(OSError, ValueError):
        stream.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parse_messages(data: bytes) -> tuple[list[dict[str, Any]], bool]:
    lines = [line for line in data.split(b"\n") if line.strip()]
    try:  # fast path: one parse for the whole stream
        batch = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        batch = None
    if isinstance(batch, list) and all(
        isinstance(m, dict) and isinstance(m.get("type"), str) for m in batch
    ):
        return batch, False
    messages: list[dict[str, Any]] = []
    garbage = False
    for line in lines:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            garbage = True
            continue
        if isinstance(message, dict) and isinstance(message.get("type"), str):
            messages.append(message)
        else:
            garbage = True
    return messages, garbage


def _classify(
    *,
    messages: list[dict[str, Any]],
    garbage: bool,
    timed_out: bool,
    exit_code: int,
    cpu_used: float,
    cpu_limit: float,
    limits: Limits,
    stdout: str,
    stderr: str,
    wall: float,
    peak_mb: float,
) -> SandboxResult:
    final = next((m for m in reversed(messages) if m["type"] in ("result", "error")), None)
    common: dict[str, Any] = {
        "messages": tuple(messages),
        "stdout": stdout,
        "stderr": stderr,
        "exit_code": exit_code,
        "wall": wall,
        "cpu": cpu_used,
        "peak_memory_mb": peak_mb,
    }
    if timed_out:
        reason = f"timeout: killed after {limits.wall_time:g} s wall-clock"
        return SandboxResult(Outcome.TIMEOUT, reason, **common)
    if exit_code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu_used >= cpu_limit - 0.5:
        reason = f"timeout: CPU-time limit of {cpu_limit:g} s exceeded"
        return SandboxResult(Outcome.TIMEOUT, reason, **common)
    if final is not None and final["type"] == "error":
        kind = final.get("kind", "exception")
        text = str(final.get("error", "")).strip()
        last = text.splitlines()[-1] if text else "error"
        if kind == "memory" or last.startswith("MemoryError"):
            reason = f"memory: ran out of memory (limit {limits.memory_mb} MiB)"
            return SandboxResult(Outcome.MEMORY, reason, **common)
        if kind == "output":
            return SandboxResult(Outcome.INVALID_OUTPUT, f"invalid output: {last}", **common)
        return SandboxResult(
            Outcome.ERROR, f"exception: {last}"[:500], extra={"traceback": text}, **common
        )
    if exit_code != 0:
        if exit_code < 0:
            name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else "?"
            reason = f"crash: killed by signal {-exit_code} ({name})"
        else:
            tail = stderr.strip().splitlines()[-1:] or [""]
            reason = f"crash: exit code {exit_code}" + (f": {tail[0][:300]}" if tail[0] else "")
        if "MemoryError" in stderr[-2000:]:
            reason = f"memory: ran out of memory (limit {limits.memory_mb} MiB)"
            return SandboxResult(Outcome.MEMORY, reason, **common)
        return SandboxResult(Outcome.CRASH, reason, **common)
    if final is None:
        what = "malformed messages" if garbage else "no result"
        return SandboxResult(Outcome.INVALID_OUTPUT, f"invalid output: {what}", **common)
    return SandboxResult(Outcome.OK, "", result=final.get("value"), **common)

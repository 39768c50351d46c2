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

__all__ = ["ProcessSandbox", "harness_path", "kill_user_processes", "scrubbed_environment"]

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


class _UidPool:
    """Unprivileged uids lent to sandboxed runs, one per concurrent run.

    Each engine process takes its own block (derived from its pid) so that engines sharing a
    machine do not share ids: a run's id is then its own, which makes the per-user process limit
    a per-run limit and lets the ``process`` sandbox find and kill everything the run started.
    """

    def __init__(self, size: int = 64) -> None:
        base = 200_000 + (os.getpid() % 16_384) * size
        self._free = list(range(base + size - 1, base - 1, -1))
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            if not self._free:
                raise SandboxError("no free sandbox user id (too many concurrent runs)")
            return self._free.pop()

    def release(self, uid: int) -> None:
        with self._lock:
            self._free.append(uid)


def _interpreter_dirs(python: str) -> list[str]:
    """Directories a sandboxed interpreter reads: its prefixes (stdlib, site-packages)."""
    import sysconfig

    dirs = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        dirs.add(os.path.realpath(os.path.dirname(os.path.dirname(python))))
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.realpath(path))
    return sorted(dirs)


def _usable_by_others(path: Path) -> bool:
    """Whether a user with no special rights can reach and read ``path``."""
    import stat

    try:
        current = path.resolve()
        mode = current.stat().st_mode
        if not (mode & stat.S_IROTH and mode & stat.S_IXOTH):
            return False
        for parent in current.parents:
            if not parent.stat().st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as handle:
                for line in handle:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except (OSError, ValueError):
            continue
    return pids


def kill_user_processes(uid: int, *, rounds: int = 5) -> int:
    """SIGKILL every process whose real uid is ``uid``; return how many were found."""
    found = 0
    for _ in range(rounds):
        pids = _processes_of(uid)
        if not pids:
            break
        found += len(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return found


class _Launcher:
    """Shared machinery: start the harness, feed the request, enforce the wall clock, collect
    output and classify the outcome. Subclasses say how the process is started."""

    name = "launcher"

    def __init__(self, *, python: str | None = None, isolate_user: bool | None = None) -> None:
        self._python = python or sys.executable
        privileged = hasattr(os, "geteuid") and os.geteuid() == 0
        if isolate_user is None:
            isolate_user = privileged and self._can_switch_user()
        if isolate_user and not privileged:
            raise SandboxError("isolate_user needs the engine to run as root")
        self._isolate_user = isolate_user
        self._uids = _UidPool() if self._isolate_user else None

    #: Whether the sandbox itself (not the harness) gives the code an empty network namespace.
    isolates_network = False

    @property
    def isolates_user(self) -> bool:
        """Whether agent code runs under a private unprivileged uid."""
        return self._isolate_user

    def _can_switch_user(self) -> bool:
        """Whether code running under another uid can still use the interpreter."""
        return True

    # -- hooks --------------------------------------------------------------------------------
    def _command(self, workspace: Path, harness: Path, result_fd: int) -> tuple[list[str], Path]:
        """Return (argv, cwd) starting the harness for ``workspace``."""
        raise NotImplementedError

    def _environment(self, workspace: Path) -> dict[str, str]:
        return scrubbed_environment(workspace)

    def _request_extras(self) -> dict[str, Any]:
        return {}

    def _after(self, uid: int | None) -> None:
        """Clean up after the process exited (the process group is already killed)."""

    # -- the run --------------------------------------------------------------------------------
    def run(self, workspace: Path, request: dict[str, Any], *, limits: Limits) -> SandboxResult:
        """Run one harness action; see :class:`~hyperagents.sandbox.Sandbox`.

        Raises:
            SandboxError: The workspace is missing, the sandbox cannot start or cannot isolate.
        """
        workspace = Path(workspace)
        if not workspace.is_dir():
            raise SandboxError(f"workspace {workspace} does not exist")
        uid = self._uids.acquire() if self._uids is not None else None
        try:
            if uid is not None:
                for root, dirs, files in os.walk(workspace):
                    for name in (*dirs, *files):
                        os.lchown(os.path.join(root, name), uid, uid)
                os.chown(workspace, uid, uid)
                # Traversable by the sandbox's own (capability-less) root before it switches.
                os.chmod(workspace, 0o755)
            return self._run(workspace, request, limits, uid)
        finally:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)

    def _run(
        self, workspace: Path, request: dict[str, Any], limits: Limits, uid: int | None
    ) -> SandboxResult:
        cpu = limits.cpu_time if limits.cpu_time is not None else math.ceil(limits.wall_time) + 1
        payload = dict(request)
        nproc = limits.max_processes
        if uid is None and hasattr(os, "getuid") and os.getuid() != 0:
            # The kernel counts every process of the user: leave room for those already running.
            nproc += len(_processes_of(os.getuid()))
        payload["limits"] = {
            "cpu_time": cpu,
            "memory_mb": limits.memory_mb,
            "max_processes": nproc,
            "max_file_size_mb": limits.max_file_size_mb,
        }
        payload["user"] = uid
        payload.update(self._request_extras())
        try:
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"request is not JSON-serialisable: {exc}") from exc
        read_fd, write_fd = os.pipe()
        argv, cwd = self._command(workspace, harness_path(), write_fd)
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self._environment(workspace),
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
            raise SandboxError(f"cannot start the {self.name} sandbox ({argv[0]}): {exc}") from exc
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
            self._after(uid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        for reader in readers:
            reader.join(timeout=5.0)
        with contextlib.suppress(OSError):
            result_stream.close()
        stdout = readers[0].data.decode("utf-8", "replace")
        stderr = readers[1].data.decode("utf-8", "replace")
        messages, garbage = _parse_messages(readers[2].data)
        for message in messages:
            if message.get("type") == "error" and message.get("kind") == "isolation":
                raise SandboxError(f"{self.name} sandbox: {message.get('error')}")
        isolation = next((m for m in messages if m.get("type") == "isolation"), None)
        if isolation is None and proc.returncode != 0 and not timed_out.is_set():
            self._check_started(proc.returncode, stderr)
        result = _classify(
            messages=[m for m in messages if m.get("type") != "isolation"],
            garbage=garbage or readers[2].truncated,
            timed_out=timed_out.is_set(),
            exit_code=self._exit_code(proc.returncode),
            cpu_used=usage.ru_utime + usage.ru_stime,
            cpu_limit=cpu,
            limits=limits,
            stdout=stdout,
            stderr=stderr,
            wall=wall,
            peak_mb=usage.ru_maxrss / 1024.0,
        )
        if readers[0].truncated or readers[1].truncated:
            result.extra["output_truncated"] = {
                "stdout_bytes_kept": readers[0].size,
                "stderr_bytes_kept": readers[1].size,
                "stdout_truncated": readers[0].truncated,
                "stderr_truncated": readers[1].truncated,
            }
        if isolation is not None:
            report = {k: v for k, v in isolation.items() if k != "type"}
            report["network"] = bool(report.get("network")) or self.isolates_network
            result.extra["isolation"] = report
        return result

    def _exit_code(self, code: int) -> int:
        return code

    def _check_started(self, code: int, stderr: str) -> None:
        """Raise SandboxError when the sandbox itself failed before the harness ran."""


class ProcessSandbox(_Launcher):
    """Runs the harness in a child process in its own session with rlimits and a hard kill.

    The child gets a scrubbed environment (no API keys or user settings), the workspace as its
    current directory and home, and limits on CPU time, address space, process count and file
    size that the harness applies to itself before any agent code is imported. The whole process
    group is killed at the wall-clock limit and again after the run.

    When the engine runs as root, the harness also moves into an empty network namespace and
    switches to an unprivileged user id of its own before importing agent code; after the run
    every process of that id is killed (so a child that left the process group with ``setsid``
    dies too). Without root there is no network or filesystem isolation and escaped children may
    survive: use the ``bwrap`` sandbox.

    Args:
        python: Interpreter to run (default: the engine's own).
        isolate_user: Switch to a private uid (default: when the engine runs as root).
    """

    name = "process"

    def _can_switch_user(self) -> bool:
        return all(_usable_by_others(Path(p)) for p in _interpreter_dirs(self._python))

    def _command(self, workspace: Path, harness: Path, result_fd: int) -> tuple[list[str], Path]:
        return [self._python, "-I", str(harness), str(result_fd)], workspace

    def _request_extras(self) -> dict[str, Any]:
        return {"unshare_network": self._isolate_user}

    def _after(self, uid: int | None) -> None:
        if uid is not None:
            kill_user_processes(uid)

    def _check_started(self, code: int, stderr: str) -> None:
        if code == 127 or ("No such file or directory" in stderr[-500:] and code == 2):
            raise SandboxError(f"the sandboxed interpreter did not start: {stderr.strip()[-300:]}")


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

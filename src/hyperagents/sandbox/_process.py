"""The ``process`` sandbox: a separate, resource-limited process with a scrubbed environment."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._base import Limits, SandboxResult
from hyperagents.sandbox._hiding import hidden_locations, plan_hiding
from hyperagents.sandbox._messages import Received, classify
from hyperagents.sandbox._monitor import UsageProbe
from hyperagents.sandbox._readers import CappedReader, ChannelReader, LLMHandler, StatusReader
from hyperagents.sandbox._workspace import (
    remove_tree,
    sweep_stale_workspaces,
    workspace_base,
    workspace_prefix,
)

logger = logging.getLogger("hyperagents")

__all__ = [
    "UNSAFE_PROCESS_SANDBOX_ENV",
    "ProcessSandbox",
    "harness_path",
    "kill_user_processes",
    "scrubbed_environment",
    "unsafe_process_sandbox_allowed",
]

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
    # A virtual environment is found by its pyvenv.cfg next to the (unresolved) executable's
    # directory: two venvs of one base interpreter resolve to the same binary.
    venv = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    if os.path.isfile(os.path.join(venv, "pyvenv.cfg")):
        dirs.add(os.path.realpath(venv))
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.realpath(path))
    return sorted(dirs)


def _usable_by_others(path: Path, *, ancestors: bool = True) -> bool:
    """Whether a user with no special rights can reach and read ``path`` (``ancestors``:
    False checks the directory itself only, for one the harness makes reachable)."""
    import stat

    try:
        current = path.resolve()
        mode = current.stat().st_mode
        if not (mode & stat.S_IROTH and mode & stat.S_IXOTH):
            return False
        for parent in current.parents if ancestors else ():
            if not parent.stat().st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


@functools.cache
def _mount_namespaces_work(python: str) -> bool:
    """Whether the harness (run as root by ``python``) can make a private mount namespace."""
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None, use_errno=True).unshare(0x20000))"
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", probe], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


#: The environment variable (``1``) that lets the process sandbox run agent code as root.
UNSAFE_PROCESS_SANDBOX_ENV = "HYPERAGENTS_UNSAFE_PROCESS_SANDBOX"


def unsafe_process_sandbox_allowed() -> bool:
    """Whether :data:`UNSAFE_PROCESS_SANDBOX_ENV` opts in to the unisolated process sandbox."""
    value = os.environ.get(UNSAFE_PROCESS_SANDBOX_ENV, "").strip().lower()
    return value in ("1", "true", "yes", "on")


def _proc_entries() -> list[str]:
    """Process ids listed in /proc. Listing /proc can fail transiently while processes come and
    go (seen as ENOTDIR here): retry, then give up (every caller is best effort)."""
    for attempt in range(5):
        try:
            return [entry for entry in os.listdir("/proc") if entry.isdigit()]
        except OSError:
            time.sleep(0.005 * (attempt + 1))
    return []


def _processes_of(uid: int) -> list[int]:
    """Processes whose real uid is ``uid``."""
    pids = []
    for entry in _proc_entries():
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


def _processes_in(directory: Path) -> list[int]:
    """Processes (not this one) whose working directory is inside ``directory``."""
    target = os.path.realpath(directory)
    me = os.getpid()
    pids = []
    for entry in _proc_entries():
        if int(entry) == me:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == target or cwd.startswith(target + "/"):
            pids.append(int(entry))
    return pids


def _kill_rounds(find: Callable[[], list[int]], rounds: int) -> int:
    """SIGKILL what ``find`` returns until it returns nothing (children may still be forking
    when the first round runs); return how many were found in all."""
    found = 0
    for _ in range(rounds):
        pids = find()
        if not pids:
            break
        found += len(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return found


def kill_processes_in(directory: Path, *, rounds: int = 3) -> int:
    """SIGKILL processes of this user whose working directory is inside ``directory``."""
    return _kill_rounds(lambda: _processes_in(directory), rounds)


def kill_user_processes(uid: int, *, rounds: int = 5) -> int:
    """SIGKILL every process whose real uid is ``uid``; return how many were found."""
    return _kill_rounds(lambda: _processes_of(uid), rounds)


@dataclass
class _Started:
    """A sandboxed process that has been started and waits for (or runs) its request."""

    proc: subprocess.Popen[bytes]
    stdout: CappedReader
    stderr: CappedReader
    channel: ChannelReader
    status: StatusReader
    probe: UsageProbe
    streams: tuple[IO[bytes], ...]  #: the engine's ends of the pipes, closed once after use
    uid: int | None
    directory: Path  #: the directory the process sees as its workspace
    owned_root: Path | None = None  #: a standby's private directory, removed after use

    @property
    def readers(self) -> tuple[CappedReader, ...]:
        return (self.stdout, self.stderr, self.channel, self.status)


class _Launcher:
    """Shared machinery: start the harness, feed the request, enforce the wall clock, collect
    output and classify the outcome. Subclasses say how the process is started.

    Warm standbys: with ``warm=N`` the sandbox keeps up to N processes started ahead of time
    (interpreter up, harness and ``preload`` modules imported, isolation not yet applied), each
    waiting for one request in a private workspace directory of its own. A run takes one, moves
    the caller's workspace files in, sends the request, and moves the files back afterwards; a
    replacement is started in the background. Each process still serves exactly one request,
    so runs never share a process.
    """

    name = "launcher"

    def __init__(
        self,
        *,
        python: str | None = None,
        isolate_user: bool | None = None,
        warm: int = 0,
        preload: tuple[str, ...] = (),
    ) -> None:
        # Lexically normalised (no "..": inside a sandbox the path is resolved from scratch), but
        # not resolved: a virtual environment is found beside the unresolved executable.
        self._python = os.path.abspath(python or sys.executable)
        privileged = hasattr(os, "geteuid") and os.geteuid() == 0
        if isolate_user is None:
            isolate_user = privileged and self._can_switch_user()
        if isolate_user and not privileged:
            raise SandboxError("isolate_user needs the engine to run as root")
        self._isolate_user = isolate_user
        self._privileged = privileged
        self._uids = _UidPool() if self._isolate_user else None
        self._preload = tuple(preload)
        self._warm_target = 0
        self._standbys: list[_Started] = []
        self._standby_lock = threading.Lock()
        self._spawned = threading.Condition(self._standby_lock)
        self._spawning = 0
        self._closed = False
        self._initial_warm = warm  # started by the subclass once it is fully built
        self._spawner: threading.Thread | None = None
        self._spawn_requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        # Workspaces of engines that were killed (nothing else removes them) go now.
        sweep_stale_workspaces()

    #: Whether the sandbox itself (not the harness) gives the code an empty network namespace.
    isolates_network = False
    #: Whether the waited-for process is a monitor whose rusage misses the harness's, so the
    #: harness's usage is read from ``/proc`` while it runs (and an unexplained SIGKILL is the
    #: hard CPU limit, the one thing inside that sends it).
    reports_usage = False

    @property
    def isolates_user(self) -> bool:
        """Whether agent code runs under a private unprivileged uid."""
        return self._isolate_user

    def _can_switch_user(self) -> bool:
        """Whether code running under another uid can still use the interpreter."""
        return True

    # -- hooks --------------------------------------------------------------------------------
    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        """Return (argv, cwd) starting the harness for ``workspace`` (``fds``: its channels)."""
        raise NotImplementedError

    def _environment(self, workspace: Path) -> dict[str, str]:
        return scrubbed_environment(workspace)

    def _request_extras(self) -> dict[str, Any]:
        return {}

    def _after(self, uid: int | None, directory: Path | None = None) -> None:
        """Clean up after the process exited (the process group is already killed)."""

    # -- warm standbys ----------------------------------------------------------------------------
    def set_warm(self, count: int) -> None:
        """Keep ``count`` processes started ahead of time (0 disables warm starts)."""
        with self._standby_lock:
            self._warm_target = max(0, int(count))
            self._closed = False
            surplus = self._standbys[self._warm_target :]
            del self._standbys[self._warm_target :]
        for standby in surplus:
            self._discard(standby)
        self._replenish()
        if self._warm_target == 0:
            # Off means off: standbys still starting are discarded before this returns, so no
            # idle process (or its directory) outlives the call.
            self._wait_for_spawns(timeout=15.0)

    def close(self) -> None:
        """Stop every standby process (the sandbox stays usable; standbys restart on demand)."""
        with self._standby_lock:
            self._closed = True
            standbys, self._standbys = self._standbys, []
        for standby in standbys:
            self._discard(standby)
        self._wait_for_spawns(timeout=15.0)

    def _replenish(self) -> None:
        with self._standby_lock:
            missing = self._warm_target - len(self._standbys) - self._spawning
            if self._closed or missing <= 0:
                return
            self._spawning += missing
            if self._spawner is None or not self._spawner.is_alive():
                # One long-lived thread starts every standby: bubblewrap's --die-with-parent
                # (PR_SET_PDEATHSIG) fires when the *thread* that started a process exits.
                self._spawner = threading.Thread(
                    target=self._spawn_loop, daemon=True, name="hyperagents-standby"
                )
                self._spawner.start()
        for _ in range(missing):
            self._spawn_requests.put(True)

    def _spawn_loop(self) -> None:
        while self._spawn_requests.get():
            self._spawn_standby()

    def _spawn_standby(self) -> None:
        standby: _Started | None = None
        try:
            with self._standby_lock:  # no longer wanted (closed, or warm starts turned off)
                wanted = not self._closed and len(self._standbys) < self._warm_target
            if wanted:
                standby = self._new_standby()
        except Exception as exc:  # a failed standby only costs a cold start later
            logger.warning("could not start a warm %s sandbox: %s", self.name, exc)
        finally:
            with self._standby_lock:
                keep = (
                    standby is not None
                    and not self._closed
                    and len(self._standbys) < self._warm_target
                )
                if keep and standby is not None:
                    self._standbys.append(standby)
            if standby is not None and not keep:
                self._discard(standby)
            with self._spawned:
                self._spawning -= 1
                self._spawned.notify_all()

    def _new_standby(self) -> _Started:
        root = Path(tempfile.mkdtemp(prefix=workspace_prefix("standby"), dir=workspace_base()))
        directory = root / "ws"
        directory.mkdir()
        uid = self._uids.acquire() if self._uids is not None else None
        try:
            if uid is not None:
                _hand_over(directory, uid)
            standby = self._start(directory, uid, preload=self._preload)
        except BaseException:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)
            remove_tree(root)
            raise
        standby.owned_root = root
        return standby

    def _wait_for_spawns(self, timeout: float) -> None:
        """Wait until no standby is being started or discarded (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._spawned:
            while self._spawning > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._spawned.wait(left)

    def _take_standby(self) -> _Started | None:
        with self._standby_lock:
            while self._standbys:
                standby = self._standbys.pop(0)
                if standby.proc.poll() is None:
                    return standby
                self._discard(standby, locked=True)
        return None

    def _discard(self, standby: _Started, *, locked: bool = False) -> None:
        _kill_group(standby.proc.pid)
        with contextlib.suppress(ChildProcessError, OSError, subprocess.TimeoutExpired):
            standby.proc.wait(timeout=5)
        self._after(standby.uid, standby.directory)
        self._finish_readers(standby)
        with contextlib.suppress(OSError, ValueError):
            if standby.proc.stdin is not None:
                standby.proc.stdin.close()
        if standby.uid is not None and self._uids is not None:
            self._uids.release(standby.uid)
        if standby.owned_root is not None:
            remove_tree(standby.owned_root)

    # -- the run --------------------------------------------------------------------------------
    def run(
        self,
        workspace: Path,
        request: dict[str, Any],
        *,
        limits: Limits,
        llm: LLMHandler | None = None,
    ) -> SandboxResult:
        """Run one harness action; see :class:`~hyperagents.sandbox.Sandbox`.

        Args:
            workspace: The program's files (the process's working directory).
            request: The harness action and its inputs (JSON).
            limits: Resource limits.
            llm: Answers ``llm.complete(...)`` calls made by the sandboxed code (engine side);
                without it such calls get an error reply.

        Raises:
            SandboxError: The workspace is missing, the sandbox cannot start or cannot isolate.
        """
        workspace = Path(workspace)
        if not workspace.is_dir():
            raise SandboxError(f"workspace {workspace} does not exist")
        standby = self._take_standby()
        if standby is not None:
            self._replenish()
            return self._run_warm(standby, workspace, request, limits, llm)
        uid = self._uids.acquire() if self._uids is not None else None
        try:
            if uid is not None:
                _hand_over(workspace, uid)
            started = self._start(workspace, uid)
            return self._finish(started, request, limits, llm)
        finally:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)

    def _run_warm(
        self,
        standby: _Started,
        workspace: Path,
        request: dict[str, Any],
        limits: Limits,
        llm: LLMHandler | None,
    ) -> SandboxResult:
        try:
            _move_entries(workspace, standby.directory)
            if standby.uid is not None:
                _hand_over(standby.directory, standby.uid)
            try:
                return self._finish(standby, request, limits, llm)
            finally:
                _move_entries(standby.directory, workspace)
        finally:
            if standby.uid is not None and self._uids is not None:
                self._uids.release(standby.uid)
            if standby.owned_root is not None:
                remove_tree(standby.owned_root)

    def _start(
        self, directory: Path, uid: int | None, *, preload: tuple[str, ...] = ()
    ) -> _Started:
        read_fd, write_fd = os.pipe()  # sandbox → engine: results, LLM requests
        reply_read, reply_write = os.pipe()  # engine → sandbox: LLM replies
        status_read, status_write = os.pipe()  # harness → engine, closed before agent code
        fds = f"{write_fd},{reply_read},{status_write}"
        argv, cwd = self._command(directory, harness_path(), fds)
        if preload:
            argv.append(",".join(preload))
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self._environment(directory),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd, reply_read, status_write),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            for fd in (read_fd, write_fd, reply_read, reply_write, status_read, status_write):
                os.close(fd)
            raise SandboxError(f"cannot start the {self.name} sandbox ({argv[0]}): {exc}") from exc
        for fd in (write_fd, reply_read, status_write):
            os.close(fd)
        assert proc.stdout and proc.stderr
        result_stream = os.fdopen(read_fd, "rb")
        status_stream = os.fdopen(status_read, "rb")
        # The harness is found when the engine first hears from it (it has isolated itself).
        probe = UsageProbe(resolve=lambda: self._harness_pid(proc.pid))

        channel = ChannelReader(result_stream, reply_write, probe=probe)  # owns reply_write
        status = StatusReader(
            status_stream,
            probe.sample,
            # Where the kernel's account of the waited-for process misses the harness, its
            # usage is also read every 50 ms while it runs (it may exit right after its answer).
            sample=probe.sample if self.reports_usage else None,
            job_over=channel.closed,
        )
        started = _Started(
            proc=proc,
            stdout=CappedReader(proc.stdout),
            stderr=CappedReader(proc.stderr),
            channel=channel,
            status=status,
            probe=probe,
            streams=(proc.stdout, proc.stderr, result_stream, status_stream),
            uid=uid,
            directory=directory,
        )
        for reader in started.readers:
            reader.start()
        return started

    def _harness_pid(self, pid: int) -> int | None:
        """The host pid of the harness process, given the pid that was started."""
        return pid

    def _payload(self, request: dict[str, Any], limits: Limits, uid: int | None) -> bytes:
        """The request as the harness reads it, with its limits and isolation settings.

        Raises:
            SandboxError: The request is not JSON-serialisable.
        """
        cpu = _cpu_limit(limits)
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
        if self.reports_usage:
            payload["await_ack"] = True  # stay until the engine has read its usage from /proc
        payload.update(self._request_extras())
        try:
            return json.dumps(payload, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise SandboxError(f"request is not JSON-serialisable: {exc}") from exc

    def _finish(
        self,
        started: _Started,
        request: dict[str, Any],
        limits: Limits,
        llm: LLMHandler | None = None,
    ) -> SandboxResult:
        proc = started.proc
        started.channel.handler = llm
        started.channel.ack_final = self.reports_usage
        started.stdout.cap = started.stderr.cap = limits.max_output_bytes
        started.channel.cap = limits.max_result_bytes
        try:
            body = self._payload(request, limits, started.uid)
        except SandboxError:
            _kill_group(proc.pid)
            with contextlib.suppress(ChildProcessError):
                proc.wait()
            raise
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
            started.probe.sample()  # the last reading before the kill
            _kill_group(proc.pid)

        start = time.perf_counter()
        timer = threading.Timer(limits.wall_time, kill_on_timeout)
        timer.daemon = True
        timer.start()
        assert proc.stdin is not None
        if len(body) < _PIPE_CAPACITY:
            _feed(proc.stdin, body)  # fits in the pipe: cannot block
        else:
            threading.Thread(target=_feed, args=(proc.stdin, body), daemon=True).start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError as exc:  # pragma: no cover - would be a bug in the engine
            raise SandboxError(f"lost the sandboxed process: {exc}") from exc
        finally:
            timer.cancel()
            started.channel.closed.set()  # the job is over: answer no more LLM requests
            # Whatever the child left in its group (daemonised helpers…) dies with it.
            _kill_group(proc.pid)
            self._after(started.uid, started.directory)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        self._finish_readers(started)
        report = self._isolation_report(started, timed_out.is_set())
        cpu_limit = _cpu_limit(limits)
        cpu_used, peak_mb = self._usage(started, usage)
        received = started.channel.received
        problem = next((r.problem for r in received if r.problem), None)
        if started.channel.truncated:
            problem = problem or f"more than {limits.max_result_bytes} bytes of messages"
        result = classify(
            messages=_measured(received, started.status),
            problem=problem,
            timed_out=timed_out.is_set(),
            exit_code=self._exit_code(proc.returncode),
            cpu_used=cpu_used,
            cpu_limit=cpu_limit,
            limits=limits,
            stdout=started.stdout.data.decode("utf-8", "replace"),
            stderr=started.stderr.data.decode("utf-8", "replace"),
            wall=wall,
            peak_mb=peak_mb,
            cpu_unknown=self.reports_usage,
        )
        self._annotate(result, started, report)
        refused = [r.problem for r in received if r.problem]
        if refused:
            result.extra["refused_messages"] = {"count": len(refused), "first": refused[0]}
        return result

    def _isolation_report(self, started: _Started, timed_out: bool) -> dict[str, Any]:
        """The harness's own status report, read from the pipe the agent never held.

        Raises:
            SandboxError: The harness could not isolate itself, or never got as far as saying
                so (the interpreter or the sandbox did not start): no agent code ran.
        """
        report = started.status.report()
        if report is not None and report.get("type") == "isolation":
            return report
        if report is not None:
            raise SandboxError(f"{self.name} sandbox: {str(report.get('error'))[:500]}")
        code = started.proc.returncode
        stderr = started.stderr.data.decode("utf-8", "replace")
        if not timed_out and code != 0:
            self._check_started(code, stderr)
        tail = stderr.strip().splitlines()[-1:] or [""]
        what = "within the wall-clock limit" if timed_out else f"(exit code {code})"
        raise SandboxError(
            f"the {self.name} sandbox's harness did not start {what}: {tail[0][:300]}".rstrip(": ")
        )

    def _usage(self, started: _Started, usage: Any) -> tuple[float, float]:
        """CPU seconds and peak MiB of the run, measured outside the sandbox."""
        started.probe.sample()
        cpu = started.probe.cpu or 0.0
        peak = started.probe.peak_mb
        if not self.reports_usage:
            # The waited-for process is the harness itself: the kernel's account is complete.
            cpu = max(cpu, usage.ru_utime + usage.ru_stime)
            peak = max(peak, usage.ru_maxrss / 1024.0)
        return cpu, peak

    def _annotate(self, result: SandboxResult, started: _Started, report: dict[str, Any]) -> None:
        stdout, stderr = started.stdout, started.stderr
        if stdout.truncated or stderr.truncated:
            result.extra["output_truncated"] = {
                "stdout_bytes_kept": stdout.size,
                "stderr_bytes_kept": stderr.size,
                "stdout_truncated": stdout.truncated,
                "stderr_truncated": stderr.truncated,
            }
        isolation = {k: v for k, v in report.items() if k != "type"}
        isolation["network"] = bool(isolation.get("network")) or self.isolates_network
        result.extra["isolation"] = isolation

    def _finish_readers(self, started: _Started) -> None:
        """Collect the rest of the output; never wait on a pipe an escaped child holds open."""
        deadline = time.monotonic() + 1.0
        for reader in started.readers:
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        for reader in started.readers:
            if reader.is_alive():
                reader.stop()
        for reader in started.readers:
            # A stopped reader leaves its select() within 0.2 s; wait for it, because closing a
            # descriptor a thread still polls lets it read whatever reuses the number next.
            reader.join(timeout=5.0)
        # Each descriptor is closed exactly once, through its file object: closing the number
        # behind the object's back (and the object again later) would close whichever pipe
        # another thread had opened with that number in between.
        for stream in started.streams:
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def _exit_code(self, code: int) -> int:
        return code

    def _check_started(self, code: int, stderr: str) -> None:
        """Raise SandboxError when the sandbox itself failed before the harness ran."""


def _hand_over(directory: Path, uid: int) -> None:
    """Give the workspace to the sandbox's private uid (readable by its capability-less root)."""
    for root, dirs, files in os.walk(directory):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), uid, uid)
    os.chown(directory, uid, uid)
    os.chmod(directory, 0o755)


def _move_entries(source: Path, target: Path) -> None:
    """Move every entry of ``source`` into ``target`` (renames: same filesystem is fast)."""
    for entry in os.listdir(source):
        shutil.move(os.path.join(source, entry), os.path.join(target, entry))


class ProcessSandbox(_Launcher):
    """Runs the harness in a child process in its own session with rlimits and a hard kill.

    The child gets a scrubbed environment (no API keys or user settings), the workspace as its
    current directory and home, and limits on CPU time, address space, process count and file
    size that the harness applies to itself before any agent code is imported. The whole process
    group is killed at the wall-clock limit and again after the run. The harness drops every
    capability and installs a system-call filter (no new namespaces, mounts, ptrace…).

    When the engine runs as root, the harness isolates itself before importing agent code: an
    empty network namespace, private mount and IPC namespaces (a private, sized ``/tmp`` and
    ``/dev/shm``; directories other users cannot traverse, such as ``/root``, covered by an empty
    tmpfs in which only the interpreter and the workspace are bound again; the hyperagents package
    and the task plug-ins' files covered; a ``/proc`` on which it sees only its own processes)
    and an unprivileged uid of its own; after the run every process of that uid is killed (so a
    child that left the process group with ``setsid`` dies too). It still sees the rest of the
    host's filesystem as any unprivileged user would: use the ``bwrap`` sandbox where you can.

    As root without that private uid (``isolate_user=False``, or an interpreter other users
    cannot read), agent code would keep root: it could read the engine's environment (API keys,
    database passwords) and files, and signal its processes. The sandbox refuses to run so unless
    the caller opts in explicitly (``unsafe=True``, ``HYPERAGENTS_UNSAFE_PROCESS_SANDBOX=1`` or
    ``--unsafe-process-sandbox``); a warning then names what is not isolated. When the engine is
    not root, agent code runs with the engine's own user and rights (the documented fallback).

    Args:
        python: Interpreter to run (default: the engine's own).
        isolate_user: Switch to a private uid (default: when the engine runs as root and the
            interpreter's own directories are readable by other users).
        warm: Processes to keep started ahead of time (see :class:`_Launcher`).
        preload: Modules warm processes import before their request (e.g. ``("numpy",)``).
        hide: Host paths agent code must not see (the run's task), with a private uid; the task
            plug-ins and the hyperagents package are always hidden then.
        unsafe: Allow running agent code as root without a private uid (default: whether
            ``HYPERAGENTS_UNSAFE_PROCESS_SANDBOX`` is ``1``).

    Raises:
        SandboxError: As root without a private uid, and not allowed to run unsafely.
    """

    name = "process"

    def __init__(
        self,
        *,
        python: str | None = None,
        isolate_user: bool | None = None,
        warm: int = 0,
        preload: tuple[str, ...] = (),
        hide: Iterable[str] = (),
        unsafe: bool | None = None,
    ) -> None:
        super().__init__(python=python, isolate_user=isolate_user, warm=warm, preload=preload)
        self._reveal = sorted(
            {*_interpreter_dirs(self._python), os.path.dirname(os.path.abspath(self._python))}
        )
        self._hidden: list[str] = []
        if self._isolate_user:
            planned = plan_hiding(hidden_locations(hide), keep=self._reveal)
            self._hidden = [path for path, _ in planned]
        if self._privileged and not self._isolate_user:
            self._refuse_or_warn(unsafe_process_sandbox_allowed() if unsafe is None else unsafe)
        if warm:
            self.set_warm(warm)

    def _refuse_or_warn(self, allowed: bool) -> None:
        """As root without a private uid: refuse, or warn of everything not isolated."""
        if not self._can_switch_user():
            why = (
                f"the Python installation ({os.path.realpath(sys.base_prefix)}) is not readable "
                "by other users, so the harness cannot switch to a private uid"
            )
        else:
            why = "isolate_user=False keeps agent code as root"
        if not allowed:
            raise SandboxError(
                f"the process sandbox refuses to run agent code as root: {why}. Agent code "
                "could read the engine's environment (API keys, database passwords) and files "
                "and signal its processes. Use the bwrap sandbox (apt-get install bubblewrap), "
                "or opt in to the unsafe mode with --unsafe-process-sandbox or "
                f"{UNSAFE_PROCESS_SANDBOX_ENV}=1"
            )
        logger.warning(
            "UNSAFE process sandbox (opted in): %s. Agent code runs as root (without "
            "capabilities): it can read and write every file root owns (the run database, "
            "credentials), read the engine's environment and command line in /proc (API keys, "
            "database URLs with passwords) and signal the engine's processes; its children that "
            "leave the process group may survive, and the process-count limit does not bind "
            "root. Isolated: the network (own namespace), new namespaces, mounts and ptrace "
            "(system-call filter). Use the bwrap sandbox.",
            why,
        )

    def _can_switch_user(self) -> bool:
        dirs = [Path(p) for p in _interpreter_dirs(self._python)]
        if not all(_usable_by_others(p, ancestors=False) for p in dirs):
            return False
        if all(_usable_by_others(p) for p in dirs):
            return True
        # Above the interpreter lies a directory others cannot traverse (/root/.pyenv…): the
        # harness covers it in a private mount namespace, with only the interpreter bound again.
        return _mount_namespaces_work(self._python)

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        return [self._python, "-I", "-S", str(harness), fds], workspace

    def _request_extras(self) -> dict[str, Any]:
        extras: dict[str, Any] = {"unshare_network": self._privileged}
        if self._isolate_user:
            extras["private_mounts"] = {
                "tmpfs": ["/tmp", "/dev/shm"],
                "reveal": self._reveal,
                "hide": self._hidden,
                "proc": True,
            }
        return extras

    def _after(self, uid: int | None, directory: Path | None = None) -> None:
        if uid is not None:
            kill_user_processes(uid)
        elif directory is not None:
            # Without a private uid, find what escaped the process group by where it runs.
            kill_processes_in(directory)

    def _check_started(self, code: int, stderr: str) -> None:
        if code == 127 or ("No such file or directory" in stderr[-500:] and code == 2):
            raise SandboxError(f"the sandboxed interpreter did not start: {stderr.strip()[-300:]}")


#: Bytes a pipe holds without a reader on Linux (the default size).
_PIPE_CAPACITY = 65536


def _feed(stream: IO[bytes], body: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(body)
    with contextlib.suppress(OSError, ValueError):
        stream.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _cpu_limit(limits: Limits) -> float:
    """The CPU seconds a run may use: its own limit, else its wall time rounded up, plus one."""
    return limits.cpu_time if limits.cpu_time is not None else math.ceil(limits.wall_time) + 1


def _measured(received: list[Received], status: StatusReader) -> list[dict[str, Any]]:
    """The accepted messages, with each instance's wall and CPU time replaced by what the
    engine measured from outside (time and CPU use between successive instance messages,
    from the moment the harness reported itself isolated)."""
    messages: list[dict[str, Any]] = []
    last_at = status.at
    last_cpu = status.cpu
    for item in received:
        message = item.message
        if message is None or message["type"] in ("isolation", "done"):
            continue  # only the status pipe reports isolation; "done" is the ack handshake
        if message["type"] == "instance":
            wall = item.at - last_at if last_at is not None else None
            cpu = item.cpu - last_cpu if item.cpu is not None and last_cpu is not None else None
            message = {**message, "wall": wall, "cpu": cpu}
            last_at, last_cpu = item.at, item.cpu if item.cpu is not None else last_cpu
        messages.append(message)
    return messages

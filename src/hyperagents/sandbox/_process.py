"""The ``process`` sandbox: a separate, resource-limited process with a scrubbed environment."""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._base import Limits, Outcome, SandboxResult

logger = logging.getLogger("hyperagents")

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

    def __init__(self, stream: IO[bytes], cap: int = 64 * 1024) -> None:
        super().__init__(daemon=True)
        self._stream, self.cap = stream, cap
        self._fd = stream.fileno()
        self._halt = threading.Event()
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def stop(self) -> None:
        """Stop reading even if the pipe is still open (an escaped child may hold it)."""
        self._halt.set()

    def run(self) -> None:
        import select

        with contextlib.suppress(OSError, ValueError):
            while not self._halt.is_set():
                ready, _, _ = select.select([self._fd], [], [], 0.2)
                if not ready:
                    continue
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                self._consume(chunk)

    def _consume(self, chunk: bytes) -> None:
        """Keep what fits under the cap; note that the rest was dropped."""
        if self.size < self.cap:
            keep = chunk[: self.cap - self.size]
            self.chunks.append(keep)
            self.size += len(keep)
            if len(keep) < len(chunk):
                self.truncated = True
        else:
            self.truncated = True

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


#: Handles an LLM request from sandboxed code: ``{"messages", "params", "purpose"}`` in,
#: ``{"text": ...}`` or ``{"error": ...}`` out. Runs in the engine, which owns the keys.
LLMHandler = Callable[[dict[str, Any]], dict[str, Any]]


class _ChannelReader(_CappedReader):
    """Reads the result channel; answers ``llm_request`` messages on the reply pipe as they
    arrive (the sandboxed code waits for the answer), and keeps everything else.

    It never blocks the engine on the sandboxed side: the reply pipe is non-blocking and a
    reply that cannot be delivered within a few seconds is dropped; once the job has ended
    (:attr:`closed`) no request is answered any more (no model is called for a dead job); a line
    longer than the cap is discarded. The thread owns the reply descriptor and closes it when
    it stops.
    """

    #: Seconds a reply may wait for room in the pipe before the reader gives up on it.
    REPLY_PATIENCE = 5.0

    def __init__(self, stream: IO[bytes], reply_fd: int, cap: int = 64 * 1024) -> None:
        super().__init__(stream, cap)
        self._reply_fd = reply_fd
        os.set_blocking(reply_fd, False)
        self._pending = bytearray()
        self.handler: LLMHandler | None = None
        self.llm_requests = 0
        self.closed = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            with contextlib.suppress(OSError):
                os.close(self._reply_fd)

    def _consume(self, chunk: bytes) -> None:
        self._pending += chunk
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                break
            line = bytes(self._pending[:end])
            del self._pending[: end + 1]
            if b'"llm_request"' in line and self._answer(line):
                continue
            super()._consume(line + b"\n")
        if len(self._pending) > self.cap:  # an endless line: drop it, note the truncation
            self._pending.clear()
            self.truncated = True

    def _answer(self, line: bytes) -> bool:
        try:
            message = json.loads(line)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("type") != "llm_request":
            return False
        self.llm_requests += 1
        if self.closed.is_set() or self._halt.is_set():
            return True  # the job is over: nobody is waiting, and no model is called for it
        answer: dict[str, Any] = {"type": "llm_response", "id": message.get("id")}
        if self.handler is None:
            answer["error"] = "no language model is configured for this run"
        else:
            request = {k: message.get(k) for k in ("messages", "params", "purpose")}
            try:
                answer.update(self.handler(request))
            except Exception as exc:  # the engine's failure is the agent's error reply
                answer["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        self._deliver((json.dumps(answer) + "\n").encode("utf-8"))
        return True

    def _deliver(self, data: bytes) -> None:
        import select

        view = memoryview(data)
        deadline = time.monotonic() + self.REPLY_PATIENCE
        while view and not self.closed.is_set() and not self._halt.is_set():
            try:
                written = os.write(self._reply_fd, view)
                view = view[written:]
                continue
            except BlockingIOError:
                pass
            except OSError:
                return  # the sandboxed side is gone
            if time.monotonic() >= deadline:
                return  # it does not read its answers: stop trying
            with contextlib.suppress(OSError, ValueError):
                select.select([], [self._reply_fd], [], 0.2)


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
    readers: list[_CappedReader]
    result_stream: IO[bytes]
    uid: int | None
    directory: Path  #: the directory the process sees as its workspace
    owned_root: Path | None = None  #: a standby's private directory, removed after use


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
        self._python = python or sys.executable
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
        self._spawning = 0
        self._closed = False
        self._initial_warm = warm  # started by the subclass once it is fully built
        self._spawner: threading.Thread | None = None
        self._spawn_requests: queue.SimpleQueue[bool] = queue.SimpleQueue()

    #: Whether the sandbox itself (not the harness) gives the code an empty network namespace.
    isolates_network = False
    #: Whether the waited-for process is a monitor whose rusage misses the harness's, so the
    #: harness's own usage report is authoritative.
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

    def close(self) -> None:
        """Stop every standby process (the sandbox stays usable; standbys restart on demand)."""
        with self._standby_lock:
            self._closed = True
            standbys, self._standbys = self._standbys, []
        for standby in standbys:
            self._discard(standby)

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
            root = Path(tempfile.mkdtemp(prefix="hyperagents-standby-", dir=_workspace_base()))
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
                shutil.rmtree(root, ignore_errors=True)
                raise
            standby.owned_root = root
        except Exception as exc:  # a failed standby only costs a cold start later
            logger.warning("could not start a warm %s sandbox: %s", self.name, exc)
        finally:
            with self._standby_lock:
                self._spawning -= 1
                keep = (
                    standby is not None
                    and not self._closed
                    and len(self._standbys) < self._warm_target
                )
                if keep and standby is not None:
                    self._standbys.append(standby)
        if standby is not None and not keep:
            self._discard(standby)

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
            shutil.rmtree(standby.owned_root, ignore_errors=True)

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
                shutil.rmtree(standby.owned_root, ignore_errors=True)

    def _start(
        self, directory: Path, uid: int | None, *, preload: tuple[str, ...] = ()
    ) -> _Started:
        read_fd, write_fd = os.pipe()  # sandbox → engine: results, LLM requests
        reply_read, reply_write = os.pipe()  # engine → sandbox: LLM replies
        argv, cwd = self._command(directory, harness_path(), f"{write_fd},{reply_read}")
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
                pass_fds=(write_fd, reply_read),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            for fd in (read_fd, write_fd, reply_read, reply_write):
                os.close(fd)
            raise SandboxError(f"cannot start the {self.name} sandbox ({argv[0]}): {exc}") from exc
        os.close(write_fd)
        os.close(reply_read)
        assert proc.stdout and proc.stderr
        result_stream = os.fdopen(read_fd, "rb")
        readers = [
            _CappedReader(proc.stdout),
            _CappedReader(proc.stderr),
            _ChannelReader(result_stream, reply_write),  # owns (and closes) reply_write
        ]
        for reader in readers:
            reader.start()
        return _Started(proc, readers, result_stream, uid, directory)

    def _finish(
        self,
        started: _Started,
        request: dict[str, Any],
        limits: Limits,
        llm: LLMHandler | None = None,
    ) -> SandboxResult:
        proc, readers, uid = started.proc, started.readers, started.uid
        channel = readers[2]
        if isinstance(channel, _ChannelReader):
            channel.handler = llm
        readers[0].cap = readers[1].cap = limits.max_output_bytes
        readers[2].cap = limits.max_result_bytes
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
            _kill_group(proc.pid)
            with contextlib.suppress(ChildProcessError):
                proc.wait()
            raise SandboxError(f"request is not JSON-serialisable: {exc}") from exc
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
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
            if isinstance(channel, _ChannelReader):
                channel.closed.set()  # the job is over: answer no more LLM requests
            # Whatever the child left in its group (daemonised helpers…) dies with it.
            _kill_group(proc.pid)
            self._after(uid, started.directory)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        self._finish_readers(started)
        stdout = readers[0].data.decode("utf-8", "replace")
        stderr = readers[1].data.decode("utf-8", "replace")
        messages, garbage = _parse_messages(readers[2].data)
        for message in messages:
            if message.get("type") == "error" and message.get("kind") == "isolation":
                raise SandboxError(f"{self.name} sandbox: {message.get('error')}")
        isolation = next((m for m in messages if m.get("type") == "isolation"), None)
        if isolation is None and proc.returncode != 0 and not timed_out.is_set():
            self._check_started(proc.returncode, stderr)
        cpu_used, peak_mb = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0
        reported = _reported_usage(messages)
        if reported is not None and self.reports_usage:
            # The process we waited for is a monitor (bubblewrap): the harness's own account
            # of its CPU time and memory (itself and its reaped children) is the real one.
            cpu_used, peak_mb = max(cpu_used, reported[0]), max(peak_mb, reported[1])
        result = _classify(
            messages=[m for m in messages if m.get("type") != "isolation"],
            garbage=garbage or readers[2].truncated,
            timed_out=timed_out.is_set(),
            exit_code=self._exit_code(proc.returncode),
            cpu_used=cpu_used,
            cpu_limit=cpu,
            limits=limits,
            stdout=stdout,
            stderr=stderr,
            wall=wall,
            peak_mb=peak_mb,
            cpu_unknown=self.reports_usage and reported is None,
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
        streams = (started.proc.stdout, started.proc.stderr, started.result_stream)
        for stream in streams:
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
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


def _workspace_base() -> str | None:
    from hyperagents.evaluation._evaluator import workspace_base

    return workspace_base()


class ProcessSandbox(_Launcher):
    """Runs the harness in a child process in its own session with rlimits and a hard kill.

    The child gets a scrubbed environment (no API keys or user settings), the workspace as its
    current directory and home, and limits on CPU time, address space, process count and file
    size that the harness applies to itself before any agent code is imported. The whole process
    group is killed at the wall-clock limit and again after the run.

    When the engine runs as root, the harness also moves into an empty network namespace and,
    if the Python installation is readable by other users, switches to an unprivileged user id
    of its own before importing agent code; after the run every process of that id is killed (so
    a child that left the process group with ``setsid`` dies too). Otherwise (a warning is
    logged) agent code keeps the engine's user: no filesystem isolation, no protection of the
    engine's processes, and escaped children may survive: use the ``bwrap`` sandbox.

    Args:
        python: Interpreter to run (default: the engine's own).
        isolate_user: Switch to a private uid (default: when the engine runs as root and the
            interpreter is readable by other users).
        warm: Processes to keep started ahead of time (see :class:`_Launcher`).
        preload: Modules warm processes import before their request (e.g. ``("numpy",)``).
    """

    name = "process"

    def __init__(
        self,
        *,
        python: str | None = None,
        isolate_user: bool | None = None,
        warm: int = 0,
        preload: tuple[str, ...] = (),
    ) -> None:
        super().__init__(python=python, isolate_user=isolate_user, warm=warm, preload=preload)
        if os.geteuid() == 0 and not self._isolate_user:
            logger.warning(
                "the process sandbox runs agent code as root: the Python installation (%s) is "
                "not readable by other users, so it cannot switch to an unprivileged uid; agent "
                "code can read the engine's files and signal its processes. Use the bwrap "
                "sandbox (apt-get install bubblewrap).",
                os.path.realpath(sys.base_prefix),
            )
        if warm:
            self.set_warm(warm)

    def _can_switch_user(self) -> bool:
        return all(_usable_by_others(Path(p)) for p in _interpreter_dirs(self._python))

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        return [self._python, "-I", "-S", str(harness), fds], workspace

    def _request_extras(self) -> dict[str, Any]:
        return {"unshare_network": self._privileged}

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


def _reported_usage(messages: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(cpu seconds, peak MiB) from the harness's last usage report, if any."""
    for message in reversed(messages):
        usage = message.get("usage")
        if isinstance(usage, dict):
            try:
                return float(usage.get("cpu", 0.0)), float(usage.get("peak_mb", 0.0))
            except (TypeError, ValueError):
                return None
    return None


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
    cpu_unknown: bool = False,
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
    if exit_code == -signal.SIGXCPU or (
        exit_code == -signal.SIGKILL and (cpu_used >= cpu_limit - 0.5 or cpu_unknown)
    ):
        # SIGXCPU is the soft CPU limit; an unexplained SIGKILL inside a sandbox whose CPU use
        # cannot be read from outside is the hard one (nothing else there sends SIGKILL).
        reason = f"timeout: CPU-time limit of {cpu_limit:g} s exceeded"
        return SandboxResult(Outcome.TIMEOUT, reason, **common)
    if final is not None and final["type"] == "error":
        kind = final.get("kind", "exception")
        if kind == "cpu":
            reason = f"timeout: CPU-time limit of {cpu_limit:g} s exceeded"
            return SandboxResult(Outcome.TIMEOUT, reason, **common)
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

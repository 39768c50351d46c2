"""The launcher: what the ``process`` and ``bwrap`` sandboxes share.

:class:`Launcher` starts the trusted harness, feeds it one request, enforces the wall clock,
collects the output and classifies the outcome; it keeps warm standbys
(:class:`~hyperagents.sandbox._standby.StandbyPool`) and lends private uids
(:class:`~hyperagents.sandbox._provision.UidPool`).
A sandbox subclasses it and says, through the hooks listed on the class, how its process is
started and cleaned up. This is the seam between the sandboxes: they use the names exported
here and nothing private of each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._base import Limits, SandboxResult
from hyperagents.sandbox._cleanup import kill_group, processes_of
from hyperagents.sandbox._deadline import Deadline
from hyperagents.sandbox._messages import classify
from hyperagents.sandbox._monitor import UsageProbe
from hyperagents.sandbox._outcome import Started, annotate, cpu_limit, finish_readers, measured
from hyperagents.sandbox._provision import (
    UidPool,
    hand_over,
    harness_path,
    move_entries,
    scrubbed_environment,
)
from hyperagents.sandbox._readers import CappedReader, ChannelReader, LLMHandler, StatusReader
from hyperagents.sandbox._standby import StandbyPool
from hyperagents.sandbox._workspace import (
    remove_tree,
    sweep_stale_workspaces,
    workspace_base,
    workspace_prefix,
)

__all__ = ["Launcher"]

#: Bytes a pipe holds without a reader on Linux (the default size).
_PIPE_CAPACITY = 65536


class Launcher:
    """Start the harness, feed the request, enforce the wall clock, collect output and classify
    the outcome; the base of the ``process`` and ``bwrap`` sandboxes.

    Warm standbys: after ``set_warm(N)`` (a sandbox's ``warm=N``) the sandbox keeps up to N
    processes started ahead of time (interpreter up, harness and ``preload`` modules imported,
    isolation not yet applied), each waiting for one request in a private workspace directory of
    its own. A run takes one, moves the caller's workspace files in, sends the request, and
    moves the files back afterwards; a replacement is started in the background. Each process
    still serves exactly one request, so runs never share a process.

    A subclass sets :attr:`name`, :attr:`isolates_network` and :attr:`reports_usage`, and
    overrides these hooks (each documented where it is defined): :meth:`_command` (required:
    the argv starting the harness), :meth:`_environment`, :meth:`_request_extras`,
    :meth:`_after`, :meth:`_harness_pid`, :meth:`_exit_code`, :meth:`_check_started` and
    :meth:`_can_switch_user`. A subclass starts its standbys (``if warm: self.set_warm(warm)``)
    at the end of its own constructor, once everything :meth:`_command` reads exists.

    Args:
        python: Interpreter to run (default: the engine's own).
        isolate_user: Switch to a private uid (default: when the engine runs as root and
            :meth:`_can_switch_user` says so).
        preload: Modules warm processes import before their request (e.g. ``("numpy",)``).

    Raises:
        SandboxError: ``isolate_user`` asked for where the engine is not root.
    """

    #: The sandbox's name, in messages and logs.
    name = "launcher"
    #: Whether the sandbox itself (not the harness) gives the code an empty network namespace.
    isolates_network = False
    #: Whether the waited-for process is a monitor whose rusage misses the harness's, so the
    #: harness's usage is read from ``/proc`` while it runs (and an unexplained SIGKILL is the
    #: hard CPU limit, the one thing inside that sends it).
    reports_usage = False

    def __init__(
        self,
        *,
        python: str | None = None,
        isolate_user: bool | None = None,
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
        self._uids = UidPool() if self._isolate_user else None
        self._preload = tuple(preload)
        self._pool: StandbyPool[Started] = StandbyPool(
            start=self._new_standby,
            alive=lambda standby: standby.proc.poll() is None,
            discard=self._discard,
            name=self.name,
        )
        # Workspaces of engines that were killed (nothing else removes them) go now.
        sweep_stale_workspaces()

    @property
    def python(self) -> str:
        """The interpreter the sandbox runs (absolute, not resolved)."""
        return self._python

    @property
    def privileged(self) -> bool:
        """Whether the engine runs as root."""
        return self._privileged

    @property
    def isolates_user(self) -> bool:
        """Whether agent code runs under a private unprivileged uid."""
        return self._isolate_user

    @property
    def standbys(self) -> int:
        """How many processes wait, started ahead of time, for a request now."""
        return self._pool.waiting

    # -- hooks --------------------------------------------------------------------------------
    def _can_switch_user(self) -> bool:
        """Whether code running under another uid can still use the interpreter."""
        return True

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        """Return (argv, cwd) starting the harness for ``workspace`` (``fds``: its channels)."""
        raise NotImplementedError

    def _environment(self, workspace: Path) -> dict[str, str]:
        """The environment the started process gets."""
        return scrubbed_environment(workspace)

    def _request_extras(self) -> dict[str, Any]:
        """Isolation settings added to every request (read by the harness)."""
        return {}

    def _after(self, uid: int | None, directory: Path | None = None) -> None:
        """Clean up after the process exited (the process group is already killed)."""

    def _harness_pid(self, pid: int) -> int | None:
        """The host pid of the harness process, given the pid that was started."""
        return pid

    def _exit_code(self, code: int) -> int:
        """The harness's exit code, given the started process's."""
        return code

    def _check_started(self, code: int, stderr: str) -> None:
        """Raise SandboxError when the sandbox itself failed before the harness ran."""

    # -- warm standbys ----------------------------------------------------------------------------
    def set_warm(self, count: int) -> None:
        """Keep ``count`` processes started ahead of time (0 disables warm starts)."""
        self._pool.set_target(count)

    def close(self) -> None:
        """Stop every standby process (the sandbox stays usable; standbys restart on demand)."""
        self._pool.close()

    def _new_standby(self) -> Started:
        root = Path(tempfile.mkdtemp(prefix=workspace_prefix("standby"), dir=workspace_base()))
        directory = root / "ws"
        directory.mkdir()
        uid = self._uids.acquire() if self._uids is not None else None
        try:
            if uid is not None:
                hand_over(directory, uid)
            standby = self._start(directory, uid, preload=self._preload)
        except BaseException:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)
            remove_tree(root)
            raise
        standby.owned_root = root
        return standby

    def _discard(self, standby: Started) -> None:
        kill_group(standby.proc.pid)
        with contextlib.suppress(ChildProcessError, OSError, subprocess.TimeoutExpired):
            standby.proc.wait(timeout=5)
        self._after(standby.uid, standby.directory)
        finish_readers(standby)
        with contextlib.suppress(OSError, ValueError):
            if standby.proc.stdin is not None:
                standby.proc.stdin.close()
        self._release(standby)

    def _release(self, started: Started) -> None:
        """Give back the uid and the private directory a standby held."""
        if started.uid is not None and self._uids is not None:
            self._uids.release(started.uid)
        if started.owned_root is not None:
            remove_tree(started.owned_root)

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
        standby = self._pool.take()
        if standby is not None:
            self._pool.replenish()
            return self._run_warm(standby, workspace, request, limits, llm)
        uid = self._uids.acquire() if self._uids is not None else None
        try:
            if uid is not None:
                hand_over(workspace, uid)
            started = self._start(workspace, uid)
            return self._finish(started, request, limits, llm)
        finally:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)

    def _run_warm(
        self,
        standby: Started,
        workspace: Path,
        request: dict[str, Any],
        limits: Limits,
        llm: LLMHandler | None,
    ) -> SandboxResult:
        try:
            move_entries(workspace, standby.directory)
            if standby.uid is not None:
                hand_over(standby.directory, standby.uid)
            try:
                return self._finish(standby, request, limits, llm)
            finally:
                move_entries(standby.directory, workspace)
        finally:
            self._release(standby)

    def _start(self, directory: Path, uid: int | None, *, preload: tuple[str, ...] = ()) -> Started:
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
        return self._watch(proc, os.fdopen(read_fd, "rb"), reply_write, status_read, uid, directory)

    def _watch(
        self,
        proc: subprocess.Popen[bytes],
        result_stream: IO[bytes],
        reply_write: int,
        status_read: int,
        uid: int | None,
        directory: Path,
    ) -> Started:
        """Start the readers of a started process's pipes (they own the engine's ends)."""
        assert proc.stdout and proc.stderr
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
        started = Started(
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

    def _payload(self, request: dict[str, Any], limits: Limits, uid: int | None) -> bytes:
        """The request as the harness reads it, with its limits and isolation settings.

        Raises:
            SandboxError: The request is not JSON-serialisable.
        """
        cpu = cpu_limit(limits)
        payload = dict(request)
        nproc = limits.max_processes
        if uid is None and hasattr(os, "getuid") and os.getuid() != 0:
            # The kernel counts every process of the user: leave room for those already running.
            nproc += len(processes_of(os.getuid()))
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
        started: Started,
        request: dict[str, Any],
        limits: Limits,
        llm: LLMHandler | None = None,
    ) -> SandboxResult:
        """Send the request to a started process, wait for it and classify the outcome."""
        proc = started.proc
        validates = isinstance(request.get("validate"), dict)
        deadline = Deadline(limits.wall_time, limits.validate_time if validates else None)
        started.channel.on_validation = deadline.validated
        started.channel.handler = llm
        started.channel.ack_final = self.reports_usage
        started.stdout.cap = started.stderr.cap = limits.max_output_bytes
        started.channel.cap = limits.max_result_bytes
        try:
            body = self._payload(request, limits, started.uid)
        except SandboxError:
            kill_group(proc.pid)
            with contextlib.suppress(ChildProcessError):
                proc.wait()
            raise
        timed_out, wall, usage = self._wait(started, body, deadline)
        # A run killed while it validated was held to (and is reported with) that limit.
        held_to = replace(limits, wall_time=deadline.limit)
        return self._outcome(started, limits, held_to, timed_out=timed_out, wall=wall, usage=usage)

    def _wait(self, started: Started, body: bytes, deadline: Deadline) -> tuple[bool, float, Any]:
        """Feed the request and wait for the process, killing its group at the ``deadline``
        and after it exited; return (timed out, wall seconds, the kernel's resource usage).

        Raises:
            SandboxError: The process was lost (a bug in the engine).
        """
        proc = started.proc
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            if not deadline.expired():
                return
            timed_out.set()
            started.probe.sample()  # the last reading before the kill
            kill_group(proc.pid)

        start = time.perf_counter()
        deadline.start()
        threading.Thread(target=kill_on_timeout, daemon=True).start()
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
            deadline.stop()
            started.channel.closed.set()  # the job is over: answer no more LLM requests
            # Whatever the child left in its group (daemonised helpers…) dies with it.
            kill_group(proc.pid)
            self._after(started.uid, started.directory)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return timed_out.is_set(), time.perf_counter() - start, usage

    def _outcome(
        self,
        started: Started,
        limits: Limits,
        held_to: Limits,
        *,
        timed_out: bool,
        wall: float,
        usage: Any,
    ) -> SandboxResult:
        """Classify a finished run from what the engine read and measured outside it
        (``held_to``: its limits, with the wall-clock limit of the phase it ended in).

        Raises:
            SandboxError: The harness did not report itself isolated.
        """
        finish_readers(started)
        report = self._isolation_report(started, timed_out)
        cpu_used, peak_mb = self._usage(started, usage)
        received = started.channel.received
        problem = next((r.problem for r in received if r.problem), None)
        if started.channel.truncated:
            problem = problem or f"more than {limits.max_result_bytes} bytes of messages"
        result = classify(
            messages=measured(received, started.status),
            problem=problem,
            timed_out=timed_out,
            exit_code=self._exit_code(started.proc.returncode),
            cpu_used=cpu_used,
            cpu_limit=cpu_limit(limits),
            limits=held_to,
            stdout=started.stdout.data.decode("utf-8", "replace"),
            stderr=started.stderr.data.decode("utf-8", "replace"),
            wall=wall,
            peak_mb=peak_mb,
            cpu_unknown=self.reports_usage,
        )
        annotate(result, started, report, network=self.isolates_network)
        refused = [r.problem for r in received if r.problem]
        if refused:
            result.extra["refused_messages"] = {"count": len(refused), "first": refused[0]}
        return result

    def _isolation_report(self, started: Started, timed_out: bool) -> dict[str, Any]:
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

    def _usage(self, started: Started, usage: Any) -> tuple[float, float]:
        """CPU seconds and peak MiB of the run, measured outside the sandbox."""
        started.probe.sample()
        cpu = started.probe.cpu or 0.0
        peak = started.probe.peak_mb
        if not self.reports_usage:
            # The waited-for process is the harness itself: the kernel's account is complete.
            cpu = max(cpu, usage.ru_utime + usage.ru_stime)
            peak = max(peak, usage.ru_maxrss / 1024.0)
        return cpu, peak


def _feed(stream: IO[bytes], body: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(body)
    with contextlib.suppress(OSError, ValueError):
        stream.close()

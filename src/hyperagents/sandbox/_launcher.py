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
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._base import Limits, Outcome, SandboxResult
from hyperagents.sandbox._checkpoint import CheckpointHook, progress_hook
from hyperagents.sandbox._cleanup import kill_group, processes_of
from hyperagents.sandbox._deadline import Deadline
from hyperagents.sandbox._forkserver import ForkedProcess, ForkServer
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
from hyperagents.sandbox._readers import (
    CappedReader,
    ChannelReader,
    LLMHandler,
    MessageHook,
    StatusReader,
)
from hyperagents.sandbox._standby import StandbyPool
from hyperagents.sandbox._workspace import (
    remove_tree,
    sweep_stale_workspaces,
    workspace_base,
    workspace_prefix,
)

__all__ = ["Launcher"]


#: What a run answers and reports to as the sandboxed code goes: its LLM handler, the hook
#: that takes its progress messages, and the one that takes the checkpoints they name.
Hooks = tuple[LLMHandler | None, MessageHook | None, CheckpointHook | None]

logger = logging.getLogger("hyperagents")

#: Seconds a fork server may take, after its child's wall-clock limit, to report on it.
_SERVER_GRACE = 30.0
#: Bytes a pipe holds without a reader on Linux (the default size).
_PIPE_CAPACITY = 65536


class Launcher:
    """Start the harness, feed the request, enforce the wall clock, collect output and classify
    the outcome; the base of the ``process`` and ``bwrap`` sandboxes.

    Warm starts: after ``set_warm(N)`` (a sandbox's ``warm=N``) the sandbox keeps up to N fork
    servers (:mod:`~hyperagents.sandbox._forkserver`): sandboxed interpreters started ahead of
    time, the harness and the ``preload`` modules imported, each with a private workspace
    directory of its own. A run takes a server that has said it is ready (one still starting
    is never handed out: the run then starts cold), moves the caller's workspace files in, and
    the server forks a fresh child for the request, which isolates itself and runs it exactly
    as a cold process would; the files move back afterwards and the server waits for the next
    run. Every request gets a process of its own, forked before any agent code ran; a child
    cannot outlive its request (the server, or the sandbox's cleanup hook, kills what it left)
    nor see an earlier child's files (its workspace is emptied, and where the sandbox can give
    it one, its ``/tmp`` and ``/dev/shm`` are its own). A server that a child damaged (killed,
    or left processes it could not kill) is discarded and replaced in the background.

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
    #: Whether a fork server's children run in a PID namespace of the server's own, so that the
    #: server can kill whatever a child left behind (else the cleanup hook :meth:`_after` does).
    server_owns_pid_namespace = False

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
        self._uids = UidPool.for_process() if self._isolate_user else None
        self._preload = tuple(preload)
        self._known_sources = b""
        self._forking_off: str | None = None
        self._pool: StandbyPool[ForkServer] = StandbyPool(
            start=self._new_server,
            alive=ForkServer.alive,
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
    def warm(self) -> int:
        """How many fork servers the sandbox keeps (``set_warm``; 0: every run starts cold)."""
        return self._pool.target

    @property
    def standbys(self) -> int:
        """How many processes wait, started ahead of time, for a request now."""
        return self._pool.waiting

    # -- hooks --------------------------------------------------------------------------------
    def _can_switch_user(self) -> bool:
        """Whether code running under another uid can still use the interpreter."""
        return True

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        """Return (argv, cwd) starting the harness for ``workspace``; ``fds`` is the harness's
        first argument (its channels, or ``--serve=FD`` for a fork server's control socket)."""
        raise NotImplementedError

    def _environment(self, workspace: Path) -> dict[str, str]:
        """The environment the started process gets."""
        return scrubbed_environment(workspace)

    def _request_extras(self) -> dict[str, Any]:
        """Isolation settings added to every request (read by the harness)."""
        return {}

    def _forked_extras(self, *, own_pids: bool) -> dict[str, Any]:
        """Isolation settings for a request run by a fork server's child, instead of
        :meth:`_request_extras` (default: the same); ``own_pids``: the child runs in a PID
        namespace of its own."""
        return self._request_extras()

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
        """Keep ``count`` fork servers started ahead of time (0 disables warm starts; so does a
        machine where forked children cannot isolate themselves, see :attr:`forking_off`)."""
        self._pool.set_target(0 if self._forking_off else count)

    def set_known_sources(self, files: Mapping[str, str]) -> None:
        """Source files that requests' workspaces often hold unchanged (e.g. the ``.py`` files
        of a run's seed program, at their paths in the workspace): fork servers started from
        now on compile them once, before any request, and a child whose file is byte-identical
        at the same path runs that code instead of compiling it again (the import, and a
        validation's compile check). Only what is given here reaches a server, never anything
        of a request. Idle servers that knew other sources are replaced."""
        data = json.dumps(dict(sorted(files.items()))).encode() if files else b""
        if data != self._known_sources:
            self._known_sources = data
            target, closed = self._pool.target, self._pool.closed
            self._pool.close()
            if not closed:
                self._pool.set_target(target)  # new servers, that know them

    @property
    def forking_off(self) -> str | None:
        """Why warm starts were turned off for good (None: they were not)."""
        return self._forking_off

    def close(self) -> None:
        """Stop every standby process (the sandbox stays usable; standbys restart on demand)."""
        self._pool.close()

    def _new_server(self) -> ForkServer:
        """Start a fork server in a private directory and wait until it is ready."""
        root = Path(tempfile.mkdtemp(prefix=workspace_prefix("standby"), dir=workspace_base()))
        directory = root / "ws"
        directory.mkdir()

        def command(control_fd: int) -> tuple[list[str], Path]:
            argv, cwd = self._command(directory, harness_path(), f"--serve={control_fd}")
            return [*argv, ",".join(self._preload)] if self._preload else argv, cwd

        try:
            return ForkServer.start(
                command,
                env=self._environment(directory),
                directory=directory,
                owned_root=root,
                known_sources=self._known_sources,
            )
        except SandboxError as exc:
            remove_tree(root)
            raise SandboxError(f"cannot start a {self.name} fork server: {exc}") from exc
        except BaseException:
            remove_tree(root)
            raise

    def _discard(self, server: ForkServer) -> None:
        server.close()
        self._after(None, server.directory)
        remove_tree(server.owned_root)

    # -- the run --------------------------------------------------------------------------------
    def run(
        self,
        workspace: Path,
        request: dict[str, Any],
        *,
        limits: Limits,
        llm: LLMHandler | None = None,
        on_message: MessageHook | None = None,
        on_checkpoint: CheckpointHook | None = None,
    ) -> SandboxResult:
        """Run one harness action; see :class:`~hyperagents.sandbox.Sandbox`.

        Args:
            workspace: The program's files (the process's working directory).
            request: The harness action and its inputs (JSON).
            limits: Resource limits.
            llm: Answers ``llm.complete(...)`` calls made by the sandboxed code (engine side);
                without it such calls get an error reply.
            on_message: Called (on a reader thread) with each ``progress`` message as it
                arrives, already parsed with bounds (a training's curve, live).
            on_checkpoint: Called (on a reader thread) with the step and the files of each
                checkpoint a progress point names, read at once and safely (see
                :mod:`hyperagents.sandbox._checkpoint`), at most four times
                ``limits.max_file_size_mb`` in all (a model and its optimiser's state); a
                checkpoint that cannot be read is skipped.

        Raises:
            SandboxError: The workspace is missing, the sandbox cannot start or cannot isolate.
        """
        workspace = Path(workspace)
        if not workspace.is_dir():
            raise SandboxError(f"workspace {workspace} does not exist")
        server = self._pool.take()
        if server is not None:
            hooks = (llm, on_message, on_checkpoint)
            return self._run_forked(server, workspace, request, limits, hooks)
        return self._run_cold(workspace, request, limits, (llm, on_message, on_checkpoint))

    def _run_forked(
        self,
        server: ForkServer,
        workspace: Path,
        request: dict[str, Any],
        limits: Limits,
        hooks: Hooks,
    ) -> SandboxResult:
        """Run a request in a fresh child of ``server``; give the server back when it is still
        sound (else discard it and have it replaced). A server that cannot fork costs only a
        cold start. A child that could not isolate itself (no agent code ran) is run again
        cold; if that works, this machine cannot isolate forked children and warm starts are
        turned off for good, with a warning."""
        result: SandboxResult | None = None
        broken: SandboxError | None = None
        uid = self._uids.acquire() if self._uids is not None else None
        try:
            move_entries(workspace, server.directory)
            try:
                if uid is not None:
                    hand_over(server.directory, uid)
                else:
                    os.chmod(server.directory, 0o700)  # whatever the last child made of it
                result = self._forked_result(server, uid, request, limits, hooks)
            except SandboxError as exc:
                broken = exc
            finally:
                move_entries(server.directory, workspace)
        finally:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)
            if result is not None and server.alive():
                self._pool.put_back(server)
            else:
                self._discard(server)
                self._pool.replenish()
        if result is not None:
            return result
        cold = self._run_cold(workspace, request, limits, hooks)
        if broken is not None:
            self._forking_off = str(broken)
            logger.warning(
                "the %s sandbox's fork servers cannot isolate their children here (%s); warm "
                "starts are off, every request starts cold",
                self.name,
                broken,
            )
            self._pool.close()
        return cold

    def _forked_result(
        self,
        server: ForkServer,
        uid: int | None,
        request: dict[str, Any],
        limits: Limits,
        hooks: Hooks,
    ) -> SandboxResult | None:
        """The result of a request run by a child of ``server`` (None: it did not fork, or
        the server went away before its child had isolated itself).

        Raises:
            SandboxError: The child could not isolate itself (no agent code ran).
        """
        try:
            child = server.spawn(pid_namespace=True, kill_leftovers=self.server_owns_pid_namespace)
        except SandboxError:
            return None
        started = self._watch_forked(child, uid, server.directory)
        try:
            return self._finish(started, request, limits, hooks)
        except SandboxError:
            if child.server_lost:  # the server went before its child isolated: start cold
                return None
            raise

    def _run_cold(
        self,
        workspace: Path,
        request: dict[str, Any],
        limits: Limits,
        hooks: Hooks,
    ) -> SandboxResult:
        """Run a request in a process started for it alone."""
        uid = self._uids.acquire() if self._uids is not None else None
        try:
            if uid is not None:
                hand_over(workspace, uid)
            started = self._start(workspace, uid)
            return self._finish(started, request, limits, hooks)
        finally:
            if uid is not None and self._uids is not None:
                self._uids.release(uid)

    def _start(self, directory: Path, uid: int | None) -> Started:
        read_fd, write_fd = os.pipe()  # sandbox → engine: results, LLM requests
        reply_read, reply_write = os.pipe()  # engine → sandbox: LLM replies
        status_read, status_write = os.pipe()  # harness → engine, closed before agent code
        fds = f"{write_fd},{reply_read},{status_write}"
        argv, cwd = self._command(directory, harness_path(), fds)
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

    def _watch_forked(self, child: ForkedProcess, uid: int | None, directory: Path) -> Started:
        """Start the readers of a fork server's child (its pid is known from the start)."""
        result_stream = os.fdopen(child.result_fd, "rb")
        return self._watch(child, result_stream, child.reply_fd, child.status_fd, uid, directory)

    def _watch(
        self,
        proc: subprocess.Popen[bytes] | ForkedProcess,
        result_stream: IO[bytes],
        reply_write: int,
        status_read: int,
        uid: int | None,
        directory: Path,
    ) -> Started:
        """The readers of a started process's pipes (they own the engine's ends), not started
        yet."""
        assert proc.stdout and proc.stderr
        status_stream = os.fdopen(status_read, "rb")
        # The harness is found when the engine first hears from it (it has isolated itself).
        if isinstance(proc, ForkedProcess):
            probe = UsageProbe(proc.pid)  # known from the socket's credentials
        else:
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
        # The readers start once the request is on its way (see _wait): the process waits
        # for it, and writes nothing a pipe could not hold before then.
        return started

    def _payload(
        self,
        request: dict[str, Any],
        limits: Limits,
        uid: int | None,
        *,
        forked: ForkedProcess | None = None,
    ) -> bytes:
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
        if self.reports_usage and forked is None:
            payload["await_ack"] = True  # stay until the engine has read its usage from /proc
        if forked is not None:
            payload.update(self._forked_extras(own_pids=forked.pid_namespace))
        else:
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
        hooks: Hooks = (None, None, None),
    ) -> SandboxResult:
        """Send the request to a started process, wait for it and classify the outcome."""
        llm, on_message, on_checkpoint = hooks
        proc = started.proc
        validates = isinstance(request.get("validate"), dict)
        deadline = Deadline(limits.wall_time, limits.validate_time if validates else None)
        started.channel.on_validation = deadline.validated
        started.channel.handler = llm
        started.channel.on_progress = progress_hook(
            on_message,
            on_checkpoint,
            started.directory,
            max_bytes=4 * limits.max_file_size_mb * 1024 * 1024,
        )
        # A fork server reports its child's usage: nothing to read from /proc before it exits.
        started.channel.ack_final = self.reports_usage and not started.forked
        started.stdout.cap = started.stderr.cap = limits.max_output_bytes
        started.channel.cap = limits.max_result_bytes
        try:
            forked = started.proc if isinstance(started.proc, ForkedProcess) else None
            body = self._payload(request, limits, started.uid, forked=forked)
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
        assert proc.stdin is not None
        if len(body) < _PIPE_CAPACITY:
            _feed(proc.stdin, body)  # fits in the pipe: cannot block
        else:
            threading.Thread(target=_feed, args=(proc.stdin, body), daemon=True).start()
        for reader in started.readers:
            reader.start()
        threading.Thread(target=kill_on_timeout, daemon=True).start()
        usage: Any
        try:
            if isinstance(proc, ForkedProcess):
                # The timer kills the child at the limit; its server then reports at once.
                status, usage = proc.wait4(deadline.longest + _SERVER_GRACE)
            else:
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
            exit_code=self._exit_code_of(started),
            cpu_used=cpu_used,
            cpu_limit=cpu_limit(limits),
            limits=held_to,
            stdout=started.stdout.data.decode("utf-8", "replace"),
            stderr=started.stderr.data.decode("utf-8", "replace"),
            wall=wall,
            peak_mb=peak_mb,
            cpu_unknown=self.reports_usage and not started.forked,
        )
        if isinstance(started.proc, ForkedProcess) and started.proc.server_lost and not timed_out:
            why = "crash: the sandboxed code killed or stopped the fork server that ran it"
            result = replace(result, outcome=Outcome.CRASH, reason=why)
        annotate(result, started, report, network=self.isolates_network)
        result.extra["start"] = "forked" if started.forked else "cold"
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
        if not timed_out and code is not None and code != 0:
            self._check_started(code, stderr)
        tail = stderr.strip().splitlines()[-1:] or [""]
        what = "within the wall-clock limit" if timed_out else f"(exit code {code})"
        raise SandboxError(
            f"the {self.name} sandbox's harness did not start {what}: {tail[0][:300]}".rstrip(": ")
        )

    def _exit_code_of(self, started: Started) -> int:
        """The harness's exit code (a fork server's child is waited for directly)."""
        code = started.proc.returncode
        assert code is not None
        return code if started.forked else self._exit_code(code)

    def _usage(self, started: Started, usage: Any) -> tuple[float, float]:
        """CPU seconds and peak MiB of the run, measured outside the sandbox."""
        started.probe.sample()
        cpu = started.probe.cpu or 0.0
        peak = started.probe.peak_mb
        if not self.reports_usage or started.forked:
            # The waited-for process is the harness itself (or a fork server's child, which
            # its server waited for): the kernel's account is complete.
            cpu = max(cpu, usage.ru_utime + usage.ru_stime)
            peak = max(peak, usage.ru_maxrss / 1024.0)
        return cpu, peak


def _feed(stream: IO[bytes], body: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(body)
    with contextlib.suppress(OSError, ValueError):
        stream.close()

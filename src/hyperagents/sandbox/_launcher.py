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

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._base import Limits, SandboxResult
from hyperagents.sandbox._checkpoint import CheckpointHook
from hyperagents.sandbox._drain import Drain
from hyperagents.sandbox._exchange import Exchange, Hooks
from hyperagents.sandbox._forkserver import ForkedProcess, ForkServer
from hyperagents.sandbox._monitor import UsageProbe
from hyperagents.sandbox._outcome import Started
from hyperagents.sandbox._provision import (
    UidPool,
    hand_over,
    harness_path,
    move_entries,
    scrubbed_environment,
)
from hyperagents.sandbox._readers import (
    CappedBuffer,
    ChannelReader,
    LLMHandler,
    MessageHook,
    StatusBuffer,
)
from hyperagents.sandbox._standby import StandbyPool
from hyperagents.sandbox._workspace import (
    remove_tree,
    sweep_stale_workspaces,
    workspace_base,
    workspace_prefix,
)

__all__ = ["Launcher"]


logger = logging.getLogger("hyperagents")


class Launcher(Exchange):
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

    def _harness_pid(self, pid: int) -> int | None:
        """The host pid of the harness process, given the pid that was started."""
        return pid

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
        stdout, stderr = CappedBuffer(proc.stdout), CappedBuffer(proc.stderr)
        status = StatusBuffer(status_stream, probe.sample)
        drain = Drain(
            (stdout, stderr, status),
            status=status,
            # Where the kernel's account of the waited-for process misses the harness, its
            # usage is also read every 50 ms while it runs (it may exit right after its answer).
            sample=probe.sample if self.reports_usage else None,
        )
        started = Started(
            proc=proc,
            stdout=stdout,
            stderr=stderr,
            channel=channel,
            status=status,
            drain=drain,
            probe=probe,
            streams=(proc.stdout, proc.stderr, result_stream, status_stream),
            uid=uid,
            directory=directory,
        )
        # The readers start once the request is on its way (see _wait): the process waits
        # for it, and writes nothing a pipe could not hold before then.
        return started

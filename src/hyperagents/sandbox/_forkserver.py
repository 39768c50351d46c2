"""Fork servers, the engine's side: one sandboxed interpreter per worker that forks a fresh
child for every request.

A fork server is the harness started with ``--serve`` (see the harness's ``_serve``): it has
imported the harness and the ``preload`` modules and waits on a control socket. For each
request the engine makes the child's six pipes (stdin, stdout, stderr, result channel, reply
pipe, status pipe), sends their far ends with a small header over the socket, and the server
forks. The child says ``forked`` on the socket before anything else runs; its pid, as this
engine sees it, comes from the socket's credentials (``SO_PASSCRED``), not from anything the
sandbox writes. It then runs the request exactly as a one-shot harness: limits, isolation
reported on the status pipe, the action. When it exits the server cleans up after it and
reports its exit status and resource usage.

:class:`ForkServer` holds one server; :meth:`ForkServer.spawn` gives a :class:`ForkedProcess`,
which the launcher treats like the process it would have started (it has the same ``pid``,
``stdin``, ``stdout``, ``stderr``, ``returncode``, ``poll`` and ``wait``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._cleanup import kill_group

__all__ = ["ChildUsage", "ForkServer", "ForkedProcess"]

#: struct ucred: pid, uid, gid.
_UCRED = struct.Struct("3i")
#: How long a server may take to fork a child and hear from it.
_SPAWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class ChildUsage:
    """A forked child's resource usage as its server's ``wait4`` saw it (the child and the
    descendants it waited for), shaped like :func:`os.wait4`'s ``rusage``."""

    ru_utime: float
    ru_stime: float
    ru_maxrss: int


class ForkServer:
    """One fork server: its process, the engine's end of its control socket, and the private
    directory it sees as its workspace.

    Args:
        proc: The started server (stdin, stdout and stderr not piped).
        control: The engine's end of the control socket (``SOCK_SEQPACKET``).
        directory: The directory the server and its children see as the workspace.
        owned_root: The private folder holding ``directory``, removed with the server.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        control: socket.socket,
        directory: Path,
        owned_root: Path,
    ) -> None:
        self.proc = proc
        self.directory = directory
        self.owned_root = owned_root
        self._control = control
        control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        # A server that stops reading (stopped, or gone with its socket still held by the
        # sandbox around it) makes a send fail after this long instead of blocking for ever.
        control.settimeout(_SPAWN_TIMEOUT)
        self._healthy = True

    @classmethod
    def start(
        cls,
        command: Callable[[int], tuple[list[str], Path]],
        *,
        env: dict[str, str],
        directory: Path,
        owned_root: Path,
        timeout: float = 60.0,
        known_sources: bytes = b"",
    ) -> ForkServer:
        """Start a server and wait until it is ready.

        Args:
            command: (argv, cwd) of the server, given the number of the server's end of its
                control socket.
            env: Its whole environment.
            directory: The directory it and its children see as the workspace.
            owned_root: The private folder holding ``directory``.
            timeout: Seconds it may take to be ready.
            known_sources: What the server reads on its stdin before it is ready: the known
                sources it compiles ahead of its children (JSON ``{path: text}``; empty: none).

        Raises:
            SandboxError: It could not be started, or did not say it was ready in time.
        """
        engine_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server: ForkServer | None = None
        try:
            argv, cwd = command(server_end.fileno())
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE if known_sources else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(server_end.fileno(),),
                start_new_session=True,
                close_fds=True,
            )
            server = cls(proc, engine_end, directory, owned_root)
            if proc.stdin is not None:
                _feed(proc.stdin, known_sources)
            server.wait_ready(timeout)
        except BaseException as exc:
            if server is not None:
                server.close()
            else:
                engine_end.close()
            if isinstance(exc, OSError):
                raise SandboxError(str(exc)) from exc
            raise
        finally:
            server_end.close()
        return server

    def alive(self) -> bool:
        """Whether the server can take another request."""
        return self._healthy and self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        """Wait until the server has imported what it preloads and says it is ready.

        Raises:
            SandboxError: It did not say so in time, or said something else.
        """
        message, _ = self._receive(timeout)
        if message is None or message.get("type") != "ready":
            self._healthy = False
            raise SandboxError(f"the fork server did not start: {message!r}"[:300])

    def spawn(self, *, pid_namespace: bool, kill_leftovers: bool) -> ForkedProcess:
        """Fork a child for one request; the engine keeps the near ends of its pipes.

        Args:
            pid_namespace: The child runs in a PID namespace of its own (where it can be
                made): it cannot see or signal the server, and what it starts dies with it.
            kill_leftovers: The server kills every other process in its PID namespace after
                the child exits (only where the server has a PID namespace of its own).

        Raises:
            SandboxError: The server did not fork (it is then no longer used).
        """
        pipes = [os.pipe() for _ in range(6)]
        # The child reads stdin and the reply pipe; it writes the other four.
        far = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1], pipes[4][0], pipes[5][1]]
        near = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0], pipes[4][1], pipes[5][0]]
        header = json.dumps({"pid_namespace": pid_namespace, "kill_leftovers": kill_leftovers})
        try:
            socket.send_fds(self._control, [header.encode()], far)
            message, pid = self._receive(_SPAWN_TIMEOUT)
        except OSError as exc:
            message, pid = {"error": str(exc)}, None
        finally:
            for fd in far:
                os.close(fd)
        if message is None or message.get("type") != "forked" or pid is None:
            self._healthy = False
            for fd in near:
                os.close(fd)
            raise SandboxError(f"the fork server did not fork: {message!r}"[:300])
        child = ForkedProcess(self, pid, near)
        child.pid_namespace = message.get("pid_namespace") is True
        return child

    def reap(self, child: ForkedProcess, timeout: float) -> tuple[int, ChildUsage]:
        """Wait for the server's report on ``child``: its wait status and usage.

        A server that goes away or stays silent for ``timeout`` seconds (the child, where it
        shares the server's uid and PID namespace, killed or stopped it; or it ran out of
        memory) is no longer used; the child's group is killed and it counts as killed.
        """
        message, _ = self._receive(timeout)
        if message is None or message.get("type") != "exit":
            self._healthy = False
            child.server_lost = True
            kill_group(child.pid)
            return _killed(), ChildUsage(0.0, 0.0, 0)
        if message.get("leftovers") == -1:
            self._healthy = False  # something of the child survived: this server goes
        status = message.get("status")
        rss = message.get("maxrss_kb")
        usage = ChildUsage(
            _seconds(message.get("utime")),
            _seconds(message.get("stime")),
            rss if isinstance(rss, int) else 0,
        )
        return (status if isinstance(status, int) else _killed()), usage

    def close(self) -> None:
        """Stop the server and everything it started."""
        self._healthy = False
        with contextlib.suppress(OSError):
            self._control.close()
        kill_group(self.proc.pid)
        with contextlib.suppress(ChildProcessError, OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def _receive(self, timeout: float | None) -> tuple[dict[str, Any] | None, int | None]:
        """The server's next message and the pid of the process that sent it (None, None when
        it closed the socket or said nothing in time)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ready, _, _ = select.select([self._control], [], [], left)
                if not ready:
                    return None, None
                data, ancillary, _, _ = self._control.recvmsg(4096, socket.CMSG_SPACE(12))
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return None, None
            if not data:
                return None, None
            return _parse(data), _sender(ancillary)


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write ``data`` to a starting server's stdin and close it, from a thread of its own: a
    server that never reads it only makes that thread fail (when the server is closed), and
    its readiness wait still times out."""

    def write() -> None:
        with contextlib.suppress(OSError, ValueError), pipe:
            pipe.write(data)

    threading.Thread(target=write, name="hyperagents-forkserver-feed", daemon=True).start()


class ForkedProcess:
    """A server's child, seen as the started process of a request.

    Args:
        server: Its fork server.
        pid: Its pid as this engine sees it.
        fds: The engine's ends of its stdin, stdout, stderr, result, reply and status pipes.
    """

    def __init__(self, server: ForkServer, pid: int, fds: list[int]) -> None:
        self.server = server
        self.pid = pid
        self.stdin: IO[bytes] | None = os.fdopen(fds[0], "wb")
        self.stdout: IO[bytes] | None = os.fdopen(fds[1], "rb")
        self.stderr: IO[bytes] | None = os.fdopen(fds[2], "rb")
        self.result_fd, self.reply_fd, self.status_fd = fds[3], fds[4], fds[5]
        self.returncode: int | None = None
        #: Whether it runs in a PID namespace of its own (see :meth:`ForkServer.spawn`).
        self.pid_namespace = False
        #: Whether its server went away before reporting on it.
        self.server_lost = False

    def poll(self) -> int | None:
        """The exit code once the server reported it (None: still running)."""
        return self.returncode

    def wait4(self, timeout: float) -> tuple[int, ChildUsage]:
        """Wait until the child exited (its server reports within ``timeout`` seconds, else it
        counts as killed): its wait status and resource usage."""
        status, usage = self.server.reap(self, timeout)
        self.returncode = os.waitstatus_to_exitcode(status)
        return status, usage

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (after :meth:`wait4`; a child never reaped counts as killed)."""
        return self.returncode if self.returncode is not None else -signal.SIGKILL


def _killed() -> int:
    """The wait status of a process killed by SIGKILL."""
    return int(signal.SIGKILL)


def _seconds(value: Any) -> float:
    """A time the server reported (0 when it is not a number)."""
    return float(value) if isinstance(value, int | float) else 0.0


def _parse(data: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        value = json.loads(data)
        if isinstance(value, dict):
            return value
    return None


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sending process's pid from ``SCM_CREDENTIALS`` (translated by the kernel into this
    engine's PID namespace)."""
    for level, kind, data in ancillary:
        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS) and len(data) >= 12:
            pid, _, _ = _UCRED.unpack(data[: _UCRED.size])
            return pid if pid > 0 else None
    return None

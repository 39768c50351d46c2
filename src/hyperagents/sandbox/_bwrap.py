"""The ``bwrap`` sandbox: bubblewrap namespaces around the process sandbox's limits."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._hiding import hidden_locations, plan_hiding
from hyperagents.sandbox._launcher import Launcher
from hyperagents.sandbox._monitor import descendant_harness
from hyperagents.sandbox._provision import interpreter_dirs

__all__ = ["BwrapSandbox", "bwrap_available"]

#: Where the workspace and the harness appear inside the sandbox.
WORKSPACE = "/workspace"
HARNESS = "/opt/hyperagents/harness.py"
#: System directories exposed read-only (when they exist); everything else is absent.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Files from /etc the dynamic loader and the interpreter need; nothing else of /etc is visible.
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
#: The sandbox's own tmpfs mounts: writable by everyone (mode 1777), sized (see ``tmp_mb``).
_TMPFS = ("/tmp", "/dev/shm")


@functools.cache
def _features(path: str) -> frozenset[str]:
    """Options of this bubblewrap that older versions lack (``--size``, ``--disable-userns``,
    ``--perms`` before ``--tmpfs``: all 0.8)."""
    import subprocess

    try:
        text = subprocess.run([path, "--help"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    help_text = text.stdout.decode("utf-8", "replace") + text.stderr.decode("utf-8", "replace")
    return frozenset(opt for opt in ("--size", "--disable-userns") if opt in help_text)


def bwrap_available(executable: str = "bwrap") -> bool:
    """Whether bubblewrap is installed and can create the namespaces it needs here."""
    path = shutil.which(executable)
    if path is None:
        return False
    import subprocess

    try:
        probe = subprocess.run(
            [path, *_namespace_flags(), "--ro-bind", "/", "/", "--proc", "/proc", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _privileged() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _namespace_flags(features: frozenset[str] = frozenset()) -> list[str]:
    flags = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    flags.append("--unshare-cgroup-try")
    if not _privileged():
        # Unprivileged bubblewrap needs a user namespace to create the others; agent code may
        # not make more (with capabilities there it could mount a tmpfs outside its limits).
        flags.append("--unshare-user")
        if "--disable-userns" in features:
            flags.append("--disable-userns")
    return flags


class BwrapSandbox(Launcher):
    """Runs the harness under bubblewrap: own network (none), PID, IPC and UTS namespaces,
    a new session, ``--die-with-parent``, and a minimal read-only view of the system.

    Visible inside: ``/usr`` (and the ``/bin``, ``/lib`` links), the interpreter's own prefixes
    (standard library and site-packages), the loader cache, a private ``/tmp`` and ``/dev/shm``
    (sized tmpfs, mode 1777), ``/proc`` of its own PID namespace, a minimal ``/dev``, the harness
    (read-only) and the workspace (read-write, at ``/workspace``). Hidden even where they lie
    under a visible directory (covered by an empty read-only tmpfs, files by ``/dev/null``): the
    ``hyperagents`` package (its built-in tasks could regenerate their data), every installed
    task plug-in (the distributions providing a ``hyperagents.tasks`` entry point: packages,
    data directories, files) and the ``hide`` paths (the run's own task). Not visible: home
    directories, the run database, the project, ``/etc`` (but for the loader's files) and every
    other path.

    ``/tmp`` and ``/dev/shm`` hold ``tmp_mb`` MiB each; when the engine runs as root the harness
    resizes them to half the request's memory limit each, so files there cannot hold more
    memory than the limit. The harness drops every capability and installs a system-call filter
    before any agent code is imported: no new namespaces (``--disable-userns`` too, where the
    engine is not root), no mounts, no ptrace, keyrings, BPF or kernel modules.

    When the engine runs as root, the harness switches to a private unprivileged uid before any
    agent code is imported (so the per-user process limit applies to the run alone). Every
    process of the run lives in its PID namespace and dies with it at the wall-clock limit.

    Args:
        python: Interpreter to run (default: the engine's own).
        executable: The bubblewrap binary.
        isolate_user: Switch to a private uid (default: when the engine runs as root).
        expose: Extra host paths to bind read-only at the same place (e.g. a model cache).
        warm: Fork servers to keep started ahead of time (each forks a fresh child per
            request).
        preload: Modules fork servers import ahead of time (e.g. ``("numpy",)``).
        hide: Host paths agent code must not see even where they lie under a visible directory
            (the run's task: :func:`~hyperagents.sandbox.task_locations`); installed task
            plug-ins and the hyperagents package are always hidden.
        tmp_mb: Size of ``/tmp`` and of ``/dev/shm`` inside, each, until the harness resizes them
            to the request's memory limit (it can where the engine runs as root).

    Raises:
        SandboxError: bubblewrap is not installed.
    """

    name = "bwrap"
    isolates_network = True
    reports_usage = True
    server_owns_pid_namespace = True

    def __init__(
        self,
        *,
        python: str | None = None,
        executable: str = "bwrap",
        isolate_user: bool | None = None,
        expose: tuple[str, ...] = (),
        warm: int = 0,
        preload: tuple[str, ...] = (),
        hide: Iterable[str] = (),
        tmp_mb: int = 512,
    ) -> None:
        found = shutil.which(executable)
        if found is None:
            raise SandboxError(f"bubblewrap ({executable}) is not installed")
        self._bwrap = found
        self._features = _features(found)
        self._expose = tuple(os.path.realpath(p) for p in expose)
        self._hidden = hidden_locations(hide)
        self._tmp_mb = max(1, int(tmp_mb))
        super().__init__(python=python, isolate_user=isolate_user, preload=preload)
        self._static = self._static_arguments()
        if warm:
            self.set_warm(warm)

    def _static_arguments(self) -> list[str]:
        args: list[str] = [*_namespace_flags(self._features), "--die-with-parent", "--new-session"]
        created: set[str] = {"/"}

        def ensure_parents(target: str) -> None:
            # bubblewrap creates missing parents with mode 0700, which a private uid could not
            # traverse: create them ourselves, world-traversable.
            parts = Path(target).parts[1:-1]
            current = ""
            for part in parts:
                current += "/" + part
                if current not in created:
                    created.add(current)
                    args.extend(["--perms", "0755", "--dir", current])

        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                args.extend(["--symlink", os.readlink(path), path])
                created.add(path)
            elif os.path.isdir(path):
                args.extend(["--ro-bind", path, path])
                created.add(path)
        # Mounted before the binds below, so that an interpreter living under /tmp (a
        # virtualenv made there, say) is bound on top of the private /tmp, not hidden by it.
        args.extend(["--proc", "/proc", "--dev", "/dev", *self._tmpfs_arguments()])
        created.update({"/proc", "/dev", *_TMPFS})
        for path in _ETC_FILES:
            if os.path.exists(path):
                ensure_parents(path)
                args.extend(["--ro-bind", path, path])
        binds = [p for p in interpreter_dirs(self.python) if not p.startswith("/usr/")] + list(
            self._expose
        )
        bound = [p for p in created if p not in ("/", "/dev", "/proc", *_TMPFS)]
        python_dir = os.path.dirname(os.path.abspath(self.python))
        self._binds = sorted({*binds, python_dir})
        for path in self._binds:
            if _inside(path, bound):
                continue
            ensure_parents(path + "/x")
            args.extend(["--ro-bind", path, path])
            bound.append(path)
        args.extend(self._hiding_arguments(bound))
        args.extend(
            ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", "/opt/hyperagents"]
        )
        if self.isolates_user:
            # CAP_SYS_ADMIN only until the harness has sized its tmpfs mounts: switching to the
            # private uid clears every capability before any agent code is imported.
            args.extend(["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"])
            args.extend(["--cap-add", "CAP_SYS_ADMIN"])
        return args

    def _tmpfs_arguments(self) -> list[str]:
        """The private ``/tmp`` and ``/dev/shm``: sized, writable by all (sticky)."""
        args: list[str] = []
        for path in _TMPFS:
            if "--size" in self._features:  # the same release brought --perms for a tmpfs
                args.extend(["--perms", "1777", "--size", str(self._tmp_mb * 1024 * 1024)])
            args.extend(["--tmpfs", path])
        return args

    def _hiding_arguments(self, bound: list[str]) -> list[str]:
        """Cover what agent code must not see where a bound directory would show it."""
        args: list[str] = []
        for path, is_dir in plan_hiding(self._hidden, keep=bound):
            if not _inside(path, bound):
                continue  # not visible inside anyway
            if is_dir:
                size = ["--size", "4096"] if "--size" in self._features else []
                args.extend(["--perms", "0555", *size, "--tmpfs", path, "--remount-ro", path])
            else:
                args.extend(["--ro-bind", "/dev/null", path])
        return args

    def check(self) -> None:
        """Start the interpreter inside the sandbox once.

        Raises:
            SandboxError: The sandbox cannot run the interpreter here (with bubblewrap's reason).
        """
        import subprocess

        argv = [self._bwrap, *self._static, self.python, "-I", "-S", "-c", "import json"]
        try:
            probe = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"bubblewrap cannot start: {exc}") from exc
        if probe.returncode != 0:
            detail = probe.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise SandboxError(f"bubblewrap cannot run {self.python}: {detail[0]}")

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        argv = [
            self._bwrap,
            *self._static,
            *(self._server_capabilities() if fds.startswith("--serve=") else []),
            "--ro-bind", str(harness), HARNESS,
            "--bind", str(workspace), WORKSPACE,
            "--chdir", WORKSPACE,
            "--setenv", "HOME", WORKSPACE,
            "--setenv", "TMPDIR", "/tmp",
            self.python, "-I", "-S", HARNESS, fds,
        ]  # fmt: skip
        return argv, workspace

    def _server_capabilities(self) -> list[str]:
        """What a fork server keeps (its children drop every capability before agent code):
        making each child's mount and IPC namespaces with its own ``/tmp`` and ``/dev/shm``,
        and killing what a child left in the server's PID namespace (other uids, as root)."""
        if self.isolates_user:  # CAP_SETUID, CAP_SETGID and CAP_SYS_ADMIN are there already
            return ["--cap-add", "CAP_KILL"]
        return ["--cap-add", "CAP_SYS_ADMIN"]

    def _forked_extras(self, *, own_pids: bool) -> dict[str, Any]:
        fresh = {"paths": list(_TMPFS), "size_mb": self._tmp_mb, "proc": own_pids}
        # What was bound under /tmp (an interpreter in a virtualenv there) is bound again on
        # the child's new /tmp, as in a one-shot sandbox.
        fresh["reveal"] = [p for p in self._binds if _inside(p, _TMPFS)]
        return {"fresh_tmpfs": fresh}

    def _request_extras(self) -> dict[str, Any]:
        # Only a root engine's sandbox holds CAP_SYS_ADMIN over its tmpfs mounts (until the
        # harness switches to the private uid); elsewhere they keep their size (``tmp_mb``).
        return {"resize_tmpfs": list(_TMPFS)} if self.privileged and self.isolates_user else {}

    def _harness_pid(self, pid: int) -> int | None:
        # bubblewrap's monitor and its PID-namespace init sit between us and the harness.
        return descendant_harness(pid, "bwrap")

    def _exit_code(self, code: int) -> int:
        # bubblewrap exits with 128 + N when the sandboxed process died of signal N.
        if 128 < code < 128 + 65:
            return -(code - 128)
        return code

    def _check_started(self, code: int, stderr: str) -> None:
        if stderr.startswith("bwrap:") or "\nbwrap:" in stderr:
            line = next(ln for ln in stderr.splitlines() if ln.startswith("bwrap:"))
            raise SandboxError(f"bubblewrap failed: {line}")


def _inside(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)

"""The ``bwrap`` sandbox: bubblewrap namespaces around the process sandbox's limits."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox._monitor import descendant_harness
from hyperagents.sandbox._process import _interpreter_dirs, _Launcher

__all__ = ["BwrapSandbox", "bwrap_available"]

#: Where the workspace and the harness appear inside the sandbox.
WORKSPACE = "/workspace"
HARNESS = "/opt/hyperagents/harness.py"
#: System directories exposed read-only (when they exist); everything else is absent.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Files from /etc the dynamic loader and the interpreter need; nothing else of /etc is visible.
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")


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


def _namespace_flags() -> list[str]:
    flags = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    flags.append("--unshare-cgroup-try")
    if not _privileged():
        # Unprivileged bubblewrap needs a user namespace to create the others.
        flags.append("--unshare-user")
    return flags


class BwrapSandbox(_Launcher):
    """Runs the harness under bubblewrap: own network (none), PID, IPC and UTS namespaces,
    a new session, ``--die-with-parent``, and a minimal read-only view of the system.

    Visible inside: ``/usr`` (and the ``/bin``, ``/lib`` links), the interpreter's own prefixes
    (standard library and site-packages, with the ``hyperagents`` package itself hidden so agent
    code cannot regenerate a task's data), the loader cache, a private ``/tmp`` (tmpfs), ``/proc``
    of its own PID namespace, a minimal ``/dev``, the harness (read-only) and the workspace
    (read-write, at ``/workspace``). Not visible: home directories, the run database, the task's
    files, the project, ``/etc`` (but for the loader's files) and every other path.

    When the engine runs as root, the harness switches to a private unprivileged uid before any
    agent code is imported (so the per-user process limit applies to the run alone). Every
    process of the run lives in its PID namespace and dies with it at the wall-clock limit.

    Args:
        python: Interpreter to run (default: the engine's own).
        executable: The bubblewrap binary.
        isolate_user: Switch to a private uid (default: when the engine runs as root).
        expose: Extra host paths to bind read-only at the same place (e.g. a model cache).
        warm: Processes to keep started ahead of time (each still serves one request).
        preload: Modules warm processes import before their request (e.g. ``("numpy",)``).

    Raises:
        SandboxError: bubblewrap is not installed.
    """

    name = "bwrap"
    isolates_network = True
    reports_usage = True

    def __init__(
        self,
        *,
        python: str | None = None,
        executable: str = "bwrap",
        isolate_user: bool | None = None,
        expose: tuple[str, ...] = (),
        warm: int = 0,
        preload: tuple[str, ...] = (),
    ) -> None:
        found = shutil.which(executable)
        if found is None:
            raise SandboxError(f"bubblewrap ({executable}) is not installed")
        self._bwrap = found
        self._expose = tuple(os.path.realpath(p) for p in expose)
        super().__init__(python=python, isolate_user=isolate_user, warm=warm, preload=preload)
        self._static = self._static_arguments()
        if warm:
            self.set_warm(warm)

    def _static_arguments(self) -> list[str]:
        args: list[str] = [*_namespace_flags(), "--die-with-parent", "--new-session"]
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
        args.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        created.update({"/proc", "/dev", "/tmp"})
        for path in _ETC_FILES:
            if os.path.exists(path):
                ensure_parents(path)
                args.extend(["--ro-bind", path, path])
        binds = [p for p in _interpreter_dirs(self._python) if not p.startswith("/usr/")] + list(
            self._expose
        )
        bound = [p for p in created if p not in ("/", "/tmp", "/dev", "/proc")]

        def covered(path: str) -> bool:
            return any(path == b or path.startswith(b + "/") for b in bound)

        python_dir = os.path.dirname(os.path.abspath(self._python))
        for path in sorted({*binds, python_dir}):
            if covered(path):
                continue
            ensure_parents(path + "/x")
            args.extend(["--ro-bind", path, path])
            bound.append(path)
        for package_dir in _hyperagents_dirs():
            if covered(package_dir):
                args.extend(["--tmpfs", package_dir])
        args.extend(
            ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", "/opt/hyperagents"]
        )
        if self._isolate_user:
            args.extend(["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"])
        return args

    def check(self) -> None:
        """Start the interpreter inside the sandbox once.

        Raises:
            SandboxError: The sandbox cannot run the interpreter here (with bubblewrap's reason).
        """
        import subprocess

        argv = [self._bwrap, *self._static, self._python, "-I", "-S", "-c", "import json"]
        try:
            probe = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"bubblewrap cannot start: {exc}") from exc
        if probe.returncode != 0:
            detail = probe.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise SandboxError(f"bubblewrap cannot run {self._python}: {detail[0]}")

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        argv = [
            self._bwrap,
            *self._static,
            "--ro-bind", str(harness), HARNESS,
            "--bind", str(workspace), WORKSPACE,
            "--chdir", WORKSPACE,
            "--setenv", "HOME", WORKSPACE,
            "--setenv", "TMPDIR", "/tmp",
            self._python, "-I", "-S", HARNESS, fds,
        ]  # fmt: skip
        return argv, workspace

    def _request_extras(self) -> dict[str, Any]:
        return {}

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


def _hyperagents_dirs() -> list[str]:
    """Installed locations of the hyperagents package (hidden inside the sandbox)."""
    import hyperagents

    dirs = {os.path.realpath(p) for p in getattr(hyperagents, "__path__", [])}
    return sorted(d for d in dirs if d != os.path.realpath(sys.prefix))

"""What a sandboxed process is given: its interpreter, its environment, its uid, its workspace.

* :func:`harness_path`: the trusted harness script it runs;
* :func:`interpreter_dirs`: the directories its interpreter reads (the sandboxes expose them);
* :func:`scrubbed_environment`: its whole environment (no credentials, no user settings);
* :class:`UidPool`: private unprivileged uids lent one per concurrent run (engine as root);
* :func:`hand_over` / :func:`move_entries`: a workspace given to that uid, moved into a warm
  process's directory and back.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import threading
from importlib import resources
from pathlib import Path

from hyperagents.exceptions import SandboxError

__all__ = [
    "UidPool",
    "hand_over",
    "harness_path",
    "interpreter_dirs",
    "move_entries",
    "scrubbed_environment",
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


def interpreter_dirs(python: str) -> list[str]:
    """Directories a sandboxed interpreter reads: its prefixes (stdlib, site-packages)."""
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


class UidPool:
    """Unprivileged uids lent to sandboxed runs, one per concurrent run.

    Each engine process takes its own block (derived from its pid) so that engines sharing a
    machine do not share ids: a run's id is then its own, which makes the per-user process limit
    a per-run limit and lets the ``process`` sandbox find and kill everything the run started.
    Every sandbox of one process must therefore lend from the same pool
    (:meth:`for_process`): two pools of one pid would lend the same ids at once, and one job's
    cleanup would kill another's processes.
    """

    #: The pool of each process (by pid: a forked child gets a block of its own).
    _per_process: dict[int, UidPool] = {}  # noqa: RUF012 - shared on purpose, see for_process
    _per_process_lock = threading.Lock()

    @classmethod
    def for_process(cls) -> UidPool:
        """The pool every sandbox of this process lends from."""
        with cls._per_process_lock:
            pool = cls._per_process.get(os.getpid())
            if pool is None:
                pool = cls._per_process[os.getpid()] = cls()
            return pool

    def __init__(self, size: int = 64) -> None:
        base = 200_000 + (os.getpid() % 16_384) * size
        self._free = list(range(base + size - 1, base - 1, -1))
        self._lock = threading.Lock()

    def acquire(self) -> int:
        """Lend a uid.

        Raises:
            SandboxError: Every uid of the block is lent.
        """
        with self._lock:
            if not self._free:
                raise SandboxError("no free sandbox user id (too many concurrent runs)")
            return self._free.pop()

    def release(self, uid: int) -> None:
        """Take a lent uid back."""
        with self._lock:
            self._free.append(uid)


def hand_over(directory: Path, uid: int) -> None:
    """Give the workspace to the sandbox's private uid (readable by its capability-less root)."""
    for root, dirs, files in os.walk(directory):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), uid, uid)
    os.chown(directory, uid, uid)
    os.chmod(directory, 0o755)


def move_entries(source: Path, target: Path) -> None:
    """Move every entry of ``source`` into ``target``: a plain rename where it can be (the
    target has no entry of that name), else as :func:`shutil.move` does (across filesystems,
    or into a directory already there)."""
    for entry in os.listdir(source):
        old, new = os.path.join(source, entry), os.path.join(target, entry)
        if os.path.lexists(new):
            shutil.move(old, new)
            continue
        try:
            os.rename(old, new)
        except OSError:
            shutil.move(old, new)

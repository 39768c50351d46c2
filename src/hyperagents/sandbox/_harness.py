"""Trusted harness executed *inside* the sandboxed process (standalone: stdlib only).

Usage: ``python -I -S _harness.py RESULT_FD,REPLY_FD,STATUS_FD [PRELOAD,MODULES]`` with the
request JSON on stdin and the workspace as the current directory (a fork server, started with
``--serve=CONTROL_FD [PRELOAD,MODULES]``, forks a child per request that does the same: see
:func:`_serve`). It first lowers its own resource
limits (they cannot be raised again by the agent code) and isolates itself, reports that on
``STATUS_FD`` (``{"type": "isolation", ...}`` or ``{"type": "error", "kind": "isolation", ...}``)
and closes it before any agent code is imported, then performs the requested action and writes
JSON lines to ``RESULT_FD``:

* ``{"type": "validation", "ok": bool, "errors": [...], "wall": s, "cpu": s}`` first, from a
  ``solve`` action whose request has a ``validate`` part (``{"entry_points": ...}``): the
  program is validated exactly as by the ``validate`` action, and its instances are solved only
  when it is valid (the engine takes the first such message, and only before any instance);
* ``{"type": "instance", "id": …, "output": …, "wall": s, "cpu": s, "error": str|None}`` per
  instance of a ``solve`` action;
* ``{"type": "progress", "point": {...}}`` for each point a ``train`` action's trainer reports
  (at most :data:`MAX_PROGRESS` of them);
* ``{"type": "result", "value": …}`` once at the end of every action (for ``propose``, an
  arena test agent's ``propose(history, n, seed)`` return value);
* ``{"type": "error", "kind": "exception"|"memory", "error": "...traceback..."}`` when the agent
  code raised.

The agent code's own ``print`` output goes to stderr so it can never be mistaken for a message.
Nothing here is a security boundary against the agent code (it runs in the same process); the
boundary is the process, its limits and the trusted scoring outside.

It is one file on purpose: the interpreter reads it whole before anything runs, ``bwrap`` binds
just this file (read-only) while the hyperagents package stays hidden, and the ``process``
sandbox run as root covers the package's directory, this file's own, before agent code runs.
Sibling modules would need an import path set up before isolation (one agent files could
shadow) and would break any import made after the directory is covered.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import importlib.machinery
import importlib.util
import json
import math
import os
import random
import resource
import signal
import stat
import struct
import sys
import time
import traceback
from collections.abc import Iterable
from typing import Any, NoReturn

#: The C library, opened at start-up (a warm process has it ready when its request comes).
_LIBC = ctypes.CDLL(None, use_errno=True)


class _InstanceTimeout(BaseException):
    """Raised by the per-instance alarm (a BaseException: plain ``except Exception`` misses it)."""


def _isolate(request: dict[str, Any], channel: _Channel) -> None:
    """Give up what the agent code must not have, before any of it is imported.

    * ``unshare_network``: move into a new, empty network namespace (needs CAP_SYS_ADMIN, i.e.
      root outside a user namespace; the ``process`` sandbox asks for it when it runs as root).
    * ``private_mounts``: a private mount and IPC namespace (the ``process`` sandbox as root):
      sized private ``/tmp`` and ``/dev/shm``, the workspace and the interpreter made reachable
      for the private uid, the task's files hidden, ``/proc`` showing its own processes only
      (see :func:`_private_mounts`).
    * ``resize_tmpfs``: size these tmpfs mounts (bubblewrap's ``/tmp`` and ``/dev/shm``) to
      half the memory limit each, so files there cannot hold more memory than the limit.
    * ``fresh_tmpfs``: a child of a fork server (bubblewrap's): new mount and IPC namespaces
      with an empty, sized tmpfs on each of its ``paths`` (see :func:`_fresh_tmpfs`).
    * ``user``: switch every uid and gid to this unprivileged id for good (needs CAP_SETUID /
      CAP_SETGID), so the agent cannot signal the engine, read root-only files or exceed the
      per-user process limit of its own id.
    * always: every capability dropped, ``PR_SET_NO_NEW_PRIVS`` (nothing it executes can regain
      privileges) and a system-call filter (see :func:`_install_seccomp`): no new namespaces,
      no mounts, no ptrace, keyrings, BPF or kernel modules.

    Raises:
        OSError: A step the run needs failed: no agent code may run (the sandbox broke).
    """
    libc = _LIBC
    report: dict[str, Any] = {"type": "isolation", "network": False, "user": None}
    if request.get("unshare_network"):
        clone_newnet = 0x40000000
        report["network"] = libc.unshare(clone_newnet) == 0
    size_mb = _tmpfs_size_mb(request.get("limits"))
    mounts = request.get("private_mounts")
    if isinstance(mounts, dict):
        report["mounts"] = _private_mounts(mounts, size_mb)
    resize = request.get("resize_tmpfs")
    if isinstance(resize, list) and resize:
        report["tmpfs_mb"] = _resize_tmpfs([str(p) for p in resize], size_mb)
    fresh = request.get("fresh_tmpfs")
    if isinstance(fresh, dict):
        report["tmpfs_mb"] = _fresh_tmpfs(fresh, size_mb)
    user = request.get("user")
    if user is not None:
        os.setgroups([])
        os.setresgid(int(user), int(user), int(user))
        os.setresuid(int(user), int(user), int(user))
        report["user"] = os.getuid()
    _drop_capabilities()
    pr_set_no_new_privs = 38
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)
    report["capabilities"] = "none"
    report["seccomp"] = _install_seccomp()
    channel.send(report)


# -- mounts ------------------------------------------------------------------------------------
#: mount(2) flags, and the namespaces a process sandbox run as root leaves.
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWPID = 0x20000, 0x08000000, 0x20000000


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2).

    Raises:
        OSError: The kernel refused.
    """

    def text(value: str | None) -> bytes | None:
        return None if value is None else value.encode()

    options = text(data) if data else None
    if _LIBC.mount(text(source), text(target), text(fstype), ctypes.c_ulong(flags), options):
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _tmpfs_size_mb(limits: Any) -> int | None:
    """Size of each private tmpfs: half the memory limit (two of them hold at most the limit)."""
    memory = limits.get("memory_mb") if isinstance(limits, dict) else None
    if not isinstance(memory, int | float) or memory <= 0:
        return None
    return max(8, int(memory) // 2)


def _resize_tmpfs(paths: list[str], size_mb: int | None) -> int | None:
    """Resize the sandbox's tmpfs mounts (needs CAP_SYS_ADMIN over them); None: left as they
    were mounted (bubblewrap's ``--size``)."""
    if not size_mb:
        return None
    for path in paths:
        flags = _MS_REMOUNT | _MS_NOSUID | _MS_NODEV
        try:
            _mount(None, path, None, flags, f"size={size_mb}m,mode=1777")
        except OSError:
            return None
    return size_mb


def _fresh_tmpfs(spec: dict[str, Any], size_mb: int | None) -> int | None:
    """Give a fork server's child a ``/tmp`` and ``/dev/shm`` of its own, and its own System V
    IPC objects: new mount and IPC namespaces, an empty tmpfs on each of ``spec["paths"]``
    sized to half the memory limit (else ``spec["size_mb"]``). Nothing an earlier request of
    the same server left there is visible, and nothing left now outlives this child's
    namespaces. The ``reveal`` directories that lay under those paths (an interpreter in a
    virtualenv under ``/tmp``) are bound again, read-only. Returns the size in MiB (None:
    unsized).

    Raises:
        OSError: A namespace or a mount could not be made (no agent code may run then).
    """
    if _LIBC.unshare(ctypes.c_int(_CLONE_NEWNS | _CLONE_NEWIPC)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot make private mount and IPC namespaces: {os.strerror(err)}")
    _mount("none", "/", None, _MS_REC | _MS_PRIVATE)
    fallback = spec.get("size_mb")
    size = size_mb or (int(fallback) if isinstance(fallback, int) and fallback > 0 else None)
    options = f"size={size}m,mode=1777" if size else "mode=1777"
    paths = [str(target) for target in spec.get("paths", ())]
    reveal = sorted((str(p) for p in spec.get("reveal", ()) if os.path.isdir(str(p))), key=len)
    handles = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in reveal}
    try:
        for target in paths:
            _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
        _bind_again(reveal, handles, paths, writable="")
    finally:
        for fd in handles.values():
            os.close(fd)
    if spec.get("proc"):  # the child's own PID namespace: it sees nothing of the server
        _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    return size


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _blocked_ancestor(path: str) -> str | None:
    """The outermost directory above ``path`` that other users cannot traverse, if any."""
    current = ""
    for part in path.strip("/").split("/")[:-1]:
        current += "/" + part
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return current
    return None


def _make_dirs(path: str) -> None:
    current = ""
    for part in path.strip("/").split("/"):
        current += "/" + part
        if not os.path.isdir(current):
            os.mkdir(current)
            os.chmod(current, 0o755)


def _private_mounts(spec: dict[str, Any], size_mb: int | None) -> dict[str, Any]:
    """Give a process sandbox run as root a view of the filesystem of its own.

    In new mount and IPC namespaces: a sized, private tmpfs on each of ``spec["tmpfs"]``
    (``/tmp``, ``/dev/shm``: other runs' workspaces there disappear); the directories above the
    workspace and the ``reveal`` directories (the interpreter's) that other users cannot
    traverse (``/root``…) are covered by an empty tmpfs in which only those directories are
    bound again, so the private uid reaches them and nothing else there; the ``hide`` paths
    (the task's files, the hyperagents package) are covered; a new ``/proc`` shows each user
    only its own processes.

    Raises:
        OSError: A mount the run needs failed (without the namespaces, the private uid could
            not reach the workspace or the interpreter).
    """
    cwd = os.getcwd()
    wanted = {cwd, *(str(p) for p in spec.get("reveal", ()) if os.path.isdir(str(p)))}
    reveal = sorted(wanted, key=len)
    tmpfs = [str(p) for p in spec.get("tmpfs", ()) if os.path.isdir(str(p))]
    covers: list[str] = []
    for blocked in sorted({b for p in reveal if (b := _blocked_ancestor(p)) is not None}):
        if not _under(blocked, tmpfs + covers):
            covers.append(blocked)
    if _LIBC.unshare(ctypes.c_int(_CLONE_NEWNS | _CLONE_NEWIPC)) != 0:
        err = ctypes.get_errno()
        if covers:
            raise OSError(err, f"cannot make a private mount namespace: {os.strerror(err)}")
        return {"private": False}
    _mount("none", "/", None, _MS_REC | _MS_PRIVATE)
    handles = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in reveal}
    try:
        sized = f"size={size_mb}m,mode=1777" if size_mb else "mode=1777"
        for target in tmpfs:
            _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, sized)
        for target in covers:
            _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
        _bind_again(reveal, handles, tmpfs + covers, writable=cwd)
    finally:
        for fd in handles.values():
            os.close(fd)
    os.chdir(cwd)
    hidden = _hide([str(p) for p in spec.get("hide", ())], keep=reveal)
    proc = _private_proc() if spec.get("proc") else False
    return {"private": True, "tmpfs_mb": size_mb, "hidden": hidden, "proc": proc}


def _bind_again(paths: list[str], handles: dict[str, int], roots: list[str], writable: str) -> None:
    """Bind each path that a new mount on ``roots`` covered back in place (read-only but for
    ``writable``), from a descriptor opened before it was covered.

    Raises:
        OSError: A mount failed.
    """
    bound: list[str] = []
    for path in paths:  # shortest first: a bound directory already holds those below it
        if not _under(path, roots) or _under(path, bound):
            continue
        _make_dirs(path)
        _mount(f"/proc/self/fd/{handles[path]}", path, None, _MS_BIND | _MS_REC)
        if path != writable:
            flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
            _mount(None, path, None, flags)
        bound.append(path)


def _hide(paths: list[str], keep: list[str]) -> int:
    """Cover each path: a directory with an empty read-only tmpfs, a file with ``/dev/null``.
    A path holding something the run needs (``keep``) is left alone. Returns how many.

    Raises:
        OSError: A mount failed (the run must not go on with the path visible).
    """
    count = 0
    for path in paths:
        if any(_under(needed, [path]) for needed in keep) or os.path.islink(path):
            continue
        if os.path.isdir(path):
            flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
            _mount("tmpfs", path, "tmpfs", flags, "size=4k,mode=0555")
        elif os.path.isfile(path):
            _mount("/dev/null", path, None, _MS_BIND)
            _mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID)
        else:
            continue
        count += 1
    return count


def _private_proc() -> str | bool:
    """Mount a ``/proc`` on which each user sees only its own processes (so agent code finds
    neither the engine's command line nor anything else of other users)."""
    for option in ("hidepid=invisible", "hidepid=2"):
        try:
            _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, option)
        except OSError:
            continue
        return option
    return False


# -- capabilities and the system-call filter -----------------------------------------------------
def _drop_capabilities() -> None:
    """Empty every capability set (ambient first). Agent code then holds no capability, even
    as uid 0 of a user namespace; with no_new_privs, executing a program gives none back.

    Raises:
        OSError: The kernel refused.
    """
    pr_cap_ambient, pr_cap_ambient_clear_all = 47, 4
    _LIBC.prctl(pr_cap_ambient, pr_cap_ambient_clear_all, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two words each): none
    if _LIBC.capset(header, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot drop capabilities: {os.strerror(err)}")


#: System calls agent code never needs and that would let it leave its limits: new namespaces
#: (a user namespace gives the capabilities to mount a tmpfs outside the memory limit), mounts,
#: tracing or reading other processes, keyrings, BPF, perf, userfaultfd, kernel modules, kexec,
#: file handles, io_uring. Numbers per architecture: (x86_64, aarch64); None: no such call.
_DENIED_SYSCALLS: dict[str, tuple[int | None, int | None]] = {
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "open_tree": (428, 428),
    "move_mount": (429, 429), "fsopen": (430, 430), "fsconfig": (431, 431),
    "fsmount": (432, 432), "fspick": (433, 433), "mount_setattr": (442, 442),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "pidfd_getfd": (438, 438), "bpf": (321, 280), "perf_event_open": (298, 241),
    "userfaultfd": (323, 282), "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "swapon": (167, 224), "swapoff": (168, 225), "reboot": (169, 142), "acct": (163, 89),
    "quotactl": (179, 60), "quotactl_fd": (443, 443), "lookup_dcookie": (212, 18),
    "iopl": (172, None), "ioperm": (173, None),
}  # fmt: skip
#: Per architecture: (its column above, AUDIT_ARCH_*, clone, clone3, seccomp).
_SECCOMP_ARCHES = {
    "x86_64": (0, 0xC000003E, 56, 435, 317),
    "aarch64": (1, 0xC00000B7, 220, 435, 277),
}
#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
_CLONE_NEW_FLAGS = 0x7E020000


def _seccomp_filter(machine: str) -> list[tuple[int, int, int, int]] | None:
    """The classic BPF program of the filter for this architecture (None: not supported)."""
    arch = _SECCOMP_ARCHES.get(machine)
    if arch is None:
        return None
    column, audit_arch, clone, clone3, _ = arch
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|…|K, BPF_RET|K
    allow, kill = 0x7FFF0000, 0x80000000  # SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38  # SECCOMP_RET_ERRNO
    program = [(ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, kill), (ld, 0, 0, 0)]
    if machine == "x86_64":  # x32 system calls (bit 30): not this ABI
        program += [(jge, 0, 1, 0x40000000), (ret, 0, 0, kill)]
    for numbers in _DENIED_SYSCALLS.values():
        number = numbers[column]
        if number is not None:
            program += [(jeq, 0, 1, number), (ret, 0, 0, eperm)]
    # clone3 passes its flags in memory the filter cannot read: ENOSYS makes the C library fall
    # back to clone, whose flags (the first argument) are checked for new namespaces.
    program += [(jeq, 0, 1, clone3), (ret, 0, 0, enosys)]
    program += [(jeq, 0, 3, clone), (ld, 0, 0, 16), (jset, 0, 1, _CLONE_NEW_FLAGS)]
    program += [(ret, 0, 0, eperm), (ret, 0, 0, allow)]
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _install_seccomp() -> bool:
    """Install the system-call filter for this process and all its threads (and everything
    they start). False where the architecture has no filter here.

    Raises:
        OSError: The kernel refused the filter.
    """
    machine = os.uname().machine
    program = _seccomp_filter(machine)
    if program is None:
        return False
    code = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    nr_seccomp = _SECCOMP_ARCHES[machine][4]
    set_mode_filter, filter_flag_tsync = 1, 1
    args = (ctypes.c_long(set_mode_filter), ctypes.c_long(filter_flag_tsync), ctypes.byref(fprog))
    if _LIBC.syscall(ctypes.c_long(nr_seccomp), *args) == 0:
        return True
    pr_set_seccomp, seccomp_mode_filter = 22, 2
    if _LIBC.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) == 0:
        return True
    err = ctypes.get_errno()
    raise OSError(err, f"cannot install the system-call filter: {os.strerror(err)}")


def _on_cpu_limit(signum: int, frame: Any) -> None:
    """Soft CPU limit reached: say so while we still can, then stop."""
    with contextlib.suppress(Exception):
        _CHANNEL_FOR_SIGNALS[0].send(
            {"type": "error", "kind": "cpu", "error": "CPU-time limit exceeded"}
        )
    os._exit(152)


_CHANNEL_FOR_SIGNALS: list[_Channel] = []


def _set_limits(limits: dict[str, Any]) -> None:
    def lower(which: int, value: float | int | None) -> None:
        if value is None:
            return
        _, hard = resource.getrlimit(which)
        new = int(value)
        if hard != resource.RLIM_INFINITY:
            new = min(new, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (new, new))

    cpu = limits.get("cpu_time")
    if cpu is not None:
        # A warm process already spent CPU starting up: the budget counts from the request.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft_cpu = max(1, math.ceil(cpu + usage.ru_utime + usage.ru_stime))
        # Soft limit first (SIGXCPU), then the hard one (SIGKILL) a second later.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, soft_cpu + 1))
    mem = limits.get("memory_mb")
    if mem:
        lower(resource.RLIMIT_AS, int(mem) * 1024 * 1024)
    nproc = limits.get("max_processes")
    if nproc:
        lower(resource.RLIMIT_NPROC, nproc)
    fsize = limits.get("max_file_size_mb")
    if fsize:
        lower(resource.RLIMIT_FSIZE, int(fsize) * 1024 * 1024)
    lower(resource.RLIMIT_CORE, 0)


class _Channel:
    def __init__(self, fd: int) -> None:
        import threading

        self._fd = fd
        # Agent threads (LLM calls) and the harness share the channel: one line at a time.
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, allow_nan=False, default=_no_json) + "\n").encode("utf-8")
        view = memoryview(data)
        with self._lock:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]


def _no_json(value: Any) -> Any:
    # numpy scalars and arrays, tuples, sets: convert what has an obvious JSON form.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"output of type {type(value).__name__} is not JSON-serialisable")


class _SeedOnImport:
    """Meta-path finder that seeds ``numpy.random`` right after the agent first imports numpy
    (importing numpy up front would cost every run ~50 ms, used or not)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "numpy":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec("numpy")
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module
        seed = self.seed

        def exec_module(module: Any) -> None:
            original(module)
            with contextlib.suppress(Exception):
                module.random.seed(seed % (2**32))

        loader.exec_module = exec_module
        return spec


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _SeedOnImport)]
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # preloaded by a warm process
        with contextlib.suppress(Exception):
            numpy.random.seed(seed % (2**32))
    else:
        sys.meta_path.insert(0, _SeedOnImport(seed))


#: Modules the engine runs by their file: nothing else may be imported in their place.
PROTECTED_MODULES = ("task_agent.py", "meta_agent.py", "select_parent.py", "reviewer.py")

#: A program's top-level modules named ``meta_*.py`` are its meta agent: ``meta_agent.py`` and
#: the sibling modules it imports by name (``meta_prompt.py``…). They are protected like the
#: entry modules, and every part of the engine counts them as meta files (see
#: :func:`is_meta_module`).
META_MODULE_PREFIX = "meta_"


def is_meta_module(path: str) -> bool:
    """Whether ``path`` (relative, ``/``-separated) is a module of the program's meta agent: a
    top-level ``meta_*.py`` file (``meta_agent.py`` itself included)."""
    return "/" not in path and path.startswith(META_MODULE_PREFIX) and path.endswith(".py")


def _importable_suffix(suffix: str) -> bool:
    """Whether ``name + suffix`` is something ``import name`` could load instead of ``name.py``."""
    if suffix in importlib.machinery.all_suffixes() or suffix in (".pyc", ".pyo", ".pyw"):
        return True
    return suffix.endswith((".so", ".pyd"))


def shadowing_errors(paths: Iterable[str], entry_files: Iterable[str] = ()) -> list[str]:
    """Why a program's files would be imported in place of one of its entry modules.

    ``import task_agent`` takes a package ``task_agent/`` or a compiled module
    (``task_agent.so``, ``task_agent.cpython-311-x86_64-linux-gnu.so``) before
    ``task_agent.py``, and cached bytecode (``__pycache__/task_agent.*.pyc``) can stand in for
    the source: every check of the declared file (rules, review, approval) would see a decoy
    while the decoy runs. A program holding any of them is refused.

    Args:
        paths: The program's paths, relative and ``/``-separated: files, and directories
            (those without files in them too) written with a trailing ``/``.
        entry_files: Declared entry modules (``task_agent.py``…); :data:`PROTECTED_MODULES` are
            always checked, and so are the meta agent's modules among ``paths``
            (:func:`is_meta_module`), which it imports by name.

    Returns:
        One reason per offending path (empty: nothing shadows an entry module).
    """
    files: set[str] = set()
    dirs: set[str] = set()
    for path in paths:
        parts = [part for part in path.split("/") if part]
        dirs.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        (dirs if path.endswith("/") else files).add("/".join(parts))
    errors: list[str] = []
    meta_modules = {path for path in files if is_meta_module(path)}
    for entry in sorted({*PROTECTED_MODULES, *entry_files, *meta_modules}):
        if not entry.endswith(".py"):
            continue
        folder, _, name = entry[:-3].rpartition("/")
        prefix = f"{folder}/" if folder else ""
        if prefix + name in dirs:
            errors.append(
                f"{prefix}{name}/: a directory named like the entry module {entry} would be "
                "imported instead of it (a package shadows the module): not allowed"
            )
        for path in sorted(files):
            head, _, leaf = path.rpartition("/")
            if leaf == f"{name}.py" or not leaf.startswith(f"{name}."):
                continue
            if head == folder and _importable_suffix(leaf[len(name) :]):
                what = "cached bytecode" if leaf.endswith((".pyc", ".pyo")) else "a compiled module"
            elif head == f"{prefix}__pycache__" and leaf.endswith((".pyc", ".pyo")):
                what = "cached bytecode"
            else:
                continue
            errors.append(
                f"{path}: {what} named like the entry module {entry} could be imported instead "
                "of it: not allowed"
            )
    return errors


def _workspace_paths(limit: int = 100_000) -> list[str]:
    """Every path in the workspace (directories with a trailing ``/``), at most ``limit``."""
    found: list[str] = []
    for root, dirs, files in os.walk("."):
        base = root[2:]
        for name in dirs:
            found.append(os.path.join(base, name) + "/")
        found.extend(os.path.join(base, name) for name in files)
        if len(found) >= limit:
            break
    return found


#: Code this process compiled, by (path, source): each file is compiled once per process
#: (validation's compile check and the import share it). A fork server's child inherits the
#: code its server compiled, before any request, from the sandbox's known sources (see
#: :func:`_compile_known`): a file byte-identical to one of them, at the same path, is not
#: compiled again. The key holds the whole source, so only that exact text maps to the code.
_COMPILED: dict[tuple[str, bytes], Any] = {}
#: Bytes of source :data:`_COMPILED` may hold (what is compiled beyond that is not kept), and
#: the bytes it holds.
_COMPILED_CAP = 32 << 20
_COMPILED_HELD = [0]
#: How many files this process compiled (a fork server's child counts on from its server's).
_COMPILES = [0]


def _compiled(source: bytes, path: str) -> Any:
    """``source`` compiled as the file ``path`` (from :data:`_COMPILED` when it is there).

    Raises:
        SyntaxError, ValueError, RecursionError, MemoryError: It does not compile.
    """
    key = (path, source)
    code = _COMPILED.get(key)
    if code is None:
        code = compile(source, path, "exec", dont_inherit=True)
        _COMPILES[0] += 1
        if _COMPILED_HELD[0] + len(source) <= _COMPILED_CAP:
            _COMPILED[key] = code
            _COMPILED_HELD[0] += len(source)
    return code


def _compile_known(workspace: str, limit: int = 16 << 20) -> dict[str, str]:
    """A fork server's known sources: read ``{path: text}`` (JSON, at most ``limit`` bytes) from
    stdin, and compile each ``.py`` file as the file it would be in the workspace, so that no
    child compiles it again. These come from the engine (e.g. the run's seed program), before
    any request: nothing of a request is ever kept in the server. Anything unreadable or that
    does not compile is skipped (a child then compiles, and reports, it itself).

    Returns:
        The known ``.py`` sources that compiled, by relative path.
    """
    try:
        data = sys.stdin.buffer.read(limit + 1)
        known = json.loads(data.decode("utf-8")) if 0 < len(data) <= limit else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict):
        return {}
    compiled: dict[str, str] = {}
    for relative, text in sorted(known.items()):
        if not (isinstance(relative, str) and relative.endswith(".py") and isinstance(text, str)):
            continue
        with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
            _compiled(text.encode("utf-8"), os.path.join(workspace, relative))
            compiled[relative] = text
    return compiled


#: Standard-library modules a fork server never imports ahead of time, whoever imports them:
#: they act when imported (print, open a browser) or pull in a GUI toolkit.
_NEVER_PRELOAD = frozenset(
    {"__main__", "__hello__", "__phello__", "antigravity", "idlelib", "this", "tkinter",
     "turtle", "turtledemo"}
)  # fmt: skip


def _stdlib_imports(known: dict[str, str]) -> list[str]:
    """The standard-library modules the known sources import by absolute name (``import a.b``,
    ``from a.b import c``), but none that a known file or folder would provide in the
    workspace instead (``a.py``, ``a/``)."""
    import ast

    local = {path.split("/", 1)[0].removesuffix(".py") for path in known}
    names: set[str] = set()
    for text in known.values():
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return sorted(
        name
        for name in names
        if (top := name.partition(".")[0]) in sys.stdlib_module_names
        and top not in _NEVER_PRELOAD
        and top not in local
    )


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Runs the declared file's own source: cached bytecode files are never consulted."""

    def get_code(self, fullname: str) -> Any:
        return _compiled(self.get_data(self.path), self.path)


class _MetaModuleFinder:
    """Imports the meta agent's sibling modules (``import meta_prompt``) from their files in the
    workspace, source only, whatever else has their names (a package ``meta_prompt/``, a
    compiled module, cached bytecode): the file that approval and the rules checked is the one
    that runs."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if path is not None or not is_meta_module(f"{fullname}.py"):
            return None
        location = os.path.join(self.root, f"{fullname}.py")
        if not os.path.isfile(location):
            return None
        loader = _SourceOnlyLoader(fullname, location)
        return importlib.util.spec_from_file_location(fullname, location, loader=loader)


def _load_module(module: str) -> Any:
    """Import an entry module (``a.b``) from its declared file (``a/b.py`` in the workspace),
    whatever else there has that name: a package ``a/b/`` or a compiled ``b.so`` is not run.

    Raises:
        ImportError: The declared file is missing.
        BaseException: Whatever running the module raised.
    """
    relative = module.replace(".", "/") + ".py"
    path = os.path.join(os.getcwd(), relative)
    if not os.path.isfile(path):
        raise ImportError(f"{relative}: required file is missing")
    parent, _, leaf = module.rpartition(".")
    if parent:
        importlib.import_module(parent)
    loader = _SourceOnlyLoader(module, path)
    spec = importlib.util.spec_from_file_location(module, path, loader=loader)
    if spec is None:  # pragma: no cover - a file location always gives a spec
        raise ImportError(f"{relative}: cannot be loaded")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    try:
        loader.exec_module(loaded)
    except BaseException:
        sys.modules.pop(module, None)
        raise
    if parent:
        setattr(sys.modules[parent], leaf, loaded)
    return loaded


def _load(module: str, function: str, loaded: Any = None) -> Any:
    """The callable ``function`` of ``module`` (imported now unless ``loaded`` is given)."""
    mod = loaded if loaded is not None else _load_module(module)
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise AttributeError(f"{module}.py does not define a callable {function!r}")
    return fn


#: True while a program's entry modules are imported for validation: ``llm.complete`` then
#: answers as a validation always did (with no model), even inside a ``solve`` whose engine
#: would answer its instances' calls.
_VALIDATING = [False]


def _compile_errors() -> list[str]:
    """Why any ``.py`` file of the workspace does not compile (nothing of it is run)."""
    errors: list[str] = []
    for root, dirs, files in os.walk("."):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)[2:]
            try:
                with open(path, "rb") as handle:
                    source = handle.read()
                # As the file the import will compile: it then reuses this code.
                _compiled(source, os.path.join(os.getcwd(), path))
            except SyntaxError as exc:
                errors.append(f"{path}:{exc.lineno}: syntax error: {exc.msg}")
            except (ValueError, RecursionError, MemoryError) as exc:
                errors.append(f"{path}: does not compile: {exc!r}")
    return errors


def _validation(entry_points: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Validate the program in the workspace: nothing shadows an entry module, every ``.py``
    file compiles, and each entry module imports and defines its callables.

    Returns:
        The errors (none: valid), and the entry modules imported, by module name (a ``solve``
        that validated first runs these rather than importing its module a second time).
    """
    errors = shadowing_errors(_workspace_paths(), entry_points)
    errors += _compile_errors()
    modules: dict[str, Any] = {}
    if errors:
        return errors, modules
    _VALIDATING[0] = True
    try:
        for path, names in sorted(entry_points.items()):
            module = path[:-3].replace("/", ".")
            if not os.path.isfile(path):
                errors.append(f"{path}: required file is missing")
                continue
            try:
                mod = _load_module(module)
            except BaseException as exc:
                errors.append(f"{path}: import failed: {type(exc).__name__}: {exc}"[:500])
                continue
            modules[module] = mod
            for name in names:
                if not callable(getattr(mod, name, None)):
                    errors.append(f"{path}: does not define a callable {name!r}")
    finally:
        _VALIDATING[0] = False
    return errors, modules


def _action_validate(request: dict[str, Any], channel: _Channel) -> Any:
    errors, _ = _validation(request.get("entry_points", {}))
    return {"ok": not errors, "errors": errors}


def _validate_first(part: dict[str, Any], channel: _Channel) -> dict[str, Any] | None:
    """The validation part of a ``solve``: validate as the ``validate`` action does, then send
    ``{"type": "validation", "ok", "errors", "wall", "cpu"}`` before any instance is solved.

    Returns:
        The entry modules imported (None: the program is invalid and nothing is solved).
    """
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    errors, modules = _validation(part.get("entry_points", {}))
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    message = {"type": "validation", "ok": not errors, "errors": errors, "wall": wall}
    message.update(cpu=cpu)
    channel.send(message)
    return None if errors else modules


def _action_solve(request: dict[str, Any], channel: _Channel) -> Any:
    module = request.get("module", "task_agent")
    modules: dict[str, Any] = {}
    part = request.get("validate")
    if isinstance(part, dict):
        validated = _validate_first(part, channel)
        if validated is None:
            return {"instances": 0, "valid": False}
        modules = validated
        # The instances start from the run's seed, as in a process of their own.
        _seed_everything(int(request.get("seed", 0)))
    fn = _load(module, request.get("function", "solve"), modules.get(module))
    return _solve_instances(fn, request, channel)


def _instance_limit(item: dict[str, Any], timeout: float) -> float:
    """The alarm of one instance: its own ``timeout`` when it has one below the request's
    (the engine's adaptive limit), else the request's ``instance_timeout``."""
    own = item.get("timeout")
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return float(own) if timeout <= 0 else min(float(own), timeout)
    return timeout


def _solve_instances(fn: Any, request: dict[str, Any], channel: _Channel) -> Any:
    """Run ``fn`` on each instance under the per-instance alarm; one message per instance."""
    timeout = float(request.get("instance_timeout") or 0)

    def on_alarm(signum: int, frame: Any) -> None:
        raise _InstanceTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    done = 0
    for item in request.get("instances", []):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        error: str | None = None
        output: Any = None
        limit = _instance_limit(item, timeout)
        try:
            if limit > 0:
                signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                output = fn(item["inputs"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _InstanceTimeout:
            error = f"timeout: instance took longer than {limit:g} s"
        except MemoryError:
            error = "memory: MemoryError"
        except RecursionError:
            error = "crash: RecursionError"
        except Exception as exc:  # the agent's failure on this instance
            error = f"exception: {type(exc).__name__}: {exc}"[:1000]
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        message = {"type": "instance", "id": item["id"], "output": output, "wall": wall}
        message.update(cpu=cpu, error=error)
        try:
            channel.send(message)
        except (TypeError, ValueError) as exc:
            message.update(output=None, error=f"invalid output: {exc}"[:1000])
            channel.send(message)
        done += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"instances": done, "peak_memory_mb": peak}


def _action_improve(request: dict[str, Any], channel: _Channel) -> Any:
    fn = _load(request.get("module", "meta_agent"), request.get("function", "improve"))
    return fn(os.getcwd(), request.get("report", {}))


def _action_select(request: dict[str, Any], channel: _Channel) -> Any:
    fn = _load(request.get("module", "select_parent"), request.get("function", "select_parent"))
    return fn(request.get("archive", []), request.get("seed", 0))


def _action_propose(request: dict[str, Any], channel: _Channel) -> Any:
    """``test_agent.propose(history, n, seed)``: an arena test agent's candidate inputs (the
    engine bounds, filters and labels what comes back; see :mod:`hyperagents.arena`)."""
    _seed_everything(int(request.get("seed", 0)))
    fn = _load(request.get("module", "test_agent"), request.get("function", "propose"))
    return fn(request.get("history", []), int(request.get("n", 0)), int(request.get("seed", 0)))


#: Progress points a trainer may send (the rest are dropped: the curve is in its result).
MAX_PROGRESS = 2000

#: Environment variables the common numeric libraries read their thread count from.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def _bound_threads(threads: int) -> None:
    """Hold the numeric libraries to ``threads`` threads: through the environment before they
    are imported, and through torch itself where it is imported already."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.set_num_threads(threads)


def _action_train(request: dict[str, Any], channel: _Channel) -> Any:
    """``trainer.train(request["train"], progress)``: the training stage's one call, with the
    threads bounded and each progress point sent as a message as it comes."""
    spec = request.get("train", {})
    threads = max(1, int(spec.get("threads") or 1))
    _bound_threads(threads)
    _seed_everything(int(spec.get("seed", 0)))
    fn = _load(request.get("module", "trainer"), request.get("function", "train"))
    _bound_threads(threads)  # the trainer's module may have imported torch
    sent = [0]

    def progress(point: Any) -> None:
        if sent[0] < MAX_PROGRESS and isinstance(point, dict):
            sent[0] += 1
            with contextlib.suppress(TypeError, ValueError):  # a point JSON cannot hold
                channel.send({"type": "progress", "point": point})

    return fn(spec, progress)


_ACTIONS = {
    "train": _action_train,
    "validate": _action_validate,
    "solve": _action_solve,
    "improve": _action_improve,
    "select": _action_select,
    "propose": _action_propose,
}


def _preload(modules: list[str]) -> None:
    """Import trusted modules before any agent code (warm processes: saves each run the time)."""
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _add_site_packages() -> None:
    """The interpreter runs with ``-S``: no ``site``, so no ``.pth`` file is executed (which also
    saves ~15 ms a start) but neither is a virtual environment detected. Do what ``site`` would
    for the paths: find ``pyvenv.cfg`` beside the executable's directory, adopt the environment
    as ``sys.prefix``, and put its site-packages (and the base ones when the environment
    includes them) on ``sys.path``."""
    import sysconfig

    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    config = os.path.join(venv, "pyvenv.cfg")
    prefixes = [sys.prefix]
    if os.path.isfile(config):
        settings: dict[str, str] = {}
        with contextlib.suppress(OSError), open(config, encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.partition("=")
                if sep:
                    settings[key.strip().lower()] = value.strip().lower()
        sys.prefix = sys.exec_prefix = venv
        prefixes = [venv]
        if settings.get("include-system-site-packages") == "true":
            prefixes.append(sys.base_prefix)
    for prefix in prefixes:
        for key in ("purelib", "platlib"):
            path = sysconfig.get_path(key, vars={"base": prefix, "platbase": prefix})
            if path and path not in sys.path and os.path.isdir(path):
                sys.path.append(path)


class _LLMError(Exception):
    """Raised by ``llm.complete`` when the engine could not (or would not) answer."""


def _read_llm_answer(reply_fd: int, buffered: bytearray, request_id: int) -> dict[str, Any]:
    """Read the engine's answer to request ``request_id`` from the reply pipe, skipping the late
    answers of earlier calls that were interrupted (``buffered``: bytes read but not yet used,
    kept across calls).

    Raises:
        _LLMError: The engine closed the channel, or answered out of step.
    """
    while True:
        end = buffered.find(b"\n")
        while end < 0:
            chunk = os.read(reply_fd, 65536)
            if not chunk:
                raise _LLMError("the engine closed the LLM channel")
            buffered.extend(chunk)
            end = buffered.find(b"\n")
        line = bytes(buffered[:end])
        del buffered[: end + 1]
        answer = json.loads(line)
        answer_id = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(answer_id, int) and answer_id < request_id:
            continue  # the late answer of a call that was interrupted: skip it
        if answer_id != request_id:
            raise _LLMError("LLM channel out of step")
        return dict(answer)


def _install_llm_bridge(channel: _Channel, reply_fd: int) -> None:
    """Make ``import llm`` give sandboxed code a ``complete(...)`` answered by the engine.

    The request goes out on the result channel; the answer comes back on a pipe only the engine
    writes. The sandbox has no network and never sees a key: the engine's LLM gateway makes
    the call, accounts for it and records it.
    """
    import threading
    import types

    lock = threading.Lock()
    counter = [0]
    buffered = bytearray()  # kept across calls: an interrupted call's answer arrives late

    def complete(
        messages: Any,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        purpose: str = "",
    ) -> str:
        """Ask the run's language model; return its reply text.

        Args:
            messages: A prompt string, or chat messages ``[{"role": ..., "content": ...}]``.
            temperature: Sampling temperature (None: the gateway's default).
            max_tokens: Reply length limit.
            purpose: A label recorded with the call.

        Raises:
            llm.LLMError: No model is configured, a budget is spent, or the call failed.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
        ):
            raise _LLMError("messages must be a string or a list of {'role', 'content'} dicts")
        if _VALIDATING[0]:  # the answer a validation's engine, which has no model, gives
            raise _LLMError("no language model is configured for this run")
        with lock:
            counter[0] += 1
            request_id = counter[0]
            channel.send(
                {
                    "type": "llm_request",
                    "id": request_id,
                    "messages": messages,
                    "params": {"temperature": temperature, "max_tokens": max_tokens},
                    "purpose": str(purpose),
                }
            )
            answer = _read_llm_answer(reply_fd, buffered, request_id)
        if answer.get("error"):
            raise _LLMError(str(answer["error"]))
        return str(answer.get("text", ""))

    module = types.ModuleType("llm", "The run's language model, reached through the engine.")
    module.complete = complete  # type: ignore[attr-defined]
    module.LLMError = _LLMError  # type: ignore[attr-defined]
    sys.modules["llm"] = module


def main() -> int:
    _add_site_packages()
    if sys.argv[1].startswith("--serve="):
        return _serve(int(sys.argv[1][8:]), sys.argv[2] if len(sys.argv) > 2 else "")
    result_fd, reply_fd, status_fd = (int(fd) for fd in sys.argv[1].split(","))
    if len(sys.argv) > 2 and sys.argv[2]:
        _preload(sys.argv[2].split(","))
    return _run_request(result_fd, reply_fd, status_fd)


def _run_request(result_fd: int, reply_fd: int, status_fd: int) -> int:
    """Read one request on stdin, isolate, perform it; return the exit code."""
    channel = _Channel(result_fd)
    _install_llm_bridge(channel, reply_fd)
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    _CHANNEL_FOR_SIGNALS.append(channel)
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    _set_limits(request.get("limits", {}))
    # The status pipe is the harness's own word to the engine: written and closed before any
    # agent code is imported, so nothing a candidate does can claim the sandbox broke.
    status = _Channel(status_fd)
    try:
        _isolate(request, status)
    except OSError as exc:
        status.send({"type": "error", "kind": "isolation", "error": f"cannot isolate: {exc}"})
        return 3
    finally:
        os.close(status_fd)
    sys.path.insert(0, os.getcwd())
    sys.meta_path.insert(0, _MetaModuleFinder(os.getcwd()))
    # Agent prints go to stderr: stdout carries nothing the engine interprets.
    sys.stdout = sys.stderr
    _seed_everything(int(request.get("seed", 0)))
    code = _perform(request, channel)
    if request.get("await_ack"):
        # A line the engine can always read (the final message may be one it refuses).
        channel.send({"type": "done"})
        _await_ack(reply_fd)
    return code


# -- the fork server -------------------------------------------------------------------------
#: The descriptors a request brings, in this order: the child's stdin, stdout and stderr, then
#: the result channel, the reply pipe and the status pipe.
_REQUEST_FDS = 6
_PR_SET_DUMPABLE = 4


def _serve(control_fd: int, preload: str) -> int:
    """Fork-server mode: import what every request needs once, then fork a fresh child per
    request. Each request arrives on the control socket as a header and the child's six pipe
    descriptors; the child says ``forked`` on the socket (the engine reads its pid from the
    socket's credentials), closes it and runs the request exactly as a one-shot harness would
    (limits, isolation, the action). The server waits for it, kills whatever it left behind
    (``kill_leftovers``: in a PID namespace of its own), and reports the exit status and the
    child's resource usage. The server never reads a request's body, so a child holds nothing
    of an earlier one; it is not dumpable, so no child can read or write its memory.
    """
    import socket

    control = socket.socket(fileno=control_fd)
    if preload:
        _preload(preload.split(","))
    _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    # Children start in the workspace; the server itself stays out of it (a sandbox finds what
    # a child left behind by its working directory there).
    workspace = os.getcwd()
    os.chdir("/")  # nothing is imported from the workspace ahead of a request
    # What the harness itself imports in every child (its channels' locks), then the standard
    # library the known sources import.
    _preload(["threading", *_stdlib_imports(_compile_known(workspace))])
    # What the server holds now is shared by every child, copy-on-write: out of the collector's
    # sight, so a child's collections do not touch (and copy) those pages.
    gc.collect()
    gc.freeze()
    own_pids = _own_pid_namespace()
    _send_packet(control, {"type": "ready"})
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 65536, _REQUEST_FDS)
        except OSError:
            return 0
        try:
            header = json.loads(data) if data else None
        except ValueError:
            header = None
        if len(fds) != _REQUEST_FDS or not isinstance(header, dict):
            for fd in fds:
                os.close(fd)
            return 0 if not data else 2  # the engine closed the socket, or broke the protocol
        _serve_one(control, fds, header, workspace, own_pids)


def _own_pid_namespace() -> int | None:
    """A descriptor of this server's PID namespace, when the server can make a new namespace
    for each request's child and come back to its own after forking into it (None: it cannot,
    and each request's child makes one itself, from outside it; see
    :func:`_enter_pid_namespace`). A forked probe tries both first: a server whose own next
    child would be stranded in a namespace it cannot leave is never made."""
    try:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    probe = os.fork()
    if probe == 0:
        made = _LIBC.unshare(ctypes.c_int(_CLONE_NEWPID)) == 0
        os._exit(0 if made and _LIBC.setns(own, ctypes.c_int(_CLONE_NEWPID)) == 0 else 1)
    _, status = os.waitpid(probe, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        os.close(own)
        return None
    return own


def _serve_one(
    control: Any, fds: list[int], header: dict[str, Any], workspace: str, own_pids: int | None
) -> None:
    """Fork the child of one request, wait for it, clean up after it and report.

    With ``pid_namespace`` asked for and ``own_pids`` (this server's PID namespace), the child
    is forked into a new PID namespace as its init (see :func:`_namespace_init`), which tells
    the request's wait status on a pipe; the server then goes back to its own namespace.
    """
    forked = None
    if header.get("pid_namespace") and own_pids is not None:
        forked = _fork_namespace_init(control, fds, workspace, header, own_pids)
    told, pid = forked if forked is not None else (None, os.fork())
    if pid == 0:
        if own_pids is not None:
            os.close(own_pids)  # the server's namespace is nothing a request may hold
        _forked_child(control, fds, workspace, header)
    for fd in fds:
        os.close(fd)
    _, status, usage = os.wait4(pid, 0)
    if told is not None:  # the init's exit stands for nothing: the request's status does
        with contextlib.suppress(OSError):
            status = _told_status(os.read(told, 32))
        os.close(told)
    left = _kill_leftovers() if header.get("kill_leftovers") else 0
    report = {"type": "exit", "status": status, "utime": usage.ru_utime}
    report.update(stime=usage.ru_stime, maxrss_kb=usage.ru_maxrss)
    _send_packet(control, {**report, "leftovers": left})


def _fork_namespace_init(
    control: Any, fds: list[int], workspace: str, header: dict[str, Any], own_pids: int
) -> tuple[int, int] | None:
    """Fork the init of a new PID namespace for one request (see :func:`_namespace_init`),
    then return this server to its own namespace.

    Returns:
        The pipe the init tells the request's wait status on, and the init's pid (None: no
        namespace could be made now; the request's child then tries itself).

    Raises:
        OSError: The server could not come back to its own namespace (it then ends, and the
            engine replaces it).
    """
    if _LIBC.unshare(ctypes.c_int(_CLONE_NEWPID)) != 0:
        return None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.close(own_pids)
        _namespace_init(control, fds, workspace, header, write_end)
    os.close(write_end)
    if _LIBC.setns(own_pids, ctypes.c_int(_CLONE_NEWPID)) != 0:
        raise OSError(ctypes.get_errno(), "setns back to the server's PID namespace failed")
    return read_end, pid


def _namespace_init(
    control: Any, fds: list[int], workspace: str, header: dict[str, Any], tell: int
) -> None:
    """The first process of a request's PID namespace, laid out as in a one-shot sandbox: it
    forks the request's process (the namespace's second), reaps until that one exits, writes
    its wait status on ``tell`` and leaves (everything left in the namespace dies with it).
    Nothing of the request can see or signal the server. Never returns."""
    try:
        os.setsid()
        worker = os.fork()
        if worker == 0:
            os.close(tell)
            _forked_child(control, fds, workspace, header, in_namespace=True)
    except BaseException:
        os._exit(0)  # told nothing: the server reports the request killed
    _init_until(worker, tell)


def _forked_child(
    control: Any,
    fds: list[int],
    workspace: str,
    header: dict[str, Any],
    *,
    in_namespace: bool = False,
) -> None:
    """The child of one request: its own session (and with ``pid_namespace``, a PID namespace
    of its own, of which it is the second process: ``in_namespace`` when it is already there,
    else it makes one), its pipes as stdin, stdout and stderr, the workspace as its directory;
    then the request as in a one-shot harness. Never returns."""
    code = 70
    try:
        os.setsid()
        own_pids = in_namespace or (bool(header.get("pid_namespace")) and _enter_pid_namespace())
        os.chdir(workspace)
        _send_packet(control, {"type": "forked", "pid_namespace": own_pids})
        control.close()
        stdin_fd, stdout_fd, stderr_fd, result_fd, reply_fd, status_fd = fds
        for target, fd in ((0, stdin_fd), (1, stdout_fd), (2, stderr_fd)):
            os.dup2(fd, target)
            os.close(fd)
        sys.argv[1:] = [f"{result_fd},{reply_fd},{status_fd}"]  # as a one-shot harness has it
        code = _run_request(result_fd, reply_fd, status_fd)
    finally:
        _exit(code)


def _enter_pid_namespace() -> bool:
    """Move the request into a PID namespace of its own, laid out as in a one-shot sandbox: a
    small init as its first process, the request's process as its second. Returns (True) in
    that second process; this process stays outside, waits, and leaves as the request's
    process left (exit code or signal). Nothing of the request can then see or signal the
    server, and everything it starts dies with the namespace when it exits. False (nothing
    done) where the namespace cannot be made."""
    if _LIBC.unshare(ctypes.c_int(_CLONE_NEWPID)) != 0:
        return False
    read_end, write_end = os.pipe()
    if os.fork() != 0:  # outside: told the request's wait status by the namespace's init
        _close_descriptors(keep=read_end)
        told = os.read(read_end, 32)
        os.wait()
        _leave_as(_told_status(told))
    os.close(read_end)
    worker = os.fork()
    if worker == 0:  # the request's process
        os.close(write_end)
        os.setsid()  # a session of its own: the engine kills it by its group
        return True
    _init_until(worker, write_end)


def _init_until(worker: int, tell: int) -> NoReturn:
    """A namespace's init: keep only ``tell`` open (the request's pipes stay with the request's
    process), reap every process until ``worker`` exits, write its wait status on ``tell`` and
    leave (everything left in the namespace dies with it). Never returns."""
    try:
        _close_descriptors(keep=tell)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == worker:
                break
        os.write(tell, str(status).encode())
    finally:
        os._exit(0)


def _told_status(told: bytes) -> int:
    """The wait status a namespace's init wrote (SIGKILL's when it wrote none: it was killed)."""
    return int(told) if told.strip().isdigit() else int(signal.SIGKILL)


def _close_descriptors(keep: int) -> None:
    """Close every descriptor above stderr but ``keep`` (the request's pipes stay with the
    request's process alone)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)


def _leave_as(status: int) -> None:
    """Exit as a process with this wait status did (killed by its signal, or its exit code)."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _send_packet(control: Any, message: dict[str, Any]) -> None:
    control.send(json.dumps(message).encode("utf-8"))


def _live_pids() -> list[int]:
    """Processes of this PID namespace that have not exited (zombies wait for their reaper)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/stat", "rb") as handle:
                raw = handle.read()
            if raw[raw.rfind(b")") + 2 : raw.rfind(b")") + 3] != b"Z":
                pids.append(int(entry))
    return pids


def _kill_leftovers(rounds: int = 200) -> int:
    """SIGKILL every process of this PID namespace but its init and this server, until none is
    left (what a request's child left behind: daemons, a fork bomb). Returns how many were
    found, or -1 when some survived (the engine then discards this server)."""
    me = os.getpid()
    found = 0
    for _ in range(rounds):
        others = [pid for pid in _live_pids() if pid not in (1, me)]
        if not others:
            return found
        found = max(found, len(others))
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
        time.sleep(0.002)
    return -1


def _perform(request: dict[str, Any], channel: _Channel) -> int:
    """Run the requested action and send its final message; return the exit code."""
    action = _ACTIONS.get(request.get("action", ""))
    if action is None:
        channel.send({"type": "error", "kind": "protocol", "error": "unknown action"})
        return 2
    try:
        value = action(request, channel)
    except MemoryError:
        channel.send({"type": "error", "kind": "memory", "error": "MemoryError"})
        return 1
    except BaseException:
        channel.send(
            {"type": "error", "kind": "exception", "error": traceback.format_exc()[-4000:]}
        )
        return 1
    try:
        channel.send({"type": "result", "value": value})
    except (TypeError, ValueError) as exc:
        channel.send({"type": "error", "kind": "output", "error": f"invalid result: {exc}"})
        return 1
    return 0


def _await_ack(reply_fd: int, timeout: float = 10.0) -> None:
    """Stay alive (bounded) until the engine has read this process's CPU time and memory from
    outside: where the sandbox's own monitor does not account for them, the engine can read them
    only while this process exists."""
    import select

    with contextlib.suppress(OSError, ValueError):
        ready, _, _ = select.select([reply_fd], [], [], timeout)
        if ready:
            os.read(reply_fd, 65536)


def _exit(code: int) -> None:
    """Flush what the agent printed, then leave without running interpreter finalisation (the
    engine is waiting; agent ``atexit`` handlers do not get to run after the result)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())

"""The parts of ``bench_vs_openevolve.py``: the fake model's edits, OpenEvolve's virtual
environment, and running a command with its whole process tree measured.

* :class:`FakeModel` answers both systems' requests on the same
  :class:`hyperagents.testing.FakeOpenAIServer`: an edit that moves ``X`` (OpenEvolve's
  ``SEARCH/REPLACE`` diff, or the seed LLM meta agent's ``SEARCH/REPLACE`` block naming
  ``task_agent.py``), and a review for the LLM meta agent's reviewer step.
* :func:`ensure_openevolve` installs OpenEvolve into a virtual environment under a cache folder
  (reused when complete) and says why when it cannot.
* :class:`TreeMeter` measures the CPU time of a command and all its descendants: a cgroup v2
  of its own when one can be made (``cpu.stat``), else ``RUSAGE_CHILDREN`` (the descendants that
  were waited for). :func:`run_measured` runs a command under it with a time limit and kills
  the whole tree when it is reached.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperagents.testing import FakeReply

__all__ = [
    "BenchError",
    "FakeModel",
    "Measured",
    "TreeMeter",
    "become_subreaper",
    "ensure_openevolve",
    "run_measured",
]


class BenchError(Exception):
    """The benchmark cannot go on (the message says why)."""


# -- the fake model -------------------------------------------------------------------------

_X_LINE = re.compile(
    r'^(?P<pre>[^\n]*"X"\s*:\s*)(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?P<post>[^\n]*)$',
    re.MULTILINE,
)
#: Where each system shows the program to edit: OpenEvolve's "Current Program" section, the
#: LLM meta agent's block of ``task_agent.py``.
_OPENEVOLVE_CODE = re.compile(r"# Current Program\n```[^\n]*\n(.*?)\n```", re.DOTALL)
_HYPERAGENTS_CODE = re.compile(
    r"--- task_agent\.py ---\n(.*?)\n--- end of task_agent\.py ---", re.DOTALL
)
_REVIEW = '{"issue_type": "none", "severity": "none", "suggested_fix": "", "confidence": 0.9}'


def _step(text: str, repeat: int) -> float:
    """A move of X between 0.01 and 0.2 in size, either way, drawn from a hash of ``text`` and
    of how many times the same text came before (``repeat``)."""
    digest = hashlib.sha256(f"{repeat}:{text}".encode("utf-8", "surrogatepass")).digest()
    size = 0.01 + 0.19 * int.from_bytes(digest[:8], "big") / 2**64
    return size if digest[8] % 2 else -size


def _edit(code: str, step: float) -> tuple[str, str] | None:
    """The line of ``code`` holding X and that line with X moved by ``step`` (None: no X)."""
    match = _X_LINE.search(code)
    if match is None:
        return None
    value = round(float(match["num"]) + step, 6)
    return match.group(0), f"{match['pre']}{value!r}{match['post']}"


def _user_texts(body: Mapping[str, Any]) -> list[str]:
    """The text of the request's user messages, the latest first."""
    messages = body.get("messages")
    texts = [
        m["content"]
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
    ]
    return texts[::-1]


class FakeModel:
    """The fake model's answers to both systems (a ``handler`` of ``FakeOpenAIServer``).

    A proposal request gets an edit that moves ``X``: for OpenEvolve a diff of its "Current
    Program", for the LLM meta agent a ``SEARCH/REPLACE`` block on ``task_agent.py``. The move
    is drawn from the request's text and how often that same text was asked before, so
    identical prompts (a parent chosen again) get different edits, and a run repeated gets the
    same edits. The LLM meta agent's review request gets a review; anything else an HTTP 500
    saying it was not recognised (a run that gets it fails loudly instead of measuring
    something else). Thread-safe: the server answers requests concurrently.
    """

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def _repeat(self, text: str) -> int:
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            count = self._seen.get(key, 0)
            self._seen[key] = count + 1
        return count

    def __call__(self, body: dict[str, Any]) -> FakeReply | str:
        """The answer to one chat completion request (its JSON body)."""
        texts = _user_texts(body)
        if texts and texts[0].startswith("You review a change"):
            return _REVIEW
        for text in texts:
            for pattern, path in ((_OPENEVOLVE_CODE, ""), (_HYPERAGENTS_CODE, " task_agent.py")):
                found = pattern.search(text)
                if found is None or _X_LINE.search(found.group(1)) is None:
                    continue
                step = _step(text, self._repeat(text))
                edit = _edit(found.group(1), step)
                assert edit is not None
                summary = f"SUMMARY: move X by {step:+.6f}.\n" if path else ""
                return (
                    f"{summary}Move X by {step:+.6f} towards a better score.\n"
                    f"<<<<<<< SEARCH{path}\n{edit[0]}\n=======\n{edit[1]}\n>>>>>>> REPLACE\n"
                )
        return FakeReply(
            content="fake model: request not recognised (no program with X)", status=500
        )


# -- OpenEvolve's virtual environment -------------------------------------------------------

_COMPLETE = ".complete"


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _call(cmd: Sequence[str], timeout: float, what: str) -> None:
    """Run an installation step; :class:`BenchError` with its output's tail if it fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what} took more than {timeout:g} s") from exc
    except OSError as exc:
        raise BenchError(f"{what} could not start: {exc}") from exc
    if done.returncode != 0:
        raise BenchError(
            f"{what} failed (exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}"
        )


def ensure_openevolve(
    cache_dir: Path,
    version: str,
    *,
    python: str = sys.executable,
    pip_args: Sequence[str] = (),
    timeout: float = 900.0,
) -> Path:
    """The Python of a virtual environment with ``openevolve==version``, installed if needed.

    The environment lives in ``cache_dir/openevolve-VERSION-pyX.Y`` and is reused once an
    installation finished there (a marker file says so); an unfinished one is removed and made
    again. Two invocations at once take turns (a lock file in ``cache_dir``).

    Args:
        cache_dir: The cache folder.
        version: OpenEvolve's version.
        python: The interpreter the environment is made from.
        pip_args: Extra arguments of ``pip install`` (an index, ``--no-index``...).
        timeout: Seconds each installation step may take.

    Raises:
        BenchError: The environment cannot be made or OpenEvolve cannot be installed (no
            network, no such version...), with pip's last lines.
    """
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    root = Path(cache_dir).expanduser()
    venv = root / f"openevolve-{version}-{tag}"
    exe = venv / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another invocation installing there: wait for it
        if not ((venv / _COMPLETE).is_file() and exe.exists()):
            _install(venv, version, python=python, pip_args=pip_args, timeout=timeout)
    return exe


def _install(
    venv: Path, version: str, *, python: str, pip_args: Sequence[str], timeout: float
) -> None:
    """Make ``venv`` afresh with ``openevolve==version``, marked complete; nothing on failure.

    Raises:
        BenchError: A step failed (the message says which, with its output's last lines).
    """
    shutil.rmtree(venv, ignore_errors=True)
    exe = str(venv / "bin" / "python")
    try:
        _call([python, "-m", "venv", str(venv)], timeout, f"making a virtual environment in {venv}")
        _call(
            [exe, "-m", "pip", "install", "--disable-pip-version-check", "-q",
             *pip_args, f"openevolve=={version}"],
            timeout,
            f"installing openevolve=={version} into {venv}",
        )  # fmt: skip
        check = f"import openevolve, sys; sys.exit(openevolve.__version__ != {version!r})"
        _call([exe, "-c", check], timeout, f"importing openevolve {version}")
    except BenchError:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / _COMPLETE).write_text(f"openevolve=={version}\n", encoding="utf-8")


# -- measuring a process tree ---------------------------------------------------------------


def _cgroup2_parent() -> Path | None:
    """This process's own cgroup v2 folder, if the unified hierarchy is mounted."""
    mount = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                mount = Path(fields[1])
                break
    if mount is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return mount / line[3:].lstrip("/")
    return None


class TreeMeter:
    """Measures the CPU time (user + system) of a command's whole process tree.

    With a writable cgroup v2, each command runs in a cgroup of its own (a shell moves itself
    there, then runs the command), which counts every descendant, orphans included, and lets
    the whole tree be killed. Otherwise the difference of ``RUSAGE_CHILDREN`` around the run
    counts the descendants that were waited for: all of them when this process is their
    subreaper (:func:`become_subreaper`), else not those whose parent died first.

    Args:
        prefer_cgroup: Try a cgroup first (False: ``RUSAGE_CHILDREN`` only).
    """

    def __init__(self, *, prefer_cgroup: bool = True) -> None:
        self._parent = _cgroup2_parent() if prefer_cgroup else None
        self._count = 0
        if self._parent is not None and not self._probe():
            self._parent = None

    @property
    def method(self) -> str:
        """How the CPU time is measured, in words."""
        if self._parent is not None:
            return f"cgroup v2 ({self._parent}/hyperagents-bench-*: cpu.stat usage_usec)"
        return "RUSAGE_CHILDREN (the descendants that were waited for)"

    def _new_group(self) -> Path:
        assert self._parent is not None
        self._count += 1
        group = self._parent / f"hyperagents-bench-{os.getpid()}-{self._count}"
        group.mkdir()
        return group

    def _probe(self) -> bool:
        """Whether a cgroup can be made, entered and read here."""
        try:
            group = self._new_group()
        except OSError:
            return False
        try:
            cmd = self.wrap(group, ["true"])
            ok = subprocess.run(cmd, check=False, timeout=30).returncode == 0
            return ok and self.cpu_seconds(group) >= 0
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return False
        finally:
            self.release(group)

    def open(self) -> Path | None:
        """A fresh cgroup for one command (None: ``RUSAGE_CHILDREN`` is used)."""
        return self._new_group() if self._parent is not None else None

    @staticmethod
    def wrap(group: Path | None, cmd: Sequence[str]) -> list[str]:
        """``cmd``, started inside ``group`` when there is one."""
        if group is None:
            return list(cmd)
        script = 'echo $$ > "$0" && exec "$@"'
        return ["/bin/sh", "-c", script, str(group / "cgroup.procs"), *cmd]

    @staticmethod
    def cpu_seconds(group: Path) -> float:
        """The CPU seconds used so far in ``group`` (``cpu.stat``'s ``usage_usec``)."""
        for line in (group / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        raise ValueError(f"{group}/cpu.stat has no usage_usec")

    @staticmethod
    def release(group: Path | None) -> None:
        """Kill whatever is left in ``group`` and remove it."""
        if group is None:
            return
        _empty(group)
        with contextlib.suppress(OSError):
            group.rmdir()


def _empty(group: Path) -> None:
    """Kill every process in ``group`` and wait (up to 5 s) until none is left."""
    for _ in range(50):
        try:
            pids = (group / "cgroup.procs").read_text().split()
        except OSError:
            return
        if not pids:
            return
        with contextlib.suppress(OSError):
            if (group / "cgroup.kill").exists():
                (group / "cgroup.kill").write_text("1")
            else:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.1)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``prctl``), so that a
    run's processes whose parent died first are waited for here: no zombie is left behind,
    and their CPU time reaches ``RUSAGE_CHILDREN``. Whether it worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _children() -> list[int]:
    """The processes whose parent is this process (from ``/proc``)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[1]) == me:
                found.append(int(entry.name))
    return found


def _reap(deadline: float) -> None:
    """Kill and wait for this process's children that are left: the orphans of a run, ours
    as their subreaper. Until none is left or ``deadline`` (``time.monotonic``) passes."""
    while True:
        for pid in _children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Measured:
    """One command's run: its exit status, wall and whole-tree CPU seconds.

    Attributes:
        returncode: The exit status (negative: killed by that signal).
        wall: Seconds from start to exit.
        cpu: CPU seconds of the whole process tree (see :class:`TreeMeter`).
        timed_out: Whether it was killed at its time limit.
    """

    returncode: int
    wall: float
    cpu: float
    timed_out: bool


def run_measured(
    cmd: Sequence[str],
    *,
    meter: TreeMeter,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout: float,
) -> Measured:
    """Run ``cmd`` (output to ``log``), measuring its whole tree; kill it all at ``timeout``.

    Whatever happens (a time limit, an interrupt), no process of the command is left behind:
    once the command exits, what is left of its session and cgroup is killed and reaped, then
    the CPU time is read.
    """
    group = meter.open()
    before = _children_cpu()
    timed_out = False
    try:
        with open(log, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(
                meter.wrap(group, cmd),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                wall = time.perf_counter() - start
                _kill_session(proc)
        if group is not None:
            _empty(group)
        _reap(time.monotonic() + 5)
        cpu = meter.cpu_seconds(group) if group is not None else _children_cpu() - before
    finally:
        meter.release(group)
    return Measured(proc.returncode, wall, cpu, timed_out)


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command's session (its process group) and reap the command."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

"""Trusted harness executed *inside* the sandboxed process (standalone: stdlib only).

Usage: ``python -I -S _harness.py RESULT_FD,REPLY_FD,STATUS_FD [PRELOAD,MODULES]`` with the
request JSON on stdin and the workspace as the current directory. It first lowers its own resource
limits (they cannot be raised again by the agent code) and isolates itself, reports that on
``STATUS_FD`` (``{"type": "isolation", ...}`` or ``{"type": "error", "kind": "isolation", ...}``)
and closes it before any agent code is imported, then performs the requested action and writes
JSON lines to ``RESULT_FD``:

* ``{"type": "instance", "id": …, "output": …, "wall": s, "cpu": s, "error": str|None}`` per
  instance of a ``solve`` action;
* ``{"type": "result", "value": …}`` once at the end of every action;
* ``{"type": "error", "kind": "exception"|"memory", "error": "...traceback..."}`` when the agent
  code raised.

The agent code's own ``print`` output goes to stderr so it can never be mistaken for a message.
Nothing here is a security boundary against the agent code (it runs in the same process); the
boundary is the process, its limits and the trusted scoring outside.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import math
import os
import random
import resource
import signal
import sys
import time
import traceback
from typing import Any

#: The C library, opened at start-up (a warm process has it ready when its request comes).
_LIBC = ctypes.CDLL(None, use_errno=True)


class _InstanceTimeout(BaseException):
    """Raised by the per-instance alarm (a BaseException: plain ``except Exception`` misses it)."""


def _isolate(request: dict[str, Any], channel: _Channel) -> None:
    """Give up what the agent code must not have, before any of it is imported.

    * ``unshare_network``: move into a new, empty network namespace (needs CAP_SYS_ADMIN, i.e.
      root outside a user namespace; the ``process`` sandbox asks for it when it runs as root).
    * ``user``: switch every uid and gid to this unprivileged id for good (needs CAP_SETUID /
      CAP_SETGID), so the agent cannot signal the engine, read root-only files or exceed the
      per-user process limit of its own id.
    * always: ``PR_SET_NO_NEW_PRIVS``, so nothing it executes can regain privileges.
    """
    libc = _LIBC
    report: dict[str, Any] = {"type": "isolation", "network": False, "user": None}
    if request.get("unshare_network"):
        clone_newnet = 0x40000000
        report["network"] = libc.unshare(clone_newnet) == 0
    user = request.get("user")
    if user is not None:
        os.setgroups([])
        os.setresgid(int(user), int(user), int(user))
        os.setresuid(int(user), int(user), int(user))
        report["user"] = os.getuid()
    pr_set_no_new_privs = 38
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)
    channel.send(report)


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
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # preloaded by a warm process
        with contextlib.suppress(Exception):
            numpy.random.seed(seed % (2**32))
    else:
        sys.meta_path.insert(0, _SeedOnImport(seed))


def _load(module: str, function: str) -> Any:
    mod = importlib.import_module(module)
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise AttributeError(f"{module}.py does not define a callable {function!r}")
    return fn


def _action_validate(request: dict[str, Any], channel: _Channel) -> Any:
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
                compile(source, path, "exec", dont_inherit=True)
            except SyntaxError as exc:
                errors.append(f"{path}:{exc.lineno}: syntax error: {exc.msg}")
            except (ValueError, RecursionError, MemoryError) as exc:
                errors.append(f"{path}: does not compile: {exc!r}")
    if not errors:
        for path, names in sorted(request.get("entry_points", {}).items()):
            module = path[:-3].replace("/", ".")
            if not os.path.isfile(path):
                errors.append(f"{path}: required file is missing")
                continue
            try:
                mod = importlib.import_module(module)
            except BaseException as exc:
                errors.append(f"{path}: import failed: {type(exc).__name__}: {exc}"[:500])
                continue
            for name in names:
                if not callable(getattr(mod, name, None)):
                    errors.append(f"{path}: does not define a callable {name!r}")
    return {"ok": not errors, "errors": errors}


def _action_solve(request: dict[str, Any], channel: _Channel) -> Any:
    fn = _load(request.get("module", "task_agent"), request.get("function", "solve"))
    timeout = float(request.get("instance_timeout") or 0)

    def on_alarm(signum: int, frame: Any) -> None:
        raise _InstanceTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    done = 0
    for item in request.get("instances", []):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        error: str | None = None
        output: Any = None
        try:
            if timeout > 0:
                signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                output = fn(item["inputs"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _InstanceTimeout:
            error = f"timeout: instance took longer than {timeout:g} s"
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


_ACTIONS = {
    "validate": _action_validate,
    "solve": _action_solve,
    "improve": _action_improve,
    "select": _action_select,
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

    def read_answer(request_id: int) -> dict[str, Any]:
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
            answer = read_answer(request_id)
        if answer.get("error"):
            raise _LLMError(str(answer["error"]))
        return str(answer.get("text", ""))

    module = types.ModuleType("llm", "The run's language model, reached through the engine.")
    module.complete = complete  # type: ignore[attr-defined]
    module.LLMError = _LLMError  # type: ignore[attr-defined]
    sys.modules["llm"] = module


def main() -> int:
    _add_site_packages()
    result_fd, reply_fd, status_fd = (int(fd) for fd in sys.argv[1].split(","))
    channel = _Channel(result_fd)
    _install_llm_bridge(channel, reply_fd)
    if len(sys.argv) > 2 and sys.argv[2]:
        _preload(sys.argv[2].split(","))
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
    # Agent prints go to stderr: stdout carries nothing the engine interprets.
    sys.stdout = sys.stderr
    _seed_everything(int(request.get("seed", 0)))
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

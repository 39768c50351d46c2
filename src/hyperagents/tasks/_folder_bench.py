"""Runs a seed-format task's ``benchmark.py`` inside the sandbox, with the solution in a
process of its own (standalone: stdlib only; copied into the benchmark's workspace).

Two processes, both in the one sandbox of a benchmark run (see :mod:`hyperagents.tasks._folder`
for the design and what it guarantees):

* **A, the benchmark process** (the harness process: the engine calls :func:`run` through the
  harness's ``solve`` action). It makes itself non-dumpable first (``PR_SET_DUMPABLE`` 0: no
  other process of its user may then open its ``/proc/PID/fd``, read or write its memory, or
  trace it), then runs ``benchmark.py`` as ``__main__`` with ``sys.argv = [benchmark.py,
  SOLUTION_PATH]`` and ``sys.stdout`` replaced by a private buffer, reads the ``metric:`` (or
  ``answers:``) line from that buffer and returns it signed with the run's key (HMAC-SHA256),
  which only the engine and this process's memory hold.
* **B, the solution process**, started by A the first time the benchmark touches the solution.
  ``SOLUTION_PATH`` is a *proxy* module: imported in A, each attribute of the solution the
  benchmark reads, calls or indexes is a request to B over two pipes; B runs the real solution
  and answers with plain data (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``,
  ``list``, ``tuple``, ``dict``, ``set``, exactly these types: a subclass crosses as an
  opaque handle, never as data). Anything else crosses as a handle: an object the benchmark
  can read attributes of, call, index, take ``len`` of or iterate, each a request again.
  Nothing from B is ever unpickled or executed in A. B's standard output and error go to a
  file of the workspace (their tail is feedback), never into A's buffer. Run as a script
  (``python SOLUTION_PATH``, by a benchmark's own subprocess), the proxy runs the real
  solution in that process.

Usage (B only): ``python -I _hyperagents_bench.py --serve REQ_FD,RESP_FD SOLUTION SYS_PATH``.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import ctypes
import hashlib
import hmac
import io
import json
import math
import os
import re
import runpy
import struct
import subprocess
import sys
import traceback
import types
from typing import Any

#: Bytes one message between A and B may hold (the rest is an error).
MAX_MESSAGE = 64 * 1024 * 1024
#: Characters of the benchmark's standard output kept.
MAX_STDOUT = 1024 * 1024
#: Where the proxy module and the real solution lie in the workspace.
PROXY_DIR = "_hyperagents_proxy"
CANDIDATE_DIR = "_hyperagents_candidate"
#: Where the solution process's standard output and error go (its tail is shown as feedback).
OUTPUT_FILE = "_hyperagents_solution_output.txt"
_METRIC = re.compile(r"^\s*metric\s*:\s*(\S+)\s*$", re.IGNORECASE)
_ANSWERS = re.compile(r"^\s*answers\s*:\s*(.*)$", re.IGNORECASE)


# -- the wire: length-prefixed JSON, values in a tagged form ----------------------------------
def send(fd: int, message: Any) -> None:
    """Write one message (JSON) to ``fd``."""
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def _read_exact(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the other process closed the channel")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(fd: int) -> Any:
    """Read one message from ``fd``.

    Raises:
        EOFError: The channel closed.
        ValueError: The message is too large or not JSON.
    """
    (size,) = struct.unpack(">I", _read_exact(fd, 4))
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes exceeds {MAX_MESSAGE}")
    return json.loads(_read_exact(fd, size))


def encode(value: Any, handle: Any = None) -> Any:
    """``value`` in the wire's form; objects that are not plain data become handles
    (``handle(obj) -> int``), or raise ``TypeError`` when ``handle`` is None."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"f": repr(value)}
    if kind is list:
        return [encode(v, handle) for v in value]
    if kind is tuple:
        return {"t": [encode(v, handle) for v in value]}
    if kind is dict:
        return {"d": [[encode(k, handle), encode(v, handle)] for k, v in value.items()]}
    if kind in (set, frozenset):
        return {"s" if kind is set else "fs": [encode(v, handle) for v in value]}
    if kind is bytes:
        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Remote):
        return {"h": value._id}
    if handle is None:
        raise TypeError(
            f"a {kind.__name__} cannot be passed to the solution (it runs in a process of its "
            "own: only plain data and the solution's own objects cross)"
        )
    return {"h": handle(value)}


def decode(value: Any, resolve: Any) -> Any:
    """The value a wire form stands for (``resolve(id)`` turns a handle into an object)."""
    if isinstance(value, list):
        return [decode(v, resolve) for v in value]
    if not isinstance(value, dict):
        return value
    ((tag, body),) = value.items()
    if tag == "f":
        return float(body) if body in ("inf", "-inf", "nan") else 0.0
    if tag == "t":
        return tuple(decode(v, resolve) for v in body)
    if tag == "d":
        return {decode(k, resolve): decode(v, resolve) for k, v in body}
    if tag in ("s", "fs"):
        items = (decode(v, resolve) for v in body)
        return set(items) if tag == "s" else frozenset(items)
    if tag == "b":
        return base64.b64decode(body)
    if tag == "h":
        return resolve(int(body))
    raise ValueError(f"unknown tag {tag!r}")


# -- A: the benchmark's side ------------------------------------------------------------------
class RemoteError(Exception):
    """The solution raised an exception that is not a built-in one (its type and message)."""


class _Connection:
    """A's end of the channel to B (started on first use)."""

    def __init__(self, solution: str) -> None:
        req_read, self._req = os.pipe()
        self._resp, resp_write = os.pipe()
        command = [sys.executable, "-I", os.path.abspath(__file__), "--serve"]
        command += [f"{req_read},{resp_write}", solution, json.dumps(sys.path)]
        with open(OUTPUT_FILE, "ab") as output:
            self.process = subprocess.Popen(
                command,
                pass_fds=(req_read, resp_write),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        os.close(req_read)
        os.close(resp_write)
        ready = self._reply()
        if isinstance(ready, dict) and ready.get("error"):
            raise ImportError(f"the solution failed to import: {ready['error']}")

    def _reply(self) -> Any:
        try:
            return receive(self._resp)
        except (EOFError, ValueError, struct.error) as exc:
            raise RuntimeError(f"the solution process broke its channel: {exc}") from None

    def request(self, message: dict[str, Any]) -> Any:
        """Send a request to B and return its decoded answer (re-raising its error)."""
        try:
            send(self._req, message)
        except OSError as exc:
            raise RuntimeError(f"the solution process is gone: {exc}") from None
        reply = self._reply()
        if not isinstance(reply, dict):
            raise RuntimeError("the solution process sent a malformed answer")
        if "error" in reply:
            name, text = [*list(reply["error"]), "", ""][:2]
            cls = getattr(builtins, str(name), None)
            if isinstance(cls, type) and issubclass(cls, Exception):
                raise cls(str(text)[:2000])
            raise RemoteError(f"{str(name)[:100]}: {str(text)[:2000]}")
        try:
            return decode(reply.get("ok"), lambda ident: Remote(self, ident))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise RuntimeError(f"the solution process sent a malformed value: {exc}") from None

    def close(self) -> None:
        """Stop B: close its channel, give it two seconds to end, then kill it."""
        for fd in (self._req, self._resp):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:  # it ends on the closed channel (flushing its output), else it is killed
            self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Remote:
    """An object of the solution, living in B; every use is a request."""

    __slots__ = ("_conn", "_id")

    def __init__(self, conn: _Connection, ident: int) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_id", ident)

    def _ask(self, op: str, **fields: Any) -> Any:
        return self._conn.request({"op": op, "h": self._id, **fields})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._ask("getattr", name=name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ask("call", args=encode(list(args)), kwargs=encode(kwargs))

    def __getitem__(self, key: Any) -> Any:
        return self._ask("getitem", key=encode(key))

    def __len__(self) -> int:
        value = self._ask("len")
        return value if type(value) is int else 0

    def __iter__(self) -> Any:
        return iter(self._ask("list"))

    def __repr__(self) -> str:
        return f"<solution object #{self._id}>"


_CONNECTIONS: dict[str, _Connection] = {}


def proxy(solution: str) -> Remote:
    """The solution module as seen from A (B is started on first use)."""
    conn = _CONNECTIONS.get(solution)
    if conn is None:
        conn = _CONNECTIONS[solution] = _Connection(solution)
    return Remote(conn, 0)


_PROXY_SOURCE = """\
# hyperagents: a proxy of the solution; the real one runs in a process of its own.
import sys as _sys
_REAL = {real!r}
_bench = _sys.modules.get("_hyperagents_bench")
if __name__ == "__main__" or _bench is None or not hasattr(_bench, "proxy"):
    import runpy as _runpy
    _sys.argv[0] = _REAL
    _sys.path.insert(0, {folder!r})
    globals().update(_runpy.run_path(_REAL, run_name=__name__))
else:
    _solution = _bench.proxy(_REAL)

    def __getattr__(name):
        return getattr(_solution, name)
"""


def _no_dump() -> bool:
    """Make this process non-dumpable (see the module docstring); whether that worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(4, 0, 0, 0, 0) == 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        return False


class _Capture(io.TextIOBase):
    """The benchmark's standard output, kept in memory (capped)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.size < MAX_STDOUT:
            self.parts.append(str(text)[: MAX_STDOUT - self.size])
            self.size += len(self.parts[-1])
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


def _benchmark(benchmark: str, solution: str) -> dict[str, Any]:
    """Run ``benchmark`` on the proxy of ``solution``: what it printed and how it ended."""
    real = os.path.abspath(os.path.join(CANDIDATE_DIR, solution))
    os.makedirs(PROXY_DIR, exist_ok=True)
    path = os.path.abspath(os.path.join(PROXY_DIR, os.path.basename(solution)))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(_PROXY_SOURCE.format(real=real, folder=os.path.dirname(real)))
    capture, saved = _Capture(), (sys.stdout, list(sys.argv), list(sys.path))
    sys.stdout, sys.argv = capture, [benchmark, path]
    sys.path.insert(0, os.getcwd())
    error, code = None, 0
    try:
        runpy.run_path(benchmark, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:
        error, code = traceback.format_exc(limit=8)[-3000:], 1
    finally:
        sys.stdout, sys.argv, sys.path[:] = saved[0], saved[1], saved[2]
        for conn in _CONNECTIONS.values():
            conn.close()
        _CONNECTIONS.clear()
    result = _parsed(capture.text(), code, error)
    result["solution_output"] = _tail(OUTPUT_FILE)
    return result


def _tail(path: str, size: int = 2000) -> str:
    """The last ``size`` bytes of the file at ``path`` ("" when there is none)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - size))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _parsed(text: str, code: int, error: str | None) -> dict[str, Any]:
    """The last ``metric:`` and ``answers:`` lines of the benchmark's output."""
    metric: str | None = None
    answers: str | None = None
    lines = text.splitlines()
    for line in lines:
        if (found := _METRIC.match(line)) is not None:
            metric = found.group(1)
        elif (found := _ANSWERS.match(line)) is not None:
            answers = found.group(1)[:1_000_000]
    tail = "\n".join(lines[-20:])[-4000:]
    return {"metric": metric, "answers": answers, "exit": code, "error": error, "tail": tail}


def run(inputs: dict[str, Any]) -> dict[str, Any]:
    """The harness's entry (``solve``): run the benchmark, return its verdict signed."""
    private = _no_dump()
    key = bytes.fromhex(str(inputs["key"]))
    result = _benchmark(str(inputs["benchmark"]), str(inputs["solution"]))
    result["private"] = private
    payload = json.dumps(result, sort_keys=True)
    mac = hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()
    return {"payload": payload, "mac": mac}


# -- B: the solution's side -------------------------------------------------------------------
class _Server:
    """Answers A's requests on the solution module and the objects it handed out."""

    def __init__(self, module: types.ModuleType) -> None:
        self.objects: dict[int, Any] = {0: module}

    def handle(self, obj: Any) -> int:
        ident = len(self.objects)
        self.objects[ident] = obj
        return ident

    def answer(self, request: dict[str, Any]) -> Any:
        target = self.objects[int(request["h"])]
        op = request.get("op")
        resolve = self.objects.__getitem__
        if op == "getattr":
            return getattr(target, str(request["name"]))
        if op == "call":
            args = decode(request.get("args", []), resolve)
            kwargs = decode(request.get("kwargs", {"d": []}), resolve)
            return target(*args, **{str(k): v for k, v in kwargs.items()})
        if op == "getitem":
            return target[decode(request.get("key"), resolve)]
        if op == "len":
            return len(target)
        if op == "list":
            return list(target)
        raise ValueError(f"unknown request {op!r}")


def _serve(fds: str, solution: str, path_json: str) -> None:
    request_fd, reply_fd = (int(part) for part in fds.split(","))
    sys.path[:] = [os.path.dirname(solution), *json.loads(path_json)]
    sys.argv = [solution]
    module = types.ModuleType("solution")
    module.__file__ = solution
    sys.modules["solution"] = module
    try:
        with open(solution, encoding="utf-8") as handle:
            exec(compile(handle.read(), solution, "exec"), module.__dict__)
    except BaseException as exc:
        send(reply_fd, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
        return
    send(reply_fd, {"ready": True})
    server = _Server(module)
    while True:
        try:
            request = receive(request_fd)
        except EOFError:
            return
        try:
            reply: dict[str, Any] = {"ok": encode(server.answer(request), server.handle)}
        except Exception as exc:
            reply = {"error": [type(exc).__name__, str(exc)[:2000]]}
        send(reply_fd, reply)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--serve":
    _serve(sys.argv[2], sys.argv[3], sys.argv[4])

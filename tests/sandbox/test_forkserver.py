"""Fork servers: warm starts that cost a fork, with every request still in a process of its own.

A warm sandbox keeps fork servers (the harness and the preloaded modules imported); each request
runs in a child forked for it alone. These tests pin what that must not change: no state, files
or processes carry over from one request to the next, only a ready server is used, and a server
that a child damaged is replaced while the request counts as the child's failure.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperagents.sandbox import (
    BwrapSandbox,
    Limits,
    Outcome,
    ProcessSandbox,
    SandboxResult,
    _exchange,
    bwrap_available,
)

pytestmark = pytest.mark.slow

needs_bwrap = pytest.mark.skipif(
    not bwrap_available() and os.environ.get("CI") != "true",
    reason="bubblewrap is not available here",
)
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _ready(sandbox: Any, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while sandbox.standbys < count:
        assert time.monotonic() < deadline, "no fork server became ready"
        time.sleep(0.01)


def _waiting_server(sandbox: Any) -> Any:
    """The fork server that waits for the sandbox's next request (once it is ready)."""
    _ready(sandbox)
    server = sandbox._pool.take()
    assert server is not None
    sandbox._pool.put_back(server)
    return server


@pytest.fixture(params=["process", pytest.param("bwrap", marks=needs_bwrap)])
def warm(request: pytest.FixtureRequest) -> Iterator[Any]:
    sandbox = ProcessSandbox(warm=1) if request.param == "process" else BwrapSandbox(warm=1)
    _ready(sandbox)
    yield sandbox
    sandbox.close()


def _solve(sandbox: Any, workspace: Path, source: str, *, wall: float = 60) -> SandboxResult:
    workspace.mkdir(exist_ok=True)
    (workspace / "agent.py").write_text(source)
    request = {"action": "solve", "module": "agent", "instances": [{"id": "0", "inputs": {}}]}
    return sandbox.run(workspace, request, limits=Limits(wall_time=wall))


def _output(result: SandboxResult) -> Any:
    assert result.ok, result.reason
    return next(m["output"] for m in result.messages if m["type"] == "instance")


def test_each_request_is_a_fresh_process_forked_before_any_agent_code(
    warm: Any, tmp_path: Path
) -> None:
    leave = (
        "import builtins, sys\n"
        "def solve(x):\n"
        "    seen = getattr(builtins, 'left_by_earlier', None)\n"
        "    builtins.left_by_earlier = 'yes'\n"
        "    return [seen, 'agent' in sys.modules]\n"
    )
    first = _solve(warm, tmp_path / "a", leave)
    second = _solve(warm, tmp_path / "b", leave)
    assert first.extra["start"] == second.extra["start"] == "forked"
    # Nothing the first request set or imported is there for the second.
    assert _output(first) == _output(second) == [None, True]
    assert warm.standbys == 1  # the server went back to wait for the next request


def test_files_left_in_tmp_or_the_workspace_do_not_reach_the_next_request(
    warm: Any, tmp_path: Path
) -> None:
    if warm.name == "process" and not ROOT:
        pytest.skip("the process sandbox without root shares the host's /tmp (documented)")
    write = (
        "import os\n"
        "def solve(x):\n"
        "    for d in ('/tmp', '/dev/shm'):\n"
        "        open(os.path.join(d, 'left-behind'), 'w').write('secret')\n"
        "    open('extra-file', 'w').write('mine')\n"
        "    return 'written'\n"
    )
    look = (
        "import os\n"
        "def solve(x):\n"
        "    return [os.path.exists(p) for p in ('/tmp/left-behind', '/dev/shm/left-behind',\n"
        "            'extra-file')]\n"
    )
    assert _output(_solve(warm, tmp_path / "a", write)) == "written"
    assert (tmp_path / "a" / "extra-file").read_text() == "mine"  # its files came back to it
    assert _output(_solve(warm, tmp_path / "b", look)) == [False, False, False]


def test_a_process_left_running_does_not_outlive_its_request(warm: Any, tmp_path: Path) -> None:
    if warm.name == "process" and not ROOT:
        pytest.skip("the process sandbox without root has no PID namespace (documented)")
    leave = (
        "import os, time\n"
        "def solve(x):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3600)\n"
        "        os._exit(0)\n"
        "    return os.getpid()\n"
    )
    count = (
        "import os\n"
        "def solve(x):\n"
        "    return [os.getpid(), [int(p) for p in os.listdir('/proc') if p.isdigit()]]\n"
    )
    _output(_solve(warm, tmp_path / "a", leave))
    me, seen = _output(_solve(warm, tmp_path / "b", count))
    # The second request sees its namespace's init and itself: not the server, not the first
    # one's daemon.
    assert set(seen) <= {1, me}, seen


def test_how_a_request_ended_is_reported_as_it_was(warm: Any, tmp_path: Path) -> None:
    # Its exit code, or the signal that killed it, whatever namespace layout served it.
    exits = _solve(warm, tmp_path / "a", "import os\ndef solve(x):\n    os._exit(7)\n")
    assert exits.extra["start"] == "forked" and exits.exit_code == 7
    killed = _solve(
        warm,
        tmp_path / "b",
        "import os, signal\ndef solve(x):\n    os.kill(os.getpid(), signal.SIGTERM)\n",
    )
    assert killed.exit_code == -signal.SIGTERM
    fine = _solve(warm, tmp_path / "c", "def solve(x):\n    return 'fine'\n")
    assert fine.extra["start"] == "forked" and _output(fine) == "fine"


def test_a_request_holds_no_descriptor_of_a_namespace(warm: Any, tmp_path: Path) -> None:
    listing = (
        "import os\n"
        "def solve(x):\n"
        "    found = []\n"
        "    for fd in os.listdir('/proc/self/fd'):\n"
        "        try:\n"
        "            found.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
        "        except OSError:\n"
        "            pass\n"
        "    return found\n"
    )
    held = _output(_solve(warm, tmp_path / "a", listing))
    assert held and not [link for link in held if ":[" in link and link.startswith(("pid", "mnt"))]


def test_the_server_is_not_reachable_from_its_child(warm: Any, tmp_path: Path) -> None:
    if not ROOT and warm.name == "process":
        pytest.skip("the process sandbox without root runs agent code as the engine's user")
    attack = (
        "import os, signal\n"
        "def solve(x):\n"
        "    for pid in range(1, 64):\n"
        "        if pid != os.getpid():\n"
        "            try:\n"
        "                os.kill(pid, signal.SIGKILL)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return 'still here'\n"
    )
    # It signalled every pid it can name; its server was not among them.
    assert _output(_solve(warm, tmp_path / "a", attack)) == "still here"
    after = _solve(warm, tmp_path / "b", "def solve(x):\n    return 'fine'\n")
    assert after.extra["start"] == "forked" and _output(after) == "fine"


def test_known_sources_are_compiled_by_the_server_and_used_only_for_identical_files(
    warm: Any, tmp_path: Path
) -> None:
    # The harness counts the files it compiled; a child counts on from its server's count.
    probe = "import __main__\n\ndef solve(inputs):\n    return __main__._COMPILES[0]\n"
    warm.set_known_sources({"agent.py": probe, "notes.txt": "not python"})
    _ready(warm)
    # The same file at the same path: compiled once, by the server, for every child.
    assert _output(_solve(warm, tmp_path / "a", probe)) == 1
    assert _output(_solve(warm, tmp_path / "b", probe)) == 1
    # One byte more: the child compiles and runs its own source.
    changed = probe + "\n"
    assert _output(_solve(warm, tmp_path / "c", changed)) == 2
    # Other known sources: the servers are replaced; the old code is not used.
    warm.set_known_sources({"agent.py": changed})
    _ready(warm)
    assert _output(_solve(warm, tmp_path / "d", changed)) == 1
    assert _output(_solve(warm, tmp_path / "e", probe)) == 2


def test_the_server_imports_the_standard_modules_its_known_sources_import(
    warm: Any, tmp_path: Path
) -> None:
    probe = (
        "import gc\nimport sys\n\n"
        "def solve(inputs):\n"
        "    names = ('fractions', 'calendar', 'this', 'hyperagents')\n"
        "    return [sorted(n for n in names if n in sys.modules), gc.get_freeze_count() > 0]\n"
    )
    before = _output(_solve(warm, tmp_path / "a", probe))
    assert before == [[], True]  # the server's own objects are frozen out of the collector
    known = (
        "import fractions\nimport calendar\nimport this\n"
        "from hyperagents import Run\nfrom . import sibling\n"
    )
    # ``calendar`` is also a file of the program (it would be imported from the workspace);
    # ``this`` prints when imported; ``hyperagents`` is not the standard library.
    warm.set_known_sources({"known.py": known, "calendar.py": "X = 1\n"})
    _ready(warm)
    assert _output(_solve(warm, tmp_path / "b", probe)) == [["fractions"], True]


def test_only_a_ready_server_is_handed_out(tmp_path: Path) -> None:
    class SlowServer(ProcessSandbox):
        """Its fork servers take 30 s before they can serve (a slow import)."""

        def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
            argv, cwd = super()._command(workspace, harness, fds)
            if fds.startswith("--serve="):
                argv = ["/bin/sh", "-c", 'sleep 30; exec "$@"', "sh", *argv]
            return argv, cwd

    sandbox = SlowServer(warm=1)
    try:
        result = _solve(sandbox, tmp_path / "a", "def solve(x):\n    return 1\n")
        assert result.extra["start"] == "cold"  # it did not wait for the server to be ready
        assert _output(result) == 1
    finally:
        sandbox.close()


def test_a_server_that_died_while_idle_costs_a_cold_start(tmp_path: Path) -> None:
    sandbox = ProcessSandbox(warm=1)
    try:
        _ready(sandbox)
        server = sandbox._pool.take()
        assert server is not None
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        sandbox._pool.put_back(server)  # not kept: it is dead
        result = _solve(sandbox, tmp_path / "a", "def solve(x):\n    return 2\n")
        assert result.extra["start"] == "cold" and _output(result) == 2
        _ready(sandbox)  # replaced in the background
        again = _solve(sandbox, tmp_path / "b", "def solve(x):\n    return 3\n")
        assert again.extra["start"] == "forked" and _output(again) == 3
    finally:
        sandbox.close()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_server_lost_during_a_request_is_the_requests_failure_and_is_replaced(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where a child shares its server's uid and cannot be given a PID namespace, it can kill
    # or stop the server; here the test does it from outside while the child runs.
    monkeypatch.setattr(_exchange, "_SERVER_GRACE", 1.0)
    sandbox = ProcessSandbox(warm=1)
    try:
        server = _waiting_server(sandbox)
        hit = signal.SIGKILL if how == "kill" else signal.SIGSTOP
        source = "import time\ndef solve(x):\n    time.sleep(1.5)\n    return 'done'\n"
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "agent.py").write_text(source)

        threading.Timer(0.5, lambda: os.kill(server.proc.pid, hit)).start()
        request = {"action": "solve", "module": "agent", "instances": [{"id": "0", "inputs": {}}]}
        result = sandbox.run(tmp_path / "a", request, limits=Limits(wall_time=3))
        assert result.outcome in (Outcome.CRASH, Outcome.TIMEOUT)
        if result.outcome is Outcome.CRASH:
            assert "fork server" in result.reason
        assert (tmp_path / "a" / "agent.py").exists()  # the files came back
        _ready(sandbox)
        again = _solve(sandbox, tmp_path / "b", "def solve(x):\n    return 'next'\n")
        assert again.extra["start"] == "forked" and _output(again) == "next"
    finally:
        sandbox.close()


@needs_bwrap
def test_where_forked_children_cannot_isolate_requests_start_cold_and_warm_starts_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class NoFreshTmp(BwrapSandbox):
        """Its forked children ask for a mount this machine refuses (as a kernel might)."""

        def _forked_extras(self, *, own_pids: bool) -> dict[str, Any]:
            return {"fresh_tmpfs": {"paths": ["/no-such-directory"], "proc": own_pids}}

    sandbox = NoFreshTmp(warm=1)
    try:
        _ready(sandbox)
        result = _solve(sandbox, tmp_path / "a", "def solve(x):\n    return 'cold'\n")
        # The request is not lost (no agent code ran in the child): it ran again, cold.
        assert result.extra["start"] == "cold" and _output(result) == "cold"
        assert sandbox.forking_off and "cannot isolate" in caplog.text
        sandbox.set_warm(1)  # stays off
        assert sandbox.warm == 0 and sandbox.standbys == 0
    finally:
        sandbox.close()


def test_a_server_stopped_while_idle_costs_a_cold_start_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hyperagents.sandbox import _forkserver

    monkeypatch.setattr(_forkserver, "_SPAWN_TIMEOUT", 1.0)
    sandbox = ProcessSandbox(warm=1)
    try:
        server = _waiting_server(sandbox)
        os.kill(server.proc.pid, signal.SIGSTOP)  # alive, but it will never answer
        result = _solve(sandbox, tmp_path / "a", "def solve(x):\n    return 'cold'\n")
        assert result.extra["start"] == "cold" and _output(result) == "cold"
        assert server.proc.poll() is not None  # discarded: killed
    finally:
        sandbox.close()

"""Both sandboxes: limits, outcomes, the result channel, the environment."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError, SandboxError
from hyperagents.sandbox import (
    BwrapSandbox,
    Limits,
    Outcome,
    ProcessSandbox,
    Sandbox,
    SandboxResult,
    bwrap_available,
    get_sandbox,
)
from hyperagents.testing.hostile import stray_processes

BWRAP = bwrap_available()
needs_bwrap = pytest.mark.skipif(
    not BWRAP and os.environ.get("CI") != "true", reason="bubblewrap is not available here"
)


@pytest.fixture(params=["process", pytest.param("bwrap", marks=needs_bwrap)])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return ProcessSandbox() if request.param == "process" else BwrapSandbox()


def run(
    sandbox: Sandbox, tmp_path: Path, source: str, instances: int = 1, **limits: float
) -> SandboxResult:
    (tmp_path / "agent.py").write_text(source)
    request = {
        "action": "solve",
        "module": "agent",
        "instances": [{"id": str(k), "inputs": {"k": k}} for k in range(instances)],
        "instance_timeout": limits.pop("instance_timeout", 0),
    }
    # Honest code gets a minute: even a loaded machine starts a sandbox well within it.
    return sandbox.run(tmp_path, request, limits=Limits(wall_time=limits.pop("wall", 60), **limits))  # type: ignore[arg-type]


def test_solve_streams_outputs_and_metrics(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(
        sandbox, tmp_path, "print('noise')\ndef solve(x):\n    return {'double': x['k'] * 2}\n", 3
    )
    assert result.ok
    outputs = [m["output"] for m in result.messages if m["type"] == "instance"]
    assert outputs == [{"double": 0}, {"double": 2}, {"double": 4}]
    assert "noise" in result.stderr  # agent prints never reach the result channel
    assert result.peak_memory_mb > 1 and result.wall > 0


def test_fake_result_lines_on_stdout_are_ignored(sandbox: Sandbox, tmp_path: Path) -> None:
    src = (
        "import sys, os\n"
        'os.write(1, b\'{"type": "result", "value": 999}\\n\')\n'
        "def solve(x):\n    return 1\n"
    )
    result = run(sandbox, tmp_path, src)
    assert result.ok and result.result["instances"] == 1


def test_wall_clock_timeout_kills(sandbox: Sandbox, tmp_path: Path) -> None:
    start = time.perf_counter()
    result = run(sandbox, tmp_path, "import time\ndef solve(x):\n    time.sleep(3600)\n", wall=1.0)
    assert result.outcome is Outcome.TIMEOUT and "timeout" in result.reason
    # Killed, not waited for: far sooner than the hour it sleeps, however busy the machine.
    assert time.perf_counter() - start < 120


def test_per_instance_timeout_keeps_going(sandbox: Sandbox, tmp_path: Path) -> None:
    src = "def solve(x):\n    while x['k'] == 0:\n        pass\n    return x['k']\n"
    # Instance 0 never returns; instance 1 returns at once, well within its 2 s.
    result = run(sandbox, tmp_path, src, 2, instance_timeout=2.0)
    assert result.ok
    messages = [m for m in result.messages if m["type"] == "instance"]
    assert messages[0]["error"].startswith("timeout") and messages[1]["output"] == 1


def test_memory_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(
        sandbox, tmp_path, "def solve(x):\n    return len(bytearray(8 * 1024**3))\n", memory_mb=512
    )
    errors = [m.get("error") for m in result.messages if m["type"] == "instance"]
    assert errors and errors[0].startswith("memory")


def test_crash_exit_code_and_signal(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "import os\ndef solve(x):\n    os._exit(7)\n")
    assert result.outcome is Outcome.CRASH and "exit code 7" in result.reason
    result = run(
        sandbox,
        tmp_path,
        "import os, signal\ndef solve(x):\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
    )
    assert result.outcome is Outcome.CRASH and "SIGSEGV" in result.reason


def test_import_error_is_an_error_outcome(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "raise RuntimeError('broken at import')\n")
    assert result.outcome is Outcome.ERROR and "broken at import" in result.reason


def test_environment_is_scrubbed(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = run(sandbox, tmp_path, "import os\ndef solve(x):\n    return dict(os.environ)\n")
    env = next(m["output"] for m in result.messages if m["type"] == "instance")
    assert "OPENAI_API_KEY" not in env and "sk-secret" not in str(env)
    assert env["HOME"] in (str(tmp_path), "/workspace")
    assert set(env) <= {
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "PATH",
        "PYTHONHASHSEED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "PWD",
    }


def test_child_processes_do_not_outlive_the_run(sandbox: Sandbox, tmp_path: Path) -> None:
    token = f"hyperagents-stray-{os.getpid()}-{time.time_ns()}"
    src = (
        "import os, subprocess, sys\n"
        "def solve(x):\n"
        f"    cmd = 'import time; time.sleep(3600)  # {token}'\n"
        "    subprocess.Popen([sys.executable, '-c', cmd])\n"
        "    subprocess.Popen([sys.executable, '-c', cmd], start_new_session=True)\n"
        "    return 1\n"
    )
    result = run(sandbox, tmp_path, src)
    assert result.ok
    # Without a private uid the process sandbox can only kill its own process group: the
    # child that called setsid escapes (documented; use bwrap).
    escapes = 1 if isinstance(sandbox, ProcessSandbox) and not sandbox.isolates_user else 0
    deadline = time.monotonic() + 60  # killed children are gone long before, however busy
    while len(stray_processes(token=token)) > escapes and time.monotonic() < deadline:
        time.sleep(0.05)
    left = stray_processes(token=token)
    for pid in left:  # never leave them behind (the documented escapee included)
        os.kill(pid, 9)
    assert len(left) <= escapes, left


def test_unserialisable_output_is_reported(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, tmp_path, "def solve(x):\n    return object()\n")
    message = next(m for m in result.messages if m["type"] == "instance")
    assert message["output"] is None and message["error"].startswith("invalid output")


def test_missing_workspace_is_a_sandbox_error(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        sandbox.run(tmp_path / "nope", {"action": "solve"}, limits=Limits())


def test_bad_interpreter_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        ProcessSandbox(python="/nonexistent/python").run(
            tmp_path, {"action": "solve"}, limits=Limits()
        )


def test_validate_action(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("def solve(x):\n    return x\n")
    (tmp_path / "bad.py").write_text("def broken(:\n")
    result = sandbox.run(
        tmp_path, {"action": "validate", "entry_points": {"ok.py": ["solve"]}}, limits=Limits()
    )
    assert result.ok and not result.result["ok"]
    assert any("bad.py:1: syntax error" in e for e in result.result["errors"])


def validating(
    sandbox: Sandbox, tmp_path: Path, source: str, *, wall: float, validate: float
) -> SandboxResult:
    """A ``solve`` of two instances that validates ``agent.py`` first."""
    (tmp_path / "agent.py").write_text(source)
    request = {
        "action": "solve",
        "module": "agent",
        "instances": [{"id": str(k), "inputs": {"k": k}} for k in range(2)],
        "validate": {"entry_points": {"agent.py": ["solve"]}},
    }
    return sandbox.run(tmp_path, request, limits=Limits(wall_time=wall, validate_time=validate))


def test_a_solve_that_validates_first_says_so_before_any_instance(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = validating(
        sandbox, tmp_path, "def solve(x):\n    return x['k']\n", wall=60, validate=60
    )
    assert result.ok
    assert [m["type"] for m in result.messages] == ["validation", "instance", "instance", "result"]
    verdict = result.messages[0]
    assert verdict["ok"] is True and verdict["errors"] == []
    assert verdict["wall"] >= 0 and verdict["cpu"] >= 0  # measured from outside
    invalid = validating(sandbox, tmp_path, "def answer(x):\n    return 1\n", wall=60, validate=60)
    assert invalid.ok and [m["type"] for m in invalid.messages] == ["validation", "result"]
    assert invalid.messages[0]["errors"] == ["agent.py: does not define a callable 'solve'"]


def test_each_part_of_a_validating_run_is_held_to_its_own_limit(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    ignore_alarm = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
    import_hangs = validating(
        sandbox, tmp_path, ignore_alarm + "while True:\n    pass\n", wall=600, validate=2
    )
    assert import_hangs.outcome is Outcome.TIMEOUT
    assert import_hangs.reason == "timeout: killed after 2 s wall-clock"
    assert not [m for m in import_hangs.messages if m["type"] == "validation"]
    solve_hangs = validating(
        sandbox,
        tmp_path,
        ignore_alarm + "import time\n\n\ndef solve(x):\n    time.sleep(10**6)\n",
        wall=3,
        validate=600,
    )
    assert solve_hangs.outcome is Outcome.TIMEOUT
    assert solve_hangs.reason == "timeout: killed after 3 s wall-clock"
    assert [m["type"] for m in solve_hangs.messages] == ["validation"]


def test_get_sandbox() -> None:
    assert isinstance(get_sandbox("process"), ProcessSandbox)
    assert isinstance(get_sandbox("auto"), BwrapSandbox if BWRAP else ProcessSandbox)
    with pytest.raises(ConfigError):
        get_sandbox("docker")


@needs_bwrap
def test_bwrap_isolation_report(tmp_path: Path) -> None:
    result = run(BwrapSandbox(), tmp_path, "def solve(x):\n    return 1\n")
    assert result.ok and result.extra["isolation"]["network"] is True


@needs_bwrap
def test_bwrap_runs_an_interpreter_that_lives_under_tmp(tmp_path: Path) -> None:
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    sandbox = BwrapSandbox(python=str(venv / "bin" / "python"))
    sandbox.check()
    work = tmp_path / "ws"
    work.mkdir()
    result = run(sandbox, work, "import sys\ndef solve(x):\n    return sys.prefix\n")
    assert result.ok
    assert result.messages[0]["output"] == str(venv)
    # A fork server's child gets a /tmp of its own: the interpreter is bound on it again, so
    # the agent can still start it (a clean clone under /tmp failed so).
    sandbox.set_warm(1)
    try:
        deadline = time.monotonic() + 60
        while sandbox.standbys < 1:
            assert time.monotonic() < deadline, "no fork server became ready"
            time.sleep(0.01)
        source = (
            "import subprocess, sys\n"
            "def solve(x):\n"
            "    return subprocess.run([sys.executable, '-c', 'print(7)'], capture_output=True,\n"
            "                          text=True).stdout.strip()\n"
        )
        forked = run(sandbox, work, source)
        assert forked.extra["start"] == "forked"
        assert forked.ok and forked.messages[0]["output"] == "7", forked.messages
    finally:
        sandbox.close()


@pytest.mark.parametrize("kind", ["process", pytest.param("bwrap", marks=needs_bwrap)])
def test_an_interpreter_path_with_dot_dot_works(kind: str, tmp_path: Path) -> None:
    import sys

    python = os.path.join(os.path.dirname(sys.executable), "..", "bin", "python")
    sandbox = ProcessSandbox(python=python) if kind == "process" else BwrapSandbox(python=python)
    result = run(sandbox, tmp_path, "def solve(x):\n    return x['k'] + 1\n")
    assert result.ok, result.reason
    assert [m["output"] for m in result.messages if m["type"] == "instance"] == [1]


def test_cpu_and_memory_are_measured_outside(sandbox: Sandbox, tmp_path: Path) -> None:
    """The harness no longer reports its own usage: the engine reads the kernel's account."""
    source = (
        "import time\n"
        "def solve(x):\n"
        "    block = bytearray(80 * 1024 * 1024)\n"
        "    for i in range(0, len(block), 4096):\n"
        "        block[i] = 1\n"
        "    start = time.process_time()\n"
        "    while time.process_time() - start < 0.4:\n"
        "        pass\n"
        "    return len(block)\n"
    )
    result = run(sandbox, tmp_path, source)
    assert result.ok, result.reason
    assert result.cpu >= 0.35 and result.peak_memory_mb >= 80
    [instance] = [m for m in result.messages if m["type"] == "instance"]
    assert instance["wall"] >= 0.35 and instance["cpu"] >= 0.35


def test_times_measured_from_outside_are_never_negative() -> None:
    """The status pipe's reader can note the isolation report after the result channel's
    reader took the first answer (two threads on a busy machine): that answer's time is 0, not
    negative, and the clocks do not run backwards for the next one."""
    from types import SimpleNamespace

    from hyperagents.sandbox._messages import Received
    from hyperagents.sandbox._outcome import measured

    def answer(n: int, at: float, cpu: float | None) -> Received:
        message = {"type": "instance", "id": n, "output": n, "wall": 99.0, "cpu": 99.0}
        return Received(message, None, at, cpu)

    status = SimpleNamespace(at=10.0, cpu=2.0)  # noted after the first answer was read
    received = [answer(0, 9.5, 1.9), answer(1, 10.5, 2.5), answer(2, 11.0, None)]
    messages = measured(received, status)  # type: ignore[arg-type]
    assert [(m["wall"], m["cpu"]) for m in messages] == [(0.0, 0.0), (0.5, 0.5), (0.5, None)]


def test_only_the_verdict_before_the_instances_is_timed() -> None:
    """A ``validation`` message sent while solving (the agent's own) neither gets a time nor
    takes the time of the instance it precedes."""
    from types import SimpleNamespace

    from hyperagents.sandbox._messages import Received
    from hyperagents.sandbox._outcome import measured

    def sent(kind: str, at: float, cpu: float) -> Received:
        return Received({"type": kind, "wall": 99.0, "cpu": 99.0}, None, at, cpu)

    status = SimpleNamespace(at=10.0, cpu=2.0)
    received = [
        sent("validation", 11.0, 3.0),
        sent("instance", 12.0, 4.0),
        sent("validation", 12.9, 4.9),  # forged by the agent's code, just before its answer
        sent("instance", 13.0, 5.0),
    ]
    messages = measured(received, status)  # type: ignore[arg-type]
    times = [(m["type"], m["wall"], m["cpu"]) for m in messages]
    assert times == [
        ("validation", 1.0, 1.0),
        ("instance", 1.0, 1.0),
        ("validation", 99.0, 99.0),
        ("instance", 1.0, 1.0),
    ]


def test_two_sandboxes_of_one_process_run_side_by_side(tmp_path: Path) -> None:
    """Each run has its own sandbox object; their jobs at the same time must not share a
    private uid (the cleanup of one would kill the other's processes)."""
    from concurrent.futures import ThreadPoolExecutor

    slow = "import time\n\ndef solve(inputs):\n    time.sleep(0.4)\n    return inputs['k']\n"
    boxes = [ProcessSandbox(), ProcessSandbox()]
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(run, box, folder, slow, 3)
            for box, folder in zip(boxes, folders, strict=True)
        ]
        results = [job.result() for job in jobs]
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
    for result in results:
        outputs = [m["output"] for m in result.messages if m["type"] == "instance"]
        assert outputs == [0, 1, 2]

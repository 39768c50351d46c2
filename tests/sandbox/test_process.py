"""The process sandbox: limits, outcomes, isolation of the result channel."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError, SandboxError
from hyperagents.sandbox import Limits, Outcome, ProcessSandbox, get_sandbox, scrubbed_environment

SANDBOX = ProcessSandbox()


def run(tmp_path: Path, source: str, instances: int = 1, **limits: float) -> object:
    (tmp_path / "agent.py").write_text(source)
    request = {
        "action": "solve",
        "module": "agent",
        "instances": [{"id": str(k), "inputs": {"k": k}} for k in range(instances)],
        "instance_timeout": limits.pop("instance_timeout", 0),
    }
    return SANDBOX.run(tmp_path, request, limits=Limits(wall_time=limits.pop("wall", 10), **limits))


def test_solve_streams_outputs_and_metrics(tmp_path: Path) -> None:
    result = run(tmp_path, "print('noise')\ndef solve(x):\n    return {'double': x['k'] * 2}\n", 3)
    assert result.ok
    outputs = [m["output"] for m in result.messages if m["type"] == "instance"]
    assert outputs == [{"double": 0}, {"double": 2}, {"double": 4}]
    assert "noise" in result.stderr  # agent prints never reach the result channel
    assert result.peak_memory_mb > 1 and result.wall > 0


def test_fake_result_lines_on_stdout_are_ignored(tmp_path: Path) -> None:
    src = (
        "import sys, os\n"
        'os.write(1, b\'{"type": "result", "value": 999}\\n\')\n'
        "def solve(x):\n    return 1\n"
    )
    result = run(tmp_path, src)
    assert result.ok and result.result["instances"] == 1


def test_wall_clock_timeout_kills(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = run(tmp_path, "import time\ndef solve(x):\n    time.sleep(60)\n", wall=1.0)
    assert result.outcome is Outcome.TIMEOUT and "timeout" in result.reason
    assert time.perf_counter() - start < 10


def test_per_instance_timeout_keeps_going(tmp_path: Path) -> None:
    src = "def solve(x):\n    while x['k'] == 0:\n        pass\n    return x['k']\n"
    result = run(tmp_path, src, 2, instance_timeout=0.3)
    assert result.ok
    messages = [m for m in result.messages if m["type"] == "instance"]
    assert messages[0]["error"].startswith("timeout") and messages[1]["output"] == 1


def test_memory_limit(tmp_path: Path) -> None:
    result = run(tmp_path, "def solve(x):\n    return len(bytearray(8 * 1024**3))\n", memory_mb=512)
    errors = [m.get("error") for m in result.messages if m["type"] == "instance"]
    assert errors and errors[0].startswith("memory")


def test_crash_exit_code_and_signal(tmp_path: Path) -> None:
    result = run(tmp_path, "import os\ndef solve(x):\n    os._exit(7)\n")
    assert result.outcome is Outcome.CRASH and "exit code 7" in result.reason
    result = run(
        tmp_path, "import os, signal\ndef solve(x):\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    assert result.outcome is Outcome.CRASH and "SIGSEGV" in result.reason


def test_import_error_is_an_error_outcome(tmp_path: Path) -> None:
    result = run(tmp_path, "raise RuntimeError('broken at import')\n")
    assert result.outcome is Outcome.ERROR and "broken at import" in result.reason


def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = run(tmp_path, "import os\ndef solve(x):\n    return dict(os.environ)\n")
    env = next(m["output"] for m in result.messages if m["type"] == "instance")
    assert "OPENAI_API_KEY" not in env and "sk-secret" not in str(env)
    assert env["HOME"] == str(tmp_path)
    assert set(env) == set(scrubbed_environment(tmp_path))


def test_child_processes_do_not_outlive_the_run(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    src = (
        "import subprocess, sys\n"
        "def solve(x):\n"
        f"    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"    open({str(marker)!r}, 'w').write(str(p.pid))\n"
        "    return p.pid\n"
    )
    result = run(tmp_path, src)
    assert result.ok
    pid = int(marker.read_text())
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # a killed child may linger as a zombie of init for a moment
        time.sleep(0.05)
    else:
        with open(f"/proc/{pid}/stat") as handle:
            assert handle.read().split(") ")[1][0] in "ZX"


def test_unserialisable_output_is_reported(tmp_path: Path) -> None:
    result = run(tmp_path, "def solve(x):\n    return object()\n")
    message = next(m for m in result.messages if m["type"] == "instance")
    assert message["output"] is None and message["error"].startswith("invalid output")


def test_missing_workspace_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        SANDBOX.run(tmp_path / "nope", {"action": "solve"}, limits=Limits())


def test_bad_interpreter_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        ProcessSandbox(python="/nonexistent/python").run(
            tmp_path, {"action": "solve"}, limits=Limits()
        )


def test_validate_action(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("def solve(x):\n    return x\n")
    (tmp_path / "bad.py").write_text("def broken(:\n")
    result = SANDBOX.run(
        tmp_path, {"action": "validate", "entry_points": {"ok.py": ["solve"]}}, limits=Limits()
    )
    assert result.ok and not result.result["ok"]
    assert any("bad.py:1: syntax error" in e for e in result.result["errors"])


def test_get_sandbox() -> None:
    assert isinstance(get_sandbox("process"), ProcessSandbox)
    with pytest.raises(ConfigError):
        get_sandbox("docker")

"""The ray sandbox on a real local Ray instance: jobs run on a node in the inner sandbox, stay
isolated there, and whatever goes wrong on the node (a timeout, a hung or dying worker, a full
queue) is the job's outcome or a retry, never an error of the run."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, SandboxError
from hyperagents.sandbox import (
    Limits,
    Outcome,
    RayOptions,
    RaySandbox,
    SandboxResult,
    bwrap_available,
    get_sandbox,
)

ray = pytest.importorskip("ray") if os.environ.get("CI") != "true" else __import__("ray")
INNER = "bwrap" if bwrap_available() or os.environ.get("CI") == "true" else "process"
SECRET_KEY = "sk-test-secret-ray-0123456789"


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    """A local Ray instance of two CPUs for this module (its workers inherit this process's
    environment: an API key there must still not reach the candidate)."""
    os.environ["OPENAI_API_KEY"] = SECRET_KEY
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test sandboxes below
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    os.environ.pop("OPENAI_API_KEY", None)
    yield
    ray.shutdown()


def solve(
    sandbox: Any, workspace: Path, source: str, *, wall: float = 30.0, llm: Any = None
) -> SandboxResult:
    workspace.mkdir(exist_ok=True)
    (workspace / "agent.py").write_text(source)
    request = {"action": "solve", "module": "agent", "instances": [{"id": "1", "inputs": 2}]}
    result: SandboxResult = sandbox.run(workspace, request, limits=Limits(wall_time=wall), llm=llm)
    return result


def output(result: SandboxResult) -> Any:
    assert result.ok, (result.outcome, result.reason, result.stderr)
    return result.messages[0].get("output")


def test_a_job_runs_on_a_node_and_its_answer_comes_back(tmp_path: Path) -> None:
    sandbox = get_sandbox("ray", ray=RayOptions(inner=INNER))
    assert isinstance(sandbox, RaySandbox)
    result = solve(sandbox, tmp_path / "ws", "def solve(x):\n    return x * 21\n")
    assert output(result) == 42
    assert result.extra["ray"]["node"] == ray.get_runtime_context().get_node_id()
    assert result.wall > 0


def test_an_improve_brings_the_meta_agents_edits_back(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "meta_agent.py").write_text(
        "import os\n"
        "def improve(report, seed):\n"
        "    open('task_agent.py', 'w').write('X = 2\\n')\n"
        "    os.remove('old.py')\n"
        "    os.makedirs('pkg', exist_ok=True)\n"
        "    open('pkg/new.py', 'w').write('Y = 1\\n')\n"
        "    return {'note': 'edited'}\n"
    )
    (ws / "task_agent.py").write_text("X = 1\n")
    (ws / "old.py").write_text("")
    request = {"action": "improve", "module": "meta_agent", "function": "improve", "report": {}}
    result = RaySandbox(inner=INNER).run(ws, request, limits=Limits(wall_time=30))
    assert result.ok, result.reason
    assert (ws / "task_agent.py").read_text() == "X = 2\n"
    assert not (ws / "old.py").exists()
    assert (ws / "pkg" / "new.py").read_text() == "Y = 1\n"


def test_the_candidate_sees_neither_the_engines_files_nor_its_keys(tmp_path: Path) -> None:
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    (task_dir / "labels.json").write_text('{"1": "the answer"}')
    source = (
        "import os\n"
        "def solve(x):\n"
        f"    key = os.environ.get('OPENAI_API_KEY')\n"
        "    try:\n"
        f"        seen = open({str(task_dir / 'labels.json')!r}).read()\n"
        "    except OSError as exc:\n"
        "        seen = type(exc).__name__\n"
        "    return [key, seen, sorted(os.listdir('.'))]\n"
    )
    sandbox = RaySandbox(inner=INNER, hide=[str(task_dir)])
    key, seen, listing = output(solve(sandbox, tmp_path / "ws", source))
    assert key is None
    assert seen in ("FileNotFoundError", "PermissionError")
    assert listing == ["agent.py"]


def test_a_job_past_its_time_is_a_timeout_and_the_next_job_runs(tmp_path: Path) -> None:
    sandbox = RaySandbox(inner=INNER)
    result = solve(
        sandbox, tmp_path / "a", "def solve(x):\n    while True:\n        pass\n", wall=2
    )
    assert result.outcome is Outcome.TIMEOUT
    assert output(solve(sandbox, tmp_path / "b", "def solve(x):\n    return 1\n")) == 1


class HangingSandbox:
    """An inner sandbox whose Ray worker hangs (as a wedged worker would)."""

    name = "hanging"

    def run(self, workspace: Path, request: dict[str, Any], **_: Any) -> SandboxResult:
        time.sleep(3600)
        raise AssertionError("unreachable")


class DyingSandbox:
    """An inner sandbox whose Ray worker dies mid-job (as a lost node would look)."""

    name = "dying"

    def run(self, workspace: Path, request: dict[str, Any], **_: Any) -> SandboxResult:
        os._exit(1)


def test_a_hung_worker_is_cancelled_and_recorded_as_a_timeout(tmp_path: Path) -> None:
    sandbox = RaySandbox(inner=HangingSandbox(), grace=1.0)  # type: ignore[arg-type]
    began = time.monotonic()
    result = solve(sandbox, tmp_path / "ws", "def solve(x):\n    return 1\n", wall=1)
    assert result.outcome is Outcome.TIMEOUT
    assert "cancelled" in result.reason
    assert time.monotonic() - began < 30
    # The cancelled worker's CPU is free again: the next job runs.
    assert (
        output(solve(RaySandbox(inner=INNER), tmp_path / "b", "def solve(x):\n    return 3\n")) == 3
    )


def test_a_worker_that_keeps_dying_is_retried_then_the_candidates_crash(tmp_path: Path) -> None:
    sandbox = RaySandbox(inner=DyingSandbox(), retries=1)  # type: ignore[arg-type]
    result = solve(sandbox, tmp_path / "ws", "def solve(x):\n    return 1\n")
    assert result.outcome is Outcome.CRASH
    assert "lost 2 times" in result.reason
    assert len(result.extra["ray"]["lost"]) == 2


def test_a_job_no_node_can_take_is_a_sandbox_error_after_the_queue_timeout(
    tmp_path: Path,
) -> None:
    sandbox = RaySandbox(inner=INNER, num_cpus=64, queue_timeout=1.0)
    with pytest.raises(SandboxError, match="no Ray node took the job within 1 s"):
        solve(sandbox, tmp_path / "ws", "def solve(x):\n    return 1\n")


def test_llm_calls_on_the_node_are_answered_by_the_engines_handler(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"text": request["messages"][-1]["content"].upper()}

    source = (
        "import llm\n"
        "def solve(x):\n"
        "    first = llm.complete('hello', purpose='solve', max_tokens=5)\n"
        "    try:\n"
        "        llm.complete('fail')\n"
        "    except llm.LLMError as exc:\n"
        "        return [first, str(exc)]\n"
    )

    def answering(request: dict[str, Any]) -> dict[str, Any]:
        if request["messages"][-1]["content"] == "fail":
            raise RuntimeError("budget exceeded")
        return handler(request)

    result = solve(RaySandbox(inner=INNER), tmp_path / "ws", source, llm=answering)
    first, error = output(result)
    assert first == "HELLO"
    assert "budget exceeded" in error
    assert seen == [
        {
            "messages": [{"role": "user", "content": "hello"}],
            "params": {"temperature": None, "max_tokens": 5},
            "purpose": "solve",
        }
    ]


def test_an_unknown_inner_sandbox_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown inner sandbox 'ray'"):
        RaySandbox(inner="ray")


def test_a_dead_relay_is_replaced_and_the_job_tried_again(tmp_path: Path) -> None:
    sandbox = RaySandbox(inner=INNER)
    sandbox.connect()
    first = sandbox._relay
    killer = threading.Timer(1.0, lambda: ray.kill(first))
    killer.start()
    source = "import time\ndef solve(x):\n    time.sleep(3)\n    return 5\n"
    result = solve(sandbox, tmp_path / "ws", source)
    killer.join()
    assert output(result) == 5
    assert sandbox._relay is not None and sandbox._relay != first

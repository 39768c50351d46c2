"""The LLM bridge: sandboxed code calls ``llm.complete``; the engine answers over its own pipe."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from hyperagents.sandbox import BwrapSandbox, Limits, ProcessSandbox, Sandbox, bwrap_available

needs_bwrap = pytest.mark.skipif(
    not bwrap_available() and os.environ.get("CI") != "true",
    reason="bubblewrap is not available here",
)


@pytest.fixture(params=["process", pytest.param("bwrap", marks=needs_bwrap)])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return ProcessSandbox() if request.param == "process" else BwrapSandbox()


AGENT = """import llm


def solve(inputs):
    first = llm.complete(inputs["prompt"], purpose="solve", max_tokens=5)
    second = llm.complete([{"role": "system", "content": "sys"},
                           {"role": "user", "content": first}], temperature=0.5)
    return [first, second]
"""


def run(sandbox: Sandbox, tmp_path: Path, source: str, handler: Any, **kwargs: Any) -> Any:
    (tmp_path / "agent.py").write_text(source)
    request = {
        "action": "solve",
        "module": "agent",
        "instances": [{"id": "1", "inputs": {"prompt": "hello"}}],
    }
    return sandbox.run(tmp_path, request, limits=Limits(wall_time=60), llm=handler, **kwargs)


def test_calls_reach_the_engine_handler_and_answers_come_back(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        last = request["messages"][-1]["content"]
        return {"text": last.upper()}

    result = run(sandbox, tmp_path, AGENT, handler)
    assert result.ok, result.reason
    assert result.messages[0]["output"] == ["HELLO", "HELLO"]
    assert seen[0] == {
        "messages": [{"role": "user", "content": "hello"}],
        "params": {"temperature": None, "max_tokens": 5},
        "purpose": "solve",
    }
    assert seen[1]["messages"][0] == {"role": "system", "content": "sys"}
    assert seen[1]["params"]["temperature"] == 0.5
    # LLM traffic is not mistaken for results.
    assert all(m["type"] in ("instance", "result") for m in result.messages)


def test_errors_surface_as_llm_errors_in_the_agent(sandbox: Sandbox, tmp_path: Path) -> None:
    source = (
        "import llm\n"
        "def solve(inputs):\n"
        "    try:\n"
        "        llm.complete('x')\n"
        "    except llm.LLMError as exc:\n"
        "        return 'error: ' + str(exc)\n"
    )
    result = run(sandbox, tmp_path, source, lambda r: {"error": "budget exceeded"})
    assert result.messages[0]["output"] == "error: budget exceeded"

    def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("gateway down")

    result = run(sandbox, tmp_path, source, broken)
    assert result.messages[0]["output"] == "error: RuntimeError: gateway down"
    result = run(sandbox, tmp_path, source, None)
    assert "no language model is configured" in result.messages[0]["output"]


def test_bad_messages_are_rejected_inside_the_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    source = (
        "import llm\n"
        "def solve(inputs):\n"
        "    try:\n"
        "        llm.complete([{'role': 'user'}])\n"
        "    except llm.LLMError as exc:\n"
        "        return str(exc)\n"
    )
    calls: list[Any] = []
    result = run(sandbox, tmp_path, source, calls.append)
    assert "messages must be" in result.messages[0]["output"] and calls == []


def test_concurrent_calls_from_agent_threads(sandbox: Sandbox, tmp_path: Path) -> None:
    source = (
        "import llm, threading\n"
        "def solve(inputs):\n"
        "    out = {}\n"
        "    def ask(i):\n"
        "        out[i] = llm.complete(str(i))\n"
        "    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]\n"
        "    [t.start() for t in threads]\n"
        "    [t.join() for t in threads]\n"
        "    return [out[i] for i in range(8)]\n"
    )
    lock = threading.Lock()
    count = [0]

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        with lock:
            count[0] += 1
        return {"text": "echo " + request["messages"][0]["content"]}

    result = run(sandbox, tmp_path, source, handler)
    assert result.messages[0]["output"] == [f"echo {i}" for i in range(8)]
    assert count[0] == 8


def test_warm_processes_serve_the_bridge_too(tmp_path: Path) -> None:
    sandbox = ProcessSandbox(warm=1)
    try:
        for _ in range(3):
            work = tmp_path / f"w{_}"
            work.mkdir()
            result = run(sandbox, work, AGENT, lambda r: {"text": "ok"})
            assert result.messages[0]["output"] == ["ok", "ok"]
    finally:
        sandbox.close()


def test_no_request_is_answered_after_the_job_ends(sandbox: Sandbox, tmp_path: Path) -> None:
    import time

    source = (
        "import json, os\n"
        "def solve(inputs):\n"
        "    line = json.dumps({'type': 'llm_request', 'id': 1, 'messages': "
        "[{'role': 'user', 'content': 'x'}], 'params': {}, 'purpose': ''}) + '\\n'\n"
        "    os.write(3, (line * 200).encode())\n"
        "    return 'flooded'\n"
    )
    calls = []

    def slow(request: dict[str, Any]) -> dict[str, Any]:
        calls.append(request)
        time.sleep(0.2)
        return {"text": "late"}

    (tmp_path / "agent.py").write_text(source)
    request = {"action": "solve", "module": "agent", "instances": [{"id": "1", "inputs": {}}]}
    sandbox.run(tmp_path, request, limits=Limits(wall_time=2), llm=slow)
    seen = len(calls)
    time.sleep(1.0)
    # The job lives 2 s and an answer takes 0.2 s: about ten of the 200 requests are answered
    # (far fewer than all, however busy the machine), none once it ended (no model is called).
    assert len(calls) == seen < 100


def test_an_interrupted_call_does_not_derail_the_next_one(sandbox: Sandbox, tmp_path: Path) -> None:
    import time

    source = "import llm\ndef solve(inputs):\n    return llm.complete(inputs['q'])\n"

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        question = request["messages"][0]["content"]
        if question == "slow":
            time.sleep(6.0)  # past a's 5 s instance timeout, and answered while b waits
        return {"text": "answer to " + question}

    (tmp_path / "agent.py").write_text(source)
    request = {
        "action": "solve",
        "module": "agent",
        # Each instance's: b, asked while a's answer is on its way, gets its own answer about
        # 1 s later, well within its 5 s however busy the machine.
        "instance_timeout": 5.0,
        "instances": [
            {"id": "a", "inputs": {"q": "slow"}},
            {"id": "b", "inputs": {"q": "b"}},
            {"id": "c", "inputs": {"q": "c"}},
        ],
    }
    result = sandbox.run(tmp_path, request, limits=Limits(wall_time=120), llm=handler)
    outputs = {
        m["id"]: (m["output"], m["error"]) for m in result.messages if m["type"] == "instance"
    }
    assert outputs["a"][1].startswith("timeout")
    assert outputs["b"] == ("answer to b", None) and outputs["c"] == ("answer to c", None)


def test_an_endless_line_is_dropped_not_buffered(sandbox: Sandbox, tmp_path: Path) -> None:
    source = "import os\ndef solve(inputs):\n    os.write(3, b'x' * (4 * 1024 * 1024))\n"
    (tmp_path / "agent.py").write_text(source)
    request = {"action": "solve", "module": "agent", "instances": [{"id": "1", "inputs": {}}]}
    result = sandbox.run(
        tmp_path, request, limits=Limits(wall_time=60, max_result_bytes=1024 * 1024)
    )
    assert result.outcome.name in ("OK", "INVALID_OUTPUT")

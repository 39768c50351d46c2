"""What a candidate sends is parsed with bounds, and only the harness can say the sandbox broke.

* :func:`loads_bounded` refuses NaN, infinities, out-of-range floats, deep nesting and huge lines
  with a reason, and never raises anything else;
* the harness's status pipe (written and closed before agent code runs) is the only evidence of a
  broken sandbox: a forged isolation error on the result channel is the candidate's error, while a
  harness that reports a failure, or never reports, is a :class:`SandboxError`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import SandboxError
from hyperagents.sandbox import Limits, Outcome, ProcessSandbox
from hyperagents.sandbox._messages import MAX_JSON_DEPTH, InvalidMessage, loads_bounded


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"NaN", "NaN is not a valid JSON number"),
        (b'{"v": [Infinity]}', "Infinity is not a valid JSON number"),
        (b"-Infinity", "-Infinity is not a valid JSON number"),
        (b"1e999", "out of range"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested deeper than"),
        (b'{"a": ' * 5000 + b"1" + b"}" * 5000, "nested deeper than"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
        (b"1" * 5000, "not valid JSON"),  # past Python's int-string limit
    ],
)
def test_refused_with_a_reason(raw: bytes, why: str) -> None:
    with pytest.raises(InvalidMessage, match=why):
        loads_bounded(raw)


def test_bounded_json_that_is_fine_is_parsed() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH - 1):
        deep = [deep]
    value = loads_bounded(b'{"x": [1.5, -2, "s", null, true], "big": ' + b"9" * 400 + b"}")
    assert value["x"] == [1.5, -2, "s", None, True] and value["big"] == int("9" * 400)
    import json

    assert loads_bounded(json.dumps(deep)) == deep
    assert math.isfinite(loads_bounded(b"1.7976931348623157e308"))


def test_size_bound() -> None:
    with pytest.raises(InvalidMessage, match="larger than"):
        loads_bounded(b'"' + b"x" * 100 + b'"', max_bytes=50)


class _FakeHarness(ProcessSandbox):
    """Runs a stand-in for the harness (a script of the test's own) instead of the real one."""

    def __init__(self, script: Path) -> None:
        super().__init__(isolate_user=False, unsafe=True)  # a fake harness: nothing to isolate
        self._script = script

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        return [sys.executable, "-I", "-S", str(self._script), fds], workspace


def _run_fake(tmp_path: Path, body: str) -> Any:
    script = tmp_path / "fake_harness.py"
    script.write_text(
        "import os, sys\n"
        "result_fd, reply_fd, status_fd = (int(f) for f in sys.argv[1].split(','))\n"
        "sys.stdin.buffer.read()\n" + body
    )
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sandbox = _FakeHarness(script)
    return sandbox.run(workspace, {"action": "solve"}, limits=Limits(wall_time=60))


def test_an_isolation_failure_reported_by_the_harness_is_the_sandboxes(tmp_path: Path) -> None:
    body = (
        'os.write(status_fd, b\'{"type": "error", "kind": "isolation", '
        '"error": "cannot isolate: EPERM"}\\n\')\n'
        "os._exit(3)\n"
    )
    with pytest.raises(SandboxError, match="cannot isolate: EPERM"):
        _run_fake(tmp_path, body)


def test_a_harness_that_never_reports_is_the_sandboxes(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="did not start"):
        _run_fake(tmp_path, "sys.stderr.write('boom\\n')\nos._exit(1)\n")


def test_the_same_words_on_the_result_channel_are_the_candidates(tmp_path: Path) -> None:
    body = (
        'os.write(status_fd, b\'{"type": "isolation", "network": false, "user": null}\\n\')\n'
        "os.close(status_fd)\n"
        'os.write(result_fd, b\'{"type": "error", "kind": "isolation", '
        '"error": "cannot isolate"}\\n\')\n'
        "os._exit(3)\n"
    )
    result = _run_fake(tmp_path, body)
    assert result.outcome is Outcome.ERROR
    assert "cannot isolate" in result.reason
    assert result.extra["isolation"]["user"] is None


@pytest.mark.parametrize("raw", [b'"\\udcff"', b'{"\\ud83d": 1}', b'["ok", ["\\udfff"]]'])
def test_lone_surrogates_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidMessage, match="lone surrogate"):
        loads_bounded(raw)
    assert loads_bounded(b'"\\ud83d\\ude00 \\u202e \\u0000"') == "\U0001f600 \u202e \x00"

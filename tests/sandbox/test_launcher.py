"""The launcher seam: a sandbox that only says how the harness starts gets the rest.

The ``process`` and ``bwrap`` sandboxes both subclass :class:`Launcher`; a subclass written
here against its documented hooks alone runs requests with limits, the wall-clock kill, the
outcome classification and warm standbys.
"""

from __future__ import annotations

import time
from pathlib import Path

from hyperagents.sandbox import BwrapSandbox, Limits, Outcome, ProcessSandbox, SandboxResult
from hyperagents.sandbox._launcher import Launcher


class _Plain(Launcher):
    """A sandbox written against the seam: how to start the harness, and a cleanup hook."""

    name = "plain"

    def __init__(self) -> None:
        super().__init__(isolate_user=False)
        self.cleaned: list[Path | None] = []

    def _command(self, workspace: Path, harness: Path, fds: str) -> tuple[list[str], Path]:
        return [self.python, "-I", "-S", str(harness), fds], workspace

    def _after(self, uid: int | None, directory: Path | None = None) -> None:
        self.cleaned.append(directory)


def _solve(sandbox: Launcher, workspace: Path, source: str, *, wall: float = 60) -> SandboxResult:
    (workspace / "agent.py").write_text(source)
    request = {
        "action": "solve",
        "module": "agent",
        "instances": [{"id": "0", "inputs": {"k": 21}}],
    }
    return sandbox.run(workspace, request, limits=Limits(wall_time=wall))


def test_both_sandboxes_are_launchers() -> None:
    assert issubclass(ProcessSandbox, Launcher) and issubclass(BwrapSandbox, Launcher)


def test_a_subclass_of_the_seam_runs_a_request(tmp_path: Path) -> None:
    sandbox = _Plain()
    assert not sandbox.isolates_user and sandbox.standbys == 0
    result = _solve(sandbox, tmp_path, "def solve(x):\n    return x['k'] * 2\n")
    assert result.ok, result.reason
    outputs = [m["output"] for m in result.messages if m["type"] == "instance"]
    assert outputs == [42]
    assert result.extra["isolation"]["network"] is False
    assert sandbox.cleaned == [tmp_path]  # the cleanup hook ran after the process exited


def test_the_seam_kills_a_runaway_at_the_wall_clock(tmp_path: Path) -> None:
    result = _solve(_Plain(), tmp_path, "def solve(x):\n    while True:\n        pass\n", wall=2)
    assert result.outcome is Outcome.TIMEOUT


def test_the_seam_keeps_warm_standbys(tmp_path: Path) -> None:
    sandbox = _Plain()
    sandbox.set_warm(1)
    try:
        deadline = time.monotonic() + 60
        while sandbox.standbys < 1:
            assert time.monotonic() < deadline, "no standby started"
            time.sleep(0.01)
        result = _solve(sandbox, tmp_path, "def solve(x):\n    return 'warm'\n")
        assert result.ok, result.reason
        assert (tmp_path / "agent.py").exists()  # the files came back from the standby's directory
    finally:
        sandbox.set_warm(0)
    assert sandbox.standbys == 0

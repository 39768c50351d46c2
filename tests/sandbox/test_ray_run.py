"""Whole runs in the ray sandbox, on a real local Ray instance: offline and with a model answered
through the relay, a meta agent past its time and a hung Ray worker failing their child only,
and ``--sandbox ray`` on the command line, joining a cluster started with ``ray start``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.runs import Run, RunConfig
from hyperagents.sandbox import (
    RaySandbox,
    SandboxResult,
    bwrap_available,
    get_sandbox,
)
from hyperagents.storages import InMemoryStorage, RunStatus, VariantState
from hyperagents.testing import FakeOpenAIServer

from toytask import LLM_META_AGENT, ToyTask

ray = pytest.importorskip("ray") if os.environ.get("CI") != "true" else __import__("ray")
INNER = "bwrap" if bwrap_available() or os.environ.get("CI") == "true" else "process"
CONFIG = {"subset_size": 10, "selector": "best", "sandbox": "ray", "ray_inner": INNER}
TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # HangOnImprove below
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def finished(run: Run) -> list[Any]:
    variants = run.variants()
    assert all(v.state.is_terminal for v in variants)
    return variants


def test_an_offline_run_completes_in_the_ray_sandbox(cluster: None) -> None:
    run = Run.create(task=ToyTask(), seed=1, storage=InMemoryStorage(), config=CONFIG)
    assert isinstance(run._ctx.sandbox, RaySandbox)
    assert run.optimize(generations=3, workers=2).status is RunStatus.COMPLETE
    variants = finished(run)
    assert len(variants) == 4
    assert all(v.state is VariantState.COMPLETE for v in variants)
    assert variants[0].scores["val"] > 0


def test_the_meta_agents_model_calls_come_back_to_the_engine(
    cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryStorage()
    with FakeOpenAIServer(default="0.5", model="m", api_key="sk-fake-key") as server:
        # The key is the engine's: the server refuses calls without it.
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "sk-fake-key")
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", server.base_url)
        config = {**CONFIG, "llm": f"{server.base_url}#m"}
        run = Run.create(
            task=ToyTask(meta_agent=LLM_META_AGENT), seed=1, storage=store, config=config
        )
        record = run.optimize(generations=2)
        assert record.status is RunStatus.COMPLETE, run.last_stop_reason
        assert server.calls >= 2
    calls = store.list_llm_calls(run.id)
    assert len(calls) >= 2 and all(c.variant_id is not None for c in calls)
    child = finished(run)[1]
    assert child.state is VariantState.COMPLETE, child.reason
    # The model's reply reached the meta agent on its node, and its edit came back.
    assert b'"t": 0.5' in run.program(child)["task_agent.py"]


def test_a_meta_agent_past_its_time_fails_its_child_only(cluster: None) -> None:
    slow = LLM_META_AGENT.replace(
        "def improve(workspace, report):\n",
        "def improve(workspace, report):\n    import time\n\n    time.sleep(60)\n",
    )
    config = RunConfig.parse({**CONFIG, "meta_timeout": 2.0})
    run = Run.create(
        task=ToyTask(meta_agent=slow), seed=1, storage=InMemoryStorage(), config=config
    )
    assert run.optimize(generations=2).status is RunStatus.COMPLETE
    children = finished(run)[1:]
    assert len(children) == 2
    assert all(v.state is VariantState.FAILED for v in children)
    assert all("time" in (v.reason or "") for v in children), [v.reason for v in children]


class HangOnImprove:
    """An inner sandbox whose Ray worker hangs on the first meta-agent job (a wedged worker),
    and runs every other job in the real inner sandbox."""

    name = "hang-on-improve"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def run(self, workspace: Path, request: dict[str, Any], **kwargs: Any) -> SandboxResult:
        if request.get("action") == "improve" and not os.path.exists(self.marker):
            Path(self.marker).touch()
            time.sleep(3600)
        result: SandboxResult = get_sandbox(INNER).run(workspace, request, **kwargs)
        return result


def test_a_hung_worker_fails_its_child_and_the_run_goes_on(cluster: None, tmp_path: Path) -> None:
    sandbox = RaySandbox(inner=HangOnImprove(str(tmp_path / "hung")), grace=1.0)  # type: ignore[arg-type]
    config = RunConfig.parse({**CONFIG, "meta_timeout": 3.0})
    run = Run.create(
        task=ToyTask(), seed=1, storage=InMemoryStorage(), config=config, sandbox=sandbox
    )
    assert run.optimize(generations=3).status is RunStatus.COMPLETE
    children = finished(run)[1:]
    hung = [v for v in children if v.state is VariantState.FAILED]
    assert len(hung) == 1 and "cancelled" in (hung[0].reason or ""), [v.reason for v in children]
    assert sum(v.state is VariantState.COMPLETE for v in children) == 2


def test_without_ray_the_ray_sandbox_is_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'hyperagents\[ray\]'"):
        get_sandbox("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ray_env() -> dict[str, str]:
    """The environment of ``ray start`` and of the engine joining it: no usage statistics, and
    no token file shared with other Ray instances on this machine (a test's private cluster)."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def head(tmp_path: Path) -> Iterator[str]:
    """A Ray cluster started as a user would (``ray start --head``, kept in the foreground with
    ``--block`` in a process group of its own, so that only this cluster is stopped after the
    test: ``ray stop`` would stop every Ray instance of the machine); its address."""
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    port = _free_port()
    command = [ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2"]
    proc = subprocess.Popen(
        [*command, "--include-dashboard=false", "--disable-usage-stats"],
        env=ray_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_group(proc)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ray start --head exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(2.0)  # the GCS listens; give the raylet a moment to register
                return
        time.sleep(0.5)
    raise AssertionError("the Ray head did not start in 180 s")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
    proc.wait(timeout=30)


def test_the_command_line_runs_in_ray_and_resumes_on_a_ray_cluster(
    head: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    common = ("--storage", url)
    env = {k: v for k, v in ray_env().items() if k != "HYPERAGENTS_STORAGE"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "hyperagents", *args, *common],
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    # A local Ray instance of its own first, then the cluster at the address.
    cli("run", "-t", TOY, "-g", "1", "-n", "onray", "--subset-size", "10", "--sandbox", "ray", "-q")
    cli("resume", "onray", "-g", "1", "--ray-address", head, "-q")
    status = cli("status", "onray", "--json").stdout
    assert '"generations": 2' in status and '"status": "complete"' in status
    run = Run.load("onray", storage=url)
    assert run.config.sandbox == "ray" and run.config.ray_address == head
    assert all(v.state is VariantState.COMPLETE for v in run.variants())


def test_a_remote_caller_cannot_point_the_engine_at_a_cluster(tmp_path: Path) -> None:
    from hyperagents.runs import (
        RemoteCaller,
        ResumeRequest,
        RunService,
        StartRequest,
        check_remote_start,
    )

    caller = RemoteCaller(token_protected=True)
    for request in (
        StartRequest(task="review", sandbox="ray"),
        StartRequest(task="review", ray_address="ray://attacker:10001"),
    ):
        with pytest.raises(ConfigError, match="use the sandbox auto or bwrap"):
            check_remote_start(request, caller)
    service = RunService(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ConfigError, match="keep their sandbox"):
        service.resume_detached(
            ResumeRequest(run="any", ray_address="ray://attacker:10001"), remote=caller
        )


def test_ray_options_are_stored_with_the_run() -> None:
    from hyperagents.runs import StartRequest

    config = StartRequest(task="review", ray_address="auto").run_config()
    assert (config.sandbox, config.ray_address, config.ray_inner) == ("ray", "auto", "bwrap")

"""Helpers of the planning calls' tests (not a pytest module): the served site on SQLite or
PostgreSQL, an autopilot over it, a plan made once, a model server that kills a child process
on a given request, and checks that a run's record replays."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hyperagents
from hyperagents.runs import RunLLM, RunService
from hyperagents.service import (
    Autopilot,
    AutopilotSettings,
    ImprovementBudget,
    LiveExample,
    PlanSettings,
    PlanStep,
    Stage,
    improve_with_plans,
    parse_settings,
    plan_improver,
)
from hyperagents.storages import BaseStorage
from hyperagents.tasks import load_task
from hyperagents.testing import FakeOpenAIServer
from postgres_helpers import postgres_databases

from planning_site import SIZES, Site

#: The storages the tests run on.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def make_site(backend: str, tmp_path: Path) -> Iterator[Site]:
    """A served site on ``backend`` (a fixture's body)."""
    if backend == "sqlite":
        yield Site(f"sqlite:///{tmp_path / 'plancalls.db'}", llm_prices=PRICES, training=ALONE)
        return
    with postgres_databases() as make:
        site = Site(make(), llm_prices=PRICES, training=ALONE)
        yield site
        site.store.close()


#: Dollars per million tokens of the fake model: every call costs something.
PRICES = {"m": [100.0, 200.0]}
#: The served run's training settings: the champion alone votes on its own answers (support's
#: verifier needs the target), so a plan's ``self`` action asks it (through the model) and
#: keeps what it says.
ALONE = {"voters": 1, "quorum": 1}


class Killed(BaseException):
    """The process dying (nothing catches it as an error)."""


def logged(store: BaseStorage, site: Site, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in store.list_service_events(site.record.id, kinds=[kind])]


def autopilot(store: BaseStorage, site: Site, url: str) -> Autopilot:
    settings = parse_settings(
        AutopilotSettings,
        {"feedback_wait_s": 0, "generations": 1, "max_replans": 0, "planner_llm": url},
    )
    improver = plan_improver(RunService(store), settings)
    return Autopilot(
        store,
        site.record.id,
        task=load_task("support", SIZES),
        improver=improver,
        settings=settings,
    )


def plan_once(
    site: Site,
    server: FakeOpenAIServer,
    *,
    live: list[LiveExample] | None = None,
    service: bool = True,
) -> list[PlanStep]:
    return improve_with_plans(
        site.service,
        run="served",
        live=site.live if live is None else live,
        budget=ImprovementBudget(generations=1),
        settings=PlanSettings(max_replans=0, model=f"{server.base_url}#m"),
        service_id=site.record.id if service else None,
    )


def step_until(pilot: Autopilot, stage: Stage, *, also: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + 120
    while pilot.step() is not stage or not also():
        assert time.monotonic() < deadline
        time.sleep(0.05)


CHILD = """
import sys, time
from hyperagents.runs import RunService
from hyperagents.service import Autopilot, AutopilotSettings, parse_settings, plan_improver
from hyperagents.service import post_override
from hyperagents.storages import RDBStorage
from hyperagents.tasks import load_task

url, model, service_id, sizes = sys.argv[1], sys.argv[2], int(sys.argv[3]), eval(sys.argv[4])
store = RDBStorage(url)
settings = parse_settings(
    AutopilotSettings,
    {"feedback_wait_s": 0, "generations": 1, "max_replans": 0, "planner_llm": model},
)
pilot = Autopilot(
    store,
    service_id,
    task=load_task("support", sizes),
    improver=plan_improver(RunService(store), settings),
    settings=settings,
)
post_override(store, service_id, "force", who="test")
while True:
    pilot.step()
    time.sleep(0.05)
"""


class KillOnRequest:
    """A model server's handler that kills the child's process group (it and its sandboxes)
    when the ``kill_at``-th request comes, once; it answers every request with ``answer``."""

    def __init__(self, answer: Callable[[dict[str, Any]], str], kill_at: int) -> None:
        self.answer, self.kill_at = answer, kill_at
        self.child: subprocess.Popen[bytes] | None = None
        self.asked = 0

    def __call__(self, body: dict[str, Any]) -> str:
        self.asked += 1
        if self.asked == self.kill_at and self.child is not None:
            os.killpg(self.child.pid, signal.SIGKILL)
        return self.answer(body)

    def run(self, script: str, *args: str) -> None:
        """Run ``script`` in a child process until the kill; fail if it ends otherwise."""
        src = str(Path(hyperagents.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        self.child = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env={**os.environ, "PYTHONPATH": path},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = self.child.communicate(timeout=240)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
        assert self.child.returncode == -signal.SIGKILL, err.decode()[-2000:]


def planning_calls(store: BaseStorage, run_id: int) -> list[Any]:
    return [
        c
        for c in store.list_llm_calls(run_id)
        if c.purpose.split("/")[0] in ("plan", "teacher", "self")
    ]


def assert_replays(store: BaseStorage, run_id: int) -> None:
    """The run's record answers each of its planning requests again, calling no model."""
    replay = RunLLM(store, None, spec=None, replay_of=run_id)
    for call in planning_calls(store, run_id):
        purpose, scope = call.purpose.split("/")[0], str(call.request["extra"]["scope"])
        answer = replay.handler(variant_id=None, purpose=purpose, scope=scope)(
            {"messages": call.request["messages"], "params": call.request["params"]}
        )
        assert answer == {"text": call.reply}

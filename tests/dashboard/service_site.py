"""Services for the dashboard's tests: a run of a toy task with a declared input, its
champion and a candidate variant, and services over it whose requests, feedback and
autopilot log are recorded straight into storage (not a pytest module)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import served_runs
from hyperagents.service import Autopilot, AutopilotSettings, Improvement, LiveExample, Stage
from hyperagents.storages import (
    BaseStorage,
    CandidateState,
    ServiceRecord,
    ServiceRouting,
    ServiceSpec,
)

from toytask import TASK_AGENT

DRIFT_TASK = f"{Path(__file__).resolve().parent / 'drifttask.py'}:DriftToyTask"
#: The candidate's task agent: the hidden rule itself.
CANDIDATE_AGENT = TASK_AGENT.replace('PARAMS = {"t": 0.2}', 'PARAMS = {"t": 0.63}')
#: The autopilot's settings: a threshold goal, a short warm-up, straight to A/B.
SETTINGS = {
    "monitor": {
        "goal": {"kind": "threshold", "threshold": 0.8},
        "detector": {"warmup": 20, "level": 5.0},
    },
    "trigger": {"min_feedback": 20, "cooldown_s": 3600.0},
    "test": {"min_samples": 20, "shadow_samples": 0, "traffic_share": 0.5},
    "feedback_wait_s": 0.0,
}
PLAN = {
    "plan": {
        "attempt": 0,
        "plan": {
            "diagnosis": {"summary": "large x answered wrong"},
            "actions": [{"kind": "harness_edit", "focus": ["x"]}],
            "success_criteria": [
                {"metric": "score", "split_or_slice": "val", "op": ">=", "value": "served"}
            ],
        },
        "source": "planner",
        "error": None,
        "wall": 0.1,
    },
    "run_id": 1,
    "outcome": {"run_id": 1, "status": "complete", "improved": True},
    "check": {
        "met": True,
        "results": [
            {
                "criterion": "score val >= served",
                "actual": 1.0,
                "target": 0.5,
                "met": True,
                "reason": "",
            }
        ],
    },
}


@dataclass
class Served:
    run: str
    run_id: int
    champion: int
    candidate: int


def make_served_run(storage: BaseStorage, name: str) -> Served:
    """A run of the drift toy task (its seed evaluated) and a candidate variant."""
    run_id, champion, candidate = served_runs.make_served_run(
        storage, name, task=DRIFT_TASK, candidate_agent=CANDIDATE_AGENT
    )
    return Served(name, run_id, champion, candidate)


def new_service(storage: BaseStorage, served: Served, name: str) -> int:
    return storage.create_service(
        ServiceSpec(name=name, run_id=served.run_id, champion_id=served.champion)
    )


def target(x: float) -> str:
    return "hi" if x > 0.63 else "lo"


def answer(
    storage: BaseStorage,
    service: int,
    variant: int,
    x: float,
    *,
    right: bool,
    arm: str = "champion",
    label: bool = True,
) -> int:
    """Record one answered request, labelled unless told not to."""
    rid = storage.add_service_request(service, variant_id=variant, arm=arm, inputs={"x": x})
    wrong = "lo" if target(x) == "hi" else "hi"
    storage.finish_service_request(rid, output=target(x) if right else wrong, latency=0.01)
    if label:
        storage.set_request_feedback(rid, label=target(x), by="test")
    return rid


def stream(
    storage: BaseStorage, service: int, variant: int, xs: Sequence[float], *, every_wrong: int
) -> None:
    """Answer ``xs``; every ``every_wrong``-th answer is wrong (0: none)."""
    for i, x in enumerate(xs):
        answer(storage, service, variant, x, right=not every_wrong or i % every_wrong != 0)


def put_under_ab(storage: BaseStorage, service: int, candidate: int, share: float = 0.5) -> None:
    """Give the candidate a share of the traffic (as the autopilot's A/B phase does)."""
    record = storage.get_service(service)
    routing = ServiceRouting(
        champion_id=record.champion_id,
        candidate_id=candidate,
        candidate_state=CandidateState.AB,
        candidate_share=share,
    )
    assert storage.set_service_routing(service, routing, expected=record.routing)


def autopilot_to_ab(
    storage: BaseStorage, served: Served, service: int, *, drift: bool
) -> Autopilot:
    """A real autopilot over the service: good answers, then (on drifted inputs with
    ``drift``) wrong ones until it triggers; its improver hands back the candidate, which goes
    straight to A/B. Each arm then answers 60 labelled requests (the candidate better)."""
    from drifttask import DriftToyTask

    def improve(live: Sequence[LiveExample], record: ServiceRecord) -> Improvement:
        return Improvement(served.candidate, [PLAN])

    pilot = Autopilot(
        storage,
        service,
        task=DriftToyTask(),
        improver=improve,
        settings=AutopilotSettings.model_validate(SETTINGS),
    )
    good = 500 if drift else 60
    stream(
        storage, service, served.champion, [(i * 0.37) % 0.5 for i in range(good)], every_wrong=0
    )
    pilot.step()
    bad = (
        [0.5 + (i * 0.37) % 0.5 for i in range(300)]
        if drift
        else [(i * 0.37) % 1.0 for i in range(60)]
    )
    stream(storage, service, served.champion, bad, every_wrong=2)
    for _ in range(200):
        if pilot.step() is Stage.TESTING:
            break
    assert pilot.state.stage is Stage.TESTING
    for i in range(60):
        x = (i * 0.29) % 1.0
        answer(storage, service, served.champion, x, right=i % 3 != 0)
        answer(storage, service, served.candidate, x, right=True, arm="candidate")
    return pilot

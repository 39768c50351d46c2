"""The autopilot: a degraded champion triggers an improvement, the candidate goes to shadow
then A/B, the sequential test promotes or rolls it back (or a person does), and a restarted
autopilot takes up where the last one stopped. Requests are recorded straight into storage
(what :class:`~hyperagents.service.Serving` records), so each test sets the answers' quality."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from service_helpers import Site, service_site
from servicetask import ServiceToyTask

from hyperagents.exceptions import ConfigError
from hyperagents.service import (
    STATE_EVENT,
    Autopilot,
    AutopilotSettings,
    Improvement,
    LiveExample,
    Override,
    PlanLog,
    Stage,
    decide_candidate,
    log_plan_run,
    post_override,
    request_quality,
)
from hyperagents.storages import CandidateState, ServiceRecord
from hyperagents.tasks import load_task
from postgres_helpers import postgres_databases

SETTINGS = {
    "monitor": {
        "goal": {"kind": "threshold", "threshold": 0.8},
        "detector": {"warmup": 20, "level": 5.0},
    },
    "trigger": {"min_feedback": 20, "cooldown_s": 3600.0},
    "test": {"min_samples": 20, "shadow_samples": 30, "traffic_share": 0.5},
    "feedback_wait_s": 0.0,
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The served run, in SQLite or PostgreSQL (the autopilot's state and log live there)."""
    tmp = tmp_path_factory.mktemp("autopilot")
    if request.param == "sqlite":
        yield from service_site(f"sqlite:///{tmp / 'service.db'}", tmp)
        return
    with postgres_databases() as make:
        yield from service_site(make(), tmp)


def _settings(**changes: Any) -> AutopilotSettings:
    return AutopilotSettings.model_validate({**SETTINGS, **changes})


def _target(x: float) -> str:
    return "hi" if x > 0.63 else "lo"


def _answer(
    site: Site,
    service: int,
    x: float,
    *,
    right: bool,
    variant: int | None = None,
    arm: str = "champion",
    shadow_of: int | None = None,
    label: bool = True,
) -> int:
    """Record one answered request (labelled unless it is a shadow answer)."""
    storage = site.storage
    answering = site.champion if variant is None else variant
    rid = storage.add_service_request(
        service, variant_id=answering, arm=arm, inputs={"x": x}, shadow_of=shadow_of
    )
    wrong = "lo" if _target(x) == "hi" else "hi"
    storage.finish_service_request(rid, output=_target(x) if right else wrong, latency=0.01)
    if label and arm != "shadow":
        storage.set_request_feedback(rid, label=_target(x), by="test")
    return rid


def _stream(site: Site, service: int, n: int, *, right: bool, start: int = 0) -> None:
    for i in range(start, start + n):
        _answer(site, service, (i * 0.37) % 1.0, right=right)


class _Improver:
    """Stands in for the planner and its runs: hands back a fixed candidate."""

    def __init__(self, candidate: int | None, *, fail: bool = False) -> None:
        self.candidate = candidate
        self.fail = fail
        self.calls: list[tuple[list[LiveExample], int]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, live: Sequence[LiveExample], service: ServiceRecord) -> Improvement:
        self.calls.append((list(live), service.champion_id))
        self.release.wait(30)
        if self.fail:
            raise RuntimeError("the planner broke")
        return Improvement(self.candidate, [{"plan": {"diagnosis": "test"}, "run_id": 0}])


def _pilot(
    site: Site, service: int, improver: Callable[..., Improvement], **changes: Any
) -> Autopilot:
    return Autopilot(
        site.storage,
        service,
        task=ServiceToyTask(),
        improver=improver,
        settings=_settings(**changes),
    )


def _until(pilot: Autopilot, stage: Stage, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while pilot.step() is not stage:
        assert time.monotonic() < deadline, f"still {pilot.state.stage}"
        time.sleep(0.02)


def _kinds(site: Site, service: int) -> list[str]:
    events = site.storage.list_service_events(service)
    return [e.kind for e in events if e.kind.startswith("autopilot.") and e.kind != STATE_EVENT]


def _degrade(site: Site, service: int, pilot: Autopilot) -> None:
    """Good answers, then a run of wrong ones until the alarm stands and the trigger fires."""
    _stream(site, service, 60, right=True)
    pilot.step()
    assert pilot.state.stage is Stage.WATCHING and not pilot.monitor.degraded
    _stream(site, service, 60, right=False, start=60)
    pilot.step()
    assert pilot.monitor.degraded


def _shadow_pairs(site: Site, service: int, n: int, *, candidate_right: bool) -> None:
    for i in range(n):
        x = (i * 0.29) % 1.0
        rid = _answer(site, service, x, right=False)
        _answer(
            site,
            service,
            x,
            right=candidate_right,
            variant=site.candidate,
            arm="shadow",
            shadow_of=rid,
        )


def _ab(site: Site, service: int, n: int) -> None:
    """A/B traffic: the champion keeps failing, the candidate answers right."""
    for i in range(n):
        x = (i * 0.41) % 1.0
        if i % 2:
            _answer(site, service, x, right=True, variant=site.candidate, arm="candidate")
        else:
            _answer(site, service, x, right=False)


def test_a_degraded_champion_is_improved_tested_and_replaced(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    improver = _Improver(site.candidate)
    pilot = _pilot(site, service, improver)
    _degrade(site, service, pilot)
    _until(pilot, Stage.TESTING)
    ((live, served),) = improver.calls
    assert served == site.champion and len(live) == 120  # every labelled request, oldest first
    assert [int(e.request_id) for e in live] == sorted(int(e.request_id) for e in live)
    record = site.storage.get_service(service)
    assert record.candidate_id == site.candidate
    assert record.candidate_state is CandidateState.SHADOW
    _shadow_pairs(site, service, 30, candidate_right=True)
    pilot.step()
    record = site.storage.get_service(service)
    assert record.candidate_state is CandidateState.AB and record.candidate_share == 0.5
    _ab(site, service, 80)
    _until(pilot, Stage.WATCHING)
    record = site.storage.get_service(service)
    assert record.champion_id == site.candidate
    assert record.candidate_state is CandidateState.PROMOTED
    assert _kinds(site, service) == [
        "autopilot.improving",
        "autopilot.testing",
        "autopilot.ab",
        "autopilot.promoted",
    ]
    assert not pilot.monitor.degraded  # the watch starts afresh on the new champion
    assert pilot.state.epoch_from >= pilot.state.test_from


def test_a_candidate_worse_in_shadow_is_rolled_back(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    pilot = _pilot(site, service, _Improver(site.candidate))
    _degrade(site, service, pilot)
    _until(pilot, Stage.TESTING)
    for i in range(40):  # now the champion is right and the candidate wrong
        x = (i * 0.29) % 1.0
        rid = _answer(site, service, x, right=True)
        _answer(site, service, x, right=False, variant=site.candidate, arm="shadow", shadow_of=rid)
    _until(pilot, Stage.WATCHING)
    record = site.storage.get_service(service)
    assert record.champion_id == site.champion
    assert record.candidate_state is CandidateState.ROLLED_BACK
    assert _kinds(site, service)[-1] == "autopilot.rolled_back"


def test_with_approval_a_person_confirms_the_promotion(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    pilot = _pilot(site, service, _Improver(site.candidate), approval=True)
    _degrade(site, service, pilot)
    _until(pilot, Stage.TESTING)
    _shadow_pairs(site, service, 30, candidate_right=True)
    pilot.step()
    _ab(site, service, 80)
    _until(pilot, Stage.AWAITING_APPROVAL)
    assert site.storage.get_service(service).champion_id == site.champion  # not yet
    assert decide_candidate(site.storage, service, promote=True, who="ops", note="looks good")
    assert pilot.step() is Stage.WATCHING
    assert site.storage.get_service(service).champion_id == site.candidate
    assert not decide_candidate(site.storage, service, promote=False, who="ops")  # none left


def test_a_restarted_autopilot_takes_up_the_test_where_it_was(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    pilot = _pilot(site, service, _Improver(site.candidate))
    _degrade(site, service, pilot)
    _until(pilot, Stage.TESTING)
    _shadow_pairs(site, service, 12, candidate_right=True)
    pilot.step()
    assert pilot.test is not None
    counts, summary = pilot.test.counts, pilot.monitor.summary()
    again = _pilot(site, service, _Improver(None))  # a new process
    assert again.state.stage is Stage.TESTING and again.test is not None
    assert again.step() is Stage.TESTING  # reads on from where its state was recorded
    assert again.test.counts == counts
    assert again.monitor.summary()["feedback"] == summary["feedback"]
    assert again.monitor.degraded
    _shadow_pairs(site, service, 18, candidate_right=True)
    again.step()
    assert site.storage.get_service(service).candidate_state is CandidateState.AB


def test_a_failing_improvement_is_recorded_and_the_watch_goes_on(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    pilot = _pilot(site, service, _Improver(None, fail=True))
    _degrade(site, service, pilot)  # the trigger fires in its last step
    _until(pilot, Stage.WATCHING)
    assert _kinds(site, service) == ["autopilot.improving", "autopilot.failed"]
    assert site.storage.get_service(service).candidate_id is None
    # no candidate: recorded, the champion stays
    other = new_service()
    pilot = _pilot(site, other, _Improver(None))
    _degrade(site, other, pilot)
    _until(pilot, Stage.WATCHING)
    assert _kinds(site, other)[-1] == "autopilot.no_candidate"


def _waits(improver: _Improver) -> _Improver:
    improver.release.clear()  # it never finishes in this process
    return improver


def test_an_improvement_cut_off_while_planning_is_resumed_once_with_its_live_examples(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    first = _waits(_Improver(site.candidate))
    pilot = _pilot(site, service, first)
    _degrade(site, service, pilot)
    _until(pilot, Stage.IMPROVING)
    second = _waits(_Improver(site.candidate))
    again = _pilot(site, service, second)  # a restart: no run of it had started
    assert again.state.stage is Stage.IMPROVING
    assert _kinds(site, service)[-1] == "autopilot.resumed"
    deadline = time.monotonic() + 30
    while not second.calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert second.calls == first.calls  # the same live examples, the same champion
    third = _pilot(site, service, _Improver(site.candidate))  # cut off again: not resumed
    assert third.state.stage is Stage.WATCHING
    assert _kinds(site, service)[-1] == "autopilot.interrupted"
    (interrupted,) = site.storage.list_service_events(service, kinds=["autopilot.interrupted"])
    assert interrupted.data["reason"] == "it was resumed once already and cut off again"
    first.release.set()
    second.release.set()


def test_an_improvement_cut_off_after_its_run_started_is_recorded_as_interrupted(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    improver = _waits(_Improver(site.candidate))
    pilot = _pilot(site, service, improver)
    _degrade(site, service, pilot)
    _until(pilot, Stage.IMPROVING)
    log_plan_run(PlanLog(site.storage, service_id=service), site.run_id)  # its run started
    again = _pilot(site, service, _Improver(site.candidate))
    assert again.state.stage is Stage.WATCHING
    assert _kinds(site, service)[-1] == "autopilot.interrupted"
    (interrupted,) = site.storage.list_service_events(service, kinds=["autopilot.interrupted"])
    assert interrupted.data["reason"] == f"its run(s) {site.run_id} had started (resumable by hand)"
    improver.release.set()


def test_a_steady_champion_never_triggers(site: Site, new_service: Callable[..., int]) -> None:
    service = new_service()
    improver = _Improver(site.candidate)
    pilot = _pilot(site, service, improver)
    for start in range(0, 600, 100):
        _stream(site, service, 100, right=True, start=start)
        assert pilot.step() is Stage.WATCHING
    assert improver.calls == [] and _kinds(site, service) == []


def test_the_operator_forces_or_suppresses_improvements(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    pilot = _pilot(site, service, _Improver(None))
    _stream(site, service, 60, right=True)
    post_override(site.storage, service, "force", who="ops")  # as the dashboard does
    _until(pilot, Stage.IMPROVING)
    _until(pilot, Stage.WATCHING)
    pilot.set_override(Override.SUPPRESS)
    _stream(site, service, 80, right=False, start=60)
    assert pilot.step() is Stage.WATCHING and pilot.monitor.degraded
    assert _kinds(site, service).count("autopilot.improving") == 1
    with pytest.raises(ConfigError, match="unknown override"):
        post_override(site.storage, service, "sometimes", who="ops")


@pytest.mark.parametrize(
    ("label", "feedback", "output", "error", "expected"),
    [
        ("hi", None, "hi", None, 1.0),
        ("hi", 1.0, "lo", None, 0.0),  # the label is the evidence when there is one
        ("hi", None, None, "crashed", 0.0),
        (None, 0.25, "lo", None, 0.25),
        (None, None, "lo", None, None),
    ],
)
def test_a_requests_quality_comes_from_its_label_or_feedback(
    site: Site,
    new_service: Callable[..., int],
    label: Any,
    feedback: float | None,
    output: Any,
    error: str | None,
    expected: float | None,
) -> None:
    service = new_service()
    storage = site.storage
    rid = storage.add_service_request(
        service, variant_id=site.champion, arm="champion", inputs={"x": 0.9}
    )
    storage.finish_service_request(rid, output=output, error=error, latency=0.0)
    if label is not None or feedback is not None:
        storage.set_request_feedback(rid, label=label, feedback=feedback, by="test")
    task = load_task(site_task(site))
    assert request_quality(task, storage.get_service_request(rid)) == expected


def site_task(site: Site) -> str:
    return site.storage.get_run(site.run_id).task


def test_the_watch_starts_once_and_a_restart_keeps_its_start(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    _stream(site, service, 5, right=True)  # before the autopilot: not watched
    first = _pilot(site, service, _Improver(None))
    _stream(site, service, 30, right=True, start=5)
    again = _pilot(site, service, _Improver(None))  # restarted before any decision
    assert again.state.epoch_from == first.state.epoch_from
    again.step()
    assert again.monitor.summary()["requests"] == 30


class _RaisingTask(ServiceToyTask):
    """A task whose scorer breaks on every answer."""

    def score(self, instance: Any, output: Any) -> Any:
        raise KeyError("broken scorer")


def test_an_answer_the_scorer_cannot_rate_gives_no_evidence(
    site: Site, new_service: Callable[..., int]
) -> None:
    service = new_service()
    rid = _answer(site, service, 0.9, right=True)
    record = site.storage.get_service_request(rid)
    assert request_quality(_RaisingTask(), record) is None
    assert request_quality(ServiceToyTask(), record) == 1.0

"""What the service pages show, as JSON from storage: a service's row, its detail (routing,
goal, the autopilot's recorded state, trigger and plans, a monitor summary and the A/B state
over the latest requests) and its log.

The autopilot (:class:`hyperagents.service.Autopilot`) keeps its monitor and its test in
memory and records only its state (``autopilot.state``) and decisions in the service's log,
so these figures are computed here the way it computes them: the served requests of the
current champion become :class:`~hyperagents.service.Observation` s for a
:class:`~hyperagents.service.Monitor` (with the settings the autopilot recorded with its
state; without them, the service's goal when it is one and the default windows), and the
requests since the candidate's test began are counted by a
:class:`~hyperagents.service.SequentialTest` with the recorded test settings (else the
defaults); the test's last recorded verdict is shown beside it. The quality of a labelled
answer is the task's trusted score (:func:`~hyperagents.service.request_quality`): the served
run's task is loaded (once per run, :class:`TaskCache`); where it does not load, only feedback
scores count.

``hyperagents.service`` imports the dashboard (for its guard), so it is imported here inside
the functions that need it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hyperagents.exceptions import ConfigError, HyperagentsError
from hyperagents.storages import (
    BaseStorage,
    CandidateState,
    RequestRecord,
    ServiceEventRecord,
    ServiceRecord,
)

if TYPE_CHECKING:
    from hyperagents.service import Monitor, SequentialTest
    from hyperagents.tasks import Task

__all__ = [
    "DECISION_KINDS",
    "MAX_SCAN",
    "TaskCache",
    "ab_state",
    "event_json",
    "events_page",
    "finite",
    "latest_state",
    "monitor_summary",
    "quality_of",
    "service_detail",
    "service_row",
    "shadow_quality",
]

#: The autopilot's decisions (the log's kinds shown on the chart and in the plans).
DECISION_KINDS = (
    "autopilot.improving",
    "autopilot.testing",
    "autopilot.ab",
    "autopilot.approval",
    "autopilot.promoted",
    "autopilot.rolled_back",
    "autopilot.no_candidate",
    "autopilot.no_data",
    "autopilot.failed",
    "autopilot.interrupted",
    "autopilot.override",
)
#: Most requests one figure reads (the latest ones).
MAX_SCAN = 20_000
_PAGE = 1000
_STATE = "autopilot.state"
_COMMAND = "autopilot.command"
_TEST_KINDS = (
    "autopilot.testing",
    "autopilot.ab",
    "autopilot.approval",
    "autopilot.promoted",
    "autopilot.rolled_back",
)


class TaskCache:
    """The served runs' tasks, loaded once per run (None where a task does not load, with
    the reason)."""

    def __init__(self) -> None:
        self._tasks: dict[int, tuple[Task | None, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, storage: BaseStorage, run_id: int) -> tuple[Task | None, str | None]:
        """The task of run ``run_id`` and, when it does not load, why."""
        with self._lock:
            if run_id in self._tasks:
                return self._tasks[run_id]
        from hyperagents.runs import record_task

        try:
            found: tuple[Task | None, str | None] = (record_task(storage.get_run(run_id)), None)
        except HyperagentsError as exc:
            found = (None, f"the task does not load here: {str(exc).splitlines()[0][:300]}")
        with self._lock:
            self._tasks[run_id] = found
        return found


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _when(record: Any) -> str | None:
    moment = getattr(record, "created_at", None)
    return None if moment is None else moment.isoformat()


def latest_state(storage: BaseStorage, service_id: int) -> ServiceEventRecord | None:
    """The autopilot's last recorded state (None: no autopilot has watched this service)."""
    found = storage.list_service_events(service_id, kinds=[_STATE], newest_first=True, limit=1)
    return found[0] if found else None


def service_row(storage: BaseStorage, record: ServiceRecord) -> dict[str, Any]:
    """One service as the services page lists it: routing, status, request counts, stage."""
    count = storage.count_service_requests
    sid = record.id
    try:
        run_name: str | None = storage.get_run(record.run_id).name
    except HyperagentsError:
        run_name = None
    state = latest_state(storage, sid)
    return {
        "id": sid,
        "name": record.name,
        "run": run_name,
        "run_id": record.run_id,
        "champion": record.champion_id,
        "candidate": record.candidate_id,
        "candidate_state": record.candidate_state.name.lower(),
        "candidate_share": record.candidate_share,
        "status": record.status.name.lower(),
        "stage": None if state is None else state.message,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "requests": {
            "served": count(sid, arms=["champion", "candidate"]),
            "champion": count(sid, arms=["champion"]),
            "candidate": count(sid, arms=["candidate"]),
            "shadow": count(sid, arms=["shadow"]),
            "errors": count(sid, arms=["champion", "candidate"], failed=True),
            "with_feedback": count(sid, with_feedback=True),
        },
    }


def quality_of(task: Task | None, request: RequestRecord) -> float | None:
    """A request's quality: the task's score of its label, else its feedback score."""
    if task is None:
        return request.feedback
    from hyperagents.service import request_quality

    return request_quality(task, request)


def shadow_quality(
    task: Task | None, shadow: RequestRecord, served: RequestRecord | None
) -> float | None:
    """A shadow answer's quality, rated by the label given to the request it shadows."""
    if served is None or task is None:
        return None
    from hyperagents.service import shadow_quality as rated

    return rated(task, shadow, served)


def _scan(storage: BaseStorage, service_id: int, *, after_id: int) -> list[RequestRecord]:
    """The latest :data:`MAX_SCAN` answered requests after ``after_id``, oldest first."""
    rows = storage.list_service_requests(
        service_id, after_id=after_id, answered=True, newest_first=True, limit=MAX_SCAN
    )
    rows.reverse()
    return rows


def _recorded_settings(state: Mapping[str, Any], part: str) -> dict[str, Any] | None:
    """A part (``monitor``, ``test``) of the settings the autopilot recorded with its state."""
    settings = state.get("settings")
    value = settings.get(part) if isinstance(settings, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else None


def _monitor(
    service: ServiceRecord, task: Task | None, state: Mapping[str, Any]
) -> tuple[Monitor, str | None]:
    """A monitor with the autopilot's recorded settings, else the service's goal (when its
    goal is one), and the task's features."""
    from hyperagents.service import Goal, Monitor, MonitorSettings, declared_features

    problem = None
    recorded = _recorded_settings(state, "monitor")
    try:
        if recorded is not None:
            settings = MonitorSettings.model_validate(recorded)
        else:
            goal = Goal.model_validate(dict(service.goal)) if service.goal else Goal()
            settings = MonitorSettings(goal=goal)
    except ValueError as exc:
        settings = MonitorSettings()
        problem = f"the recorded goal or settings do not parse: {exc}".splitlines()[0]
    try:
        features = declared_features(task) if task is not None else ()
    except ConfigError as exc:
        features, problem = (), str(exc)
    return Monitor(settings=settings, features=features), problem


def monitor_summary(
    storage: BaseStorage,
    service: ServiceRecord,
    task: Task | None,
    *,
    epoch_from: int,
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The monitor's summary over the champion's latest answers since ``epoch_from``: the
    first ``reference_size`` of them are the drift reference, the latest ``window`` the rolling
    windows (quality, latency, errors, cost, drift, the degradation detector)."""
    from hyperagents.service import Observation

    monitor, problem = _monitor(service, task, state or {})
    settings = monitor.settings
    reference = storage.list_service_requests(
        service.id,
        after_id=epoch_from,
        arms=["champion"],
        answered=True,
        limit=settings.drift.reference_size,
    )
    recent = storage.list_service_requests(
        service.id,
        after_id=epoch_from,
        arms=["champion"],
        answered=True,
        newest_first=True,
        limit=settings.window,
    )
    recent.reverse()
    monitor.drift.set_reference(r.inputs for r in reference if isinstance(r.inputs, dict))
    last_reference = reference[-1].id if len(reference) >= settings.drift.reference_size else None
    for request in recent:
        counts_for_drift = last_reference is not None and request.id > last_reference
        inputs = request.inputs if counts_for_drift and isinstance(request.inputs, dict) else {}
        monitor.observe(
            Observation(
                time=request.created_at.timestamp(),
                quality=quality_of(task, request),
                latency_s=max(0.0, request.latency),
                error=request.error is not None,
                cost_usd=max(0.0, request.cost),
                inputs=inputs,
            )
        )
    summary = monitor.summary()
    summary.update(epoch_from=epoch_from, problem=problem, drift_reference=len(reference))
    return summary


def _test_start(storage: BaseStorage, service: ServiceRecord, state: Mapping[str, Any]) -> int:
    """The request id after which the candidate's test counts: the autopilot's, else just
    before the candidate's first answer (or the request its first shadow answer shadows)."""
    if state.get("candidate") == service.candidate_id and state.get("test_from"):
        return int(state["test_from"])
    first = storage.list_service_requests(
        service.id, variant_id=service.candidate_id, arms=["candidate", "shadow"], limit=1
    )
    if not first:
        return 0
    return (first[0].shadow_of or first[0].id) - 1  # a shadow answer: from its request on


def _replay(
    test: SequentialTest, task: Task | None, rows: Sequence[RequestRecord], means: dict[str, Any]
) -> None:
    """Count the test's requests as the autopilot does (labelled pairs in shadow; under A/B,
    each arm's values from the candidate's first A/B answer on), and each arm's mean
    quality."""
    from hyperagents.service import Arm, Phase, Verdict

    served = {r.id: r for r in rows if r.arm != "shadow"}
    shadows = {r.shadow_of: r for r in rows if r.arm == "shadow" and r.shadow_of is not None}
    ab_from = next((r.id for r in rows if r.arm == "candidate"), None)
    totals: dict[str, list[float]] = {"champion": [], "candidate": [], "shadow": []}
    for request in rows:
        if request.arm == "shadow":
            value = shadow_quality(task, request, served.get(request.shadow_of or 0))
            if value is not None:
                totals["shadow"].append(value)
            continue
        quality = quality_of(task, request)
        if quality is None:
            continue
        totals[request.arm].append(quality)
        if test.verdict is not Verdict.CONTINUE:
            continue
        if test.phase is Phase.SHADOW and request.id in shadows:
            paired = shadow_quality(task, shadows[request.id], request)
            if paired is not None:
                test.observe_pair(champion=quality, candidate=paired)
        elif test.phase is Phase.AB and ab_from is not None and request.id >= ab_from:
            test.observe(Arm(request.arm), quality)
    for arm, values in totals.items():
        means[arm] = {"n": len(values), "mean": sum(values) / len(values) if values else None}


def ab_state(
    storage: BaseStorage,
    service: ServiceRecord,
    task: Task | None,
    state: Mapping[str, Any],
) -> dict[str, Any]:
    """The candidate's test: its routing, each arm's counts and mean quality since it began,
    the sequential test replayed over them (the autopilot's recorded settings, else the
    defaults; the phase the routing's) and
    its last recorded verdict."""
    from hyperagents.service import SequentialSettings, SequentialTest

    recorded = storage.list_service_events(
        service.id, kinds=list(_TEST_KINDS), newest_first=True, limit=1
    )
    out: dict[str, Any] = {
        "candidate": service.candidate_id,
        "state": service.candidate_state.name.lower(),
        "share": service.candidate_share,
        "recorded": event_json(recorded[0]) if recorded else None,
        "live": None,
    }
    if service.candidate_id is None or not service.candidate_state.answers:
        return out
    start = _test_start(storage, service, state)
    rows = _scan(storage, service.id, after_id=start)
    # the routing says the phase: in shadow the pairs count, under A/B the arms' values
    shadow = 10**9 if service.candidate_state is CandidateState.SHADOW else 0
    try:
        settings = SequentialSettings.model_validate(
            {**(_recorded_settings(state, "test") or {}), "shadow_samples": shadow}
        )
    except ValueError:
        settings = SequentialSettings(shadow_samples=shadow)
    test = SequentialTest(settings=settings)
    means: dict[str, Any] = {}
    _replay(test, task, rows, means)
    interval = test.interval()
    out["live"] = {
        "since_request": start,
        "requests": len(rows),
        "phase": test.phase.value,
        "verdict": test.verdict.value,
        "reason": test.reason,
        "counts": test.counts,
        "means": means,
        "interval": None if interval is None else [interval.lower, interval.upper],
        "estimate": None if interval is None else interval.estimate,
        "settings": test.settings.model_dump(),
    }
    return out


def event_json(event: ServiceEventRecord) -> dict[str, Any]:
    """One entry of a service's log."""
    return {
        "id": event.id,
        "kind": event.kind,
        "message": event.message,
        "data": event.data,
        "created_at": _when(event),
    }


def _autopilot(
    storage: BaseStorage, service_id: int, state: ServiceEventRecord | None
) -> dict[str, Any]:
    """The autopilot's recorded state, trigger, the operator's commands, latest plans and the
    requests they asked people to label (still without one), and what planning cost (its
    model calls, those whose run never started included)."""
    from hyperagents.service import planning_usage, wanted_labels

    data = dict(state.data or {}) if state is not None else {}
    seen = int(data.get("commands_seen") or 0)
    commands = storage.list_service_events(
        service_id, kinds=[_COMMAND], newest_first=True, limit=20
    )
    plans_event = storage.list_service_events(
        service_id,
        kinds=["autopilot.testing", "autopilot.no_candidate"],
        newest_first=True,
        limit=1,
    )
    plans = list(data.get("last_plans") or [])
    if plans_event and (state is None or plans_event[0].id > state.id or not plans):
        plans = list((plans_event[0].data or {}).get("plans") or plans)
    trigger = dict(data.get("trigger") or {})
    return {
        "recorded_at": _when(state),
        "stage": data.get("stage"),
        "candidate": data.get("candidate"),
        "improvements": data.get("improvements", 0),
        "epoch_from": int(data.get("epoch_from") or 0),
        "trigger": trigger or None,
        "override": trigger.get("override", "none"),
        "commands": [event_json(e) for e in commands],
        "pending": [event_json(e) for e in commands if e.id > seen],
        "plans": plans[-3:],
        "wanted": wanted_labels(storage, service_id),
        "planning": planning_usage(storage, service_id),
    }


def service_detail(
    storage: BaseStorage, service: ServiceRecord, tasks: TaskCache
) -> dict[str, Any]:
    """A service's page: its row, goal, the autopilot, the monitor, the A/B state.

    Raises:
        ServiceNotFoundError: The service is gone.
    """
    task, task_problem = tasks.get(storage, service.run_id)
    state = latest_state(storage, service.id)
    autopilot = _autopilot(storage, service.id, state)
    data = dict(state.data or {}) if state is not None else {}
    detail = {
        "service": service_row(storage, service),
        "goal": service.goal,
        "seed": service.seed,
        "task_problem": task_problem,
        "autopilot": autopilot,
        "monitor": monitor_summary(
            storage, service, task, epoch_from=autopilot["epoch_from"], state=data
        ),
        "ab": ab_state(storage, service, task, data),
    }
    return dict(finite(detail))


def events_page(
    storage: BaseStorage,
    service_id: int,
    *,
    before: int | None,
    limit: int,
    kinds: Iterable[str] | None = None,
    with_state: bool = False,
) -> dict[str, Any]:
    """Up to ``limit`` entries of the log, newest first, before the entry ``before``
    (``autopilot.state`` left out unless ``with_state``); ``next_before`` continues it.

    Raises:
        ServiceNotFoundError: No such service.
    """
    wanted = list(kinds) if kinds is not None else None
    if before is None:
        found = _newest(storage, service_id, wanted, limit, with_state)
    else:
        found = _older(storage, service_id, wanted, limit, with_state, before)
    more = bool(found) and len(found) == limit
    return {
        "events": [event_json(e) for e in found],
        "next_before": found[-1].id if more else None,
    }


def _newest(
    storage: BaseStorage, sid: int, kinds: list[str] | None, limit: int, with_state: bool
) -> list[ServiceEventRecord]:
    """The latest ``limit`` entries (read again, more at a time, while state entries crowd
    them out, up to :data:`MAX_SCAN`)."""
    size = limit
    while True:
        size = min(MAX_SCAN, size * 8)
        page = storage.list_service_events(sid, kinds=kinds, newest_first=True, limit=size)
        found = [e for e in page if with_state or e.kind != _STATE][:limit]
        if len(found) == limit or len(page) < size or size == MAX_SCAN:
            return found


def _older(
    storage: BaseStorage,
    sid: int,
    kinds: list[str] | None,
    limit: int,
    with_state: bool,
    before: int,
) -> list[ServiceEventRecord]:
    """The ``limit`` entries before ``before``, newest first (the log is read oldest first,
    a page at a time, as far as ``before``; the storage lists no id range backwards)."""
    kept: list[ServiceEventRecord] = []
    cursor = 0
    while True:
        page = storage.list_service_events(sid, after_id=cursor, kinds=kinds, limit=_PAGE)
        for event in page:
            if event.id >= before:
                return list(reversed(kept[-limit:]))
            if with_state or event.kind != _STATE:
                kept.append(event)
        if len(page) < _PAGE:
            return list(reversed(kept[-limit:]))
        cursor = page[-1].id
        kept = kept[-limit:]

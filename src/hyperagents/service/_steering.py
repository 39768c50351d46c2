"""The autopilot's settings, its decisions on a candidate and its default improver.

* :class:`AutopilotSettings`: how :class:`~hyperagents.service.Autopilot` watches, decides,
  improves and tests.
* :func:`request_quality`: the quality of a served answer from its label (the task's trusted
  scorer) or its feedback score.
* :func:`decide_candidate`: a person promotes or rolls back the service's candidate.
* :func:`plan_improver`: the default improvement (planner, improvement runs, criteria).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from pydantic import Field

from hyperagents.exceptions import ConfigError, LLMError, RunStateError, TaskError
from hyperagents.runs import RunService
from hyperagents.service._improve import ImprovementBudget
from hyperagents.service._live import LiveExample
from hyperagents.service._monitor import MonitorSettings
from hyperagents.service._planning import PlanSettings, PlanStep, improve_with_plans
from hyperagents.service._sequential import SequentialSettings
from hyperagents.service._settings import Settings
from hyperagents.service._trigger import Override, TriggerPolicy
from hyperagents.storages import (
    BaseStorage,
    CandidateState,
    EventSpec,
    RequestRecord,
    ServiceRecord,
    ServiceRouting,
)
from hyperagents.tasks import Instance, Task

__all__ = [
    "COMMAND_EVENT",
    "STATE_EVENT",
    "AutopilotSettings",
    "Improvement",
    "Improver",
    "Stage",
    "decide_candidate",
    "plan_improver",
    "post_override",
    "request_quality",
    "route_beside",
    "route_candidate",
    "shadow_quality",
]

#: The service log's event kind of an operator's command to the autopilot (``{"override"}``).
COMMAND_EVENT = "autopilot.command"
#: The service log's event kind holding the autopilot's state (the latest one counts).
STATE_EVENT = "autopilot.state"
#: Requests read from storage per batch.
_BATCH = 500


class Stage(StrEnum):
    """What the autopilot is doing."""

    WATCHING = "watching"  #: the champion serves; the monitor watches
    IMPROVING = "improving"  #: an improvement is planned and run in the background
    TESTING = "testing"  #: a candidate is in shadow or under A/B
    AWAITING_APPROVAL = "awaiting_approval"  #: the test promotes; a person must confirm


class AutopilotSettings(Settings):
    """How the autopilot watches, decides, improves and tests (see the module docstring)."""

    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    trigger: TriggerPolicy = Field(default_factory=TriggerPolicy)
    test: SequentialSettings = Field(default_factory=SequentialSettings)
    generations: int = Field(default=4, ge=1, description="generations of an improvement run")
    max_seconds: float | None = Field(
        default=900.0, gt=0, description="time budget of an improvement run (None: none)"
    )
    workers: int = Field(default=1, ge=1, description="sandboxed workers of an improvement run")
    live_examples: int = Field(
        default=200, ge=1, description="latest requests with a label or feedback given to it"
    )
    holdout_fraction: float = Field(
        default=0.25, ge=0, lt=1, description="share of the labelled live inputs held back"
    )
    max_replans: int = Field(default=1, ge=0, description="re-plans when criteria are unmet")
    feedback_wait_s: float = Field(
        default=30.0, ge=0, description="seconds a request waits for feedback before counted"
    )
    planner_llm: str | None = Field(
        default=None,
        description="the planner's and teacher's model: an LLM spec, or 'run' for the served "
        "run's own (None: none; calls are recorded with each improvement run)",
    )
    max_cost: float | None = Field(
        default=None,
        gt=0,
        description="LLM budget in dollars of each plan (planning, teacher, run)",
    )
    approval: bool = Field(default=False, description="a person confirms each promotion")
    poll_s: float = Field(default=1.0, gt=0, description="seconds between two steps")
    seed: int = Field(default=0, ge=0, description="seed of the improvement runs")


def request_quality(task: Task, request: RequestRecord) -> float | None:
    """The quality in [0, 1] of a served answer: its score against the request's label by the
    task's trusted scorer (scaled by the task's score range; an error scores the bottom), else
    its feedback score, else None (also when the scorer cannot rate it: a label it refuses, a
    scorer that raises, a judged task without its judge here)."""
    if request.label is not None:
        try:
            target = task.target_from_label(request.label)
            if request.error is not None:
                return 0.0
            value = task.checked_score(
                Instance(f"live:{request.id}", request.inputs, target), request.output
            )
        except (TaskError, RunStateError, LLMError):  # not scorable here: no evidence
            return None
        low, high = task.score_range
        if high <= low:
            return None
        return min(1.0, max(0.0, (value.value - low) / (high - low)))
    return request.feedback


def shadow_quality(task: Task, shadow: RequestRecord, served: RequestRecord) -> float | None:
    """A shadow answer's quality, rated by the label given to the request it shadows (None:
    that request has no label, or the shadow answer is not in yet)."""
    if served.label is None or not shadow.answered:
        return None
    return request_quality(task, replace(shadow, label=served.label, feedback=None))


def post_override(storage: BaseStorage, service_id: int, override: str, *, who: str) -> int:
    """Ask the service's autopilot (in whatever process) to force the next improvement
    (``force``, once), to suppress improvements (``suppress``) or to lift either (``none``);
    it applies the command at its next step. Returns the command's log id.

    Raises:
        ServiceNotFoundError: No such service.
        ConfigError: Not one of ``force``, ``suppress``, ``none``.
    """
    try:
        chosen = Override(override)
    except ValueError:
        names = ", ".join(o.value for o in Override)
        raise ConfigError(f"unknown override {override!r}; choose one of: {names}") from None
    storage.get_service(service_id)
    data = {"override": chosen.value, "by": who}
    return storage.add_service_event(service_id, COMMAND_EVENT, chosen.value, data=data)


def decide_candidate(
    storage: BaseStorage, service_id: int, *, promote: bool, who: str, note: str = ""
) -> bool:
    """A person's decision on the service's candidate: promote it (it becomes the champion)
    or roll it back. Returns whether the routing changed (False: no candidate to decide on).

    Raises:
        ServiceNotFoundError: No such service.
    """
    service = storage.get_service(service_id)
    if service.candidate_id is None or not service.candidate_state.answers:
        return False
    kind = "autopilot.promoted" if promote else "autopilot.rolled_back"
    data = {"candidate": service.candidate_id, "by": who, "note": note[:500], "manual": True}
    return route_candidate(storage, service, promote=promote, event=EventSpec(kind, who, data=data))


def route_beside(
    storage: BaseStorage,
    service: ServiceRecord,
    *,
    candidate: int,
    state: CandidateState,
    share: float,
    event: EventSpec,
) -> bool:
    """Route ``candidate`` beside the champion in ``state`` (shadow or A/B) with ``share`` of
    the traffic, compare-and-set against ``service``'s routing; whether it was set."""
    routing = ServiceRouting(
        champion_id=service.champion_id,
        candidate_id=candidate,
        candidate_state=state,
        candidate_share=share,
    )
    return storage.set_service_routing(service.id, routing, expected=service.routing, event=event)


def route_candidate(
    storage: BaseStorage, service: ServiceRecord, *, promote: bool, event: EventSpec
) -> bool:
    """Promote the candidate (the champion's place) or roll it back, compare-and-set."""
    assert service.candidate_id is not None
    if promote:
        routing = ServiceRouting(
            champion_id=service.candidate_id,
            candidate_id=service.candidate_id,
            candidate_state=CandidateState.PROMOTED,
        )
    else:
        routing = ServiceRouting(
            champion_id=service.champion_id,
            candidate_id=service.candidate_id,
            candidate_state=CandidateState.ROLLED_BACK,
        )
    return storage.set_service_routing(service.id, routing, expected=service.routing, event=event)


@dataclass(frozen=True)
class Improvement:
    """What an improvement gave: the candidate to test (None: no plan met its criteria) and
    the plans with their runs and outcomes (JSON, for the log and the dashboard)."""

    candidate: int | None
    plans: list[dict[str, Any]]


#: Improves the serving champion with live examples (the default: :func:`improve_with_plans`).
Improver = Callable[[Sequence[LiveExample], ServiceRecord], Improvement]


def plan_improver(
    run_service: RunService, settings: AutopilotSettings, *, plan: PlanSettings | None = None
) -> Improver:
    """The default improver: plans, data actions, improvement runs and criteria by
    :func:`improve_with_plans` from the serving champion's own run (its planning model
    ``settings.planner_llm`` unless ``plan`` says otherwise; the service's log records the
    data actions); the candidate is the last plan's run champion when
    that plan's criteria are met and it is a new program."""

    def improve(live: Sequence[LiveExample], service: ServiceRecord) -> Improvement:
        champion = run_service.storage.get_variant(service.champion_id)
        budget = ImprovementBudget(
            generations=settings.generations,
            max_seconds=settings.max_seconds,
            max_cost=settings.max_cost,
            workers=settings.workers,
        )
        chosen = plan or PlanSettings(max_replans=settings.max_replans, model=settings.planner_llm)
        steps: list[PlanStep] = improve_with_plans(
            run_service,
            run=champion.run_id,
            variant=champion.id,
            live=live,
            budget=budget,
            holdout_fraction=settings.holdout_fraction,
            seed=settings.seed,
            settings=chosen,
            service_id=service.id,
        )
        last = steps[-1] if steps else None
        good = last is not None and last.check.met and last.outcome.improved
        candidate = last.outcome.candidate_variant if good and last is not None else None
        return Improvement(candidate, [step.as_json() for step in steps])

    return improve

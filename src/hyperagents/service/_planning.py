"""Plan, act, improve, check, re-plan: the loop around the planning agent.

:func:`improve_with_plans` runs the planner (:mod:`hyperagents.service._planner`) on the live
examples, carries out its data actions (:mod:`hyperagents.service._more_data`), starts an
improvement run from the serving champion with the live data (and the new labels) in train,
drives it, checks the plan's criteria on its outcome and re-plans while they are unmet.

**The model.** With :attr:`PlanSettings.model` (an LLM spec, or ``run`` for the served run's
own), each plan gets a :class:`~hyperagents.runs.RunLLM` of its own (seeded from the plan's
seed, with the improvement's LLM budget): the planner's ``llm.complete`` calls (purpose
``plan``, scope ``plan/ATTEMPT``) and the teacher's labels (purpose ``teacher``, scope
``teacher/ATTEMPT``; the champion's own calls while it answers for a ``self`` action: purpose
``self``) go through the project's gateway. They are recorded **with the
improvement run that plan leads to**: made before that run exists (its data and budget depend
on the plan), they wait in the model and are written into the run the moment it is created,
before it is driven. So

* they count against the improvement's budget: the planning model stops at ``max_cost`` /
  ``max_tokens``, and the run, which restores its totals from its recorded calls, spends only
  what planning left;
* they are replayable: ``RunLLM(storage, None, spec=None, replay_of=RUN)`` answers the same
  calls from that run's record without calling any model;
* the served run's record is never touched (its own replay, budget and totals stay as they
  were), and each plan's calls sit next to the run and plan (``attrs["plan"]``) they shaped.

**Nothing spent is lost.** Waiting in memory is not durable: a process killed between a
planning call and its run's creation would lose a call already paid for. So each call is
also written to a durable log the moment it is made (:class:`~hyperagents.service.PlanJournal`
over a :class:`~hyperagents.service.PlanLog`: the service's log with a ``service_id``, else the
served run's event log; a ``plan.llm_call`` entry with an id, its plan's id, its purpose,
scope, tokens, cost and texts), and the run's creation is followed by one transaction that
writes the calls into the run and logs them as attached to it (``plan.run``). The one
transaction (not an id checked on a retry) is what keeps each call in the run's record
exactly once. A call logged but never attached (its run never started: the process died, or
the improvement failed first) still counts in the trigger's budget
(:func:`~hyperagents.service.improvement_spend`) and in the planning cost
(:func:`~hyperagents.service.planning_usage`: the dashboard and ``hyperagents autopilot``).

**Orphans are carried out.** Each :func:`improve_with_plans` first attaches the log's
waiting orphans whose plan's run exists to that run, then offers the rest to its plans'
models (:func:`~hyperagents.service.offer_orphans`): a request an orphan answered is answered
from it again, without asking the model, and the orphan is attached with the plan's other
calls, so a plan done again after a kill (the autopilot resumes the interrupted improvement
with the same live examples) records each call once and replays whole. Offered orphans no
plan took are given up when the plans are done (``plan.abandoned``, with the reason). Offers
assume one improvement of a service (or, without one, of a served run) at a time.

A model that fails, refuses for budget or answers badly never fails the loop: the planner's
calls fail inside the sandbox and the seed planner keeps its rule-based plan (saying so in
its diagnosis), a teacher's bad label is left out and recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hyperagents.runs import (
    ResumeRequest,
    RunConfig,
    RunLLM,
    RunRef,
    RunService,
    VariantRef,
    derive_seed,
    own_sandbox,
)
from hyperagents.sandbox import Sandbox
from hyperagents.service._drift import declared_features
from hyperagents.service._improve import (
    ImprovementBudget,
    ImprovementOutcome,
    _served_variant,
    base_task_of,
    improvement_outcome,
    start_improvement,
)
from hyperagents.service._live import LiveExample, LiveSplit, split_live
from hyperagents.service._more_data import (
    DATA_EVENT,
    WANTED_EVENT,
    DataOutcome,
    Voter,
    act_on_data,
    lineage_voters,
    self_votes,
)
from hyperagents.service._orphans import abandon_unclaimed, offer_orphans
from hyperagents.service._plan_calls import PlanJournal, PlanLog, WaitingCalls, log_plan_run
from hyperagents.service._planner import (
    CriteriaCheck,
    PlanLimits,
    PlanRecord,
    check_criteria,
    planner_request,
    replan_request,
    run_planner,
)
from hyperagents.storages import RunRecord, VariantRecord
from hyperagents.tasks import Task, load_task

__all__ = ["RUN_LLM", "PlanSettings", "PlanStep", "improve_with_plans"]

#: :attr:`PlanSettings.model` meaning the served run's own language model (none if none).
RUN_LLM = "run"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class PlanStep:
    """One plan and what came of it, as the service stores and shows it.

    Attributes:
        plan: The plan (with the planner's failure when it fell back).
        run_id: The improvement run that carried it out.
        outcome: How that run came out.
        check: The verdict on the plan's criteria.
        data: What its ``more_data`` actions did (see :func:`act_on_data`).
    """

    plan: PlanRecord
    run_id: int
    outcome: ImprovementOutcome
    check: CriteriaCheck
    data: tuple[dict[str, Any], ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The step as a JSON object."""
        return {
            "plan": self.plan.as_json(),
            "run_id": self.run_id,
            "outcome": self.outcome.as_json(),
            "check": self.check.as_json(),
            "data": list(self.data),
        }


@dataclass(frozen=True)
class PlanSettings:
    """How plans are made and re-made.

    Attributes:
        max_replans: New plans made at most after the first one's criteria are unmet.
        features: The input features failures are grouped by (None: the categorical ones
            the task declares with ``input_features()``, else the planner's choice).
        limits: Bounds on the planner and its plans.
        model: The planner's and the teacher's language model: an LLM spec, or
            :data:`RUN_LLM` for the served run's own (None: none). Calls go through the
            gateway and are recorded with each plan's improvement run (see the module).
        llm: An engine-side handler of the planner's and teacher's calls, used when
            ``model`` is None (tests; None: no model).
        max_generated: Live inputs labelled at most per ``more_data`` action.
    """

    max_replans: int = 2
    features: tuple[str, ...] | None = None
    limits: PlanLimits = field(default_factory=PlanLimits)
    model: str | None = None
    llm: Handler | None = None
    max_generated: int = 50


def _first_request(
    champion: VariantRecord,
    live: Sequence[LiveExample],
    split: LiveSplit,
    task: Task,
    budget: ImprovementBudget,
    settings: PlanSettings,
    has_model: bool,
) -> dict[str, Any]:
    """The first plan's request: the train and feedback live examples (never held-back ones)
    in the order they were served (``live``'s), and the served champion's scores (val as
    recorded, live_train from what it served)."""
    order = {example.request_id: k for k, example in enumerate(live)}
    shown = sorted([*split.train, *split.feedback], key=lambda e: order.get(e.request_id, -1))
    features = settings.features
    if features is None:  # the categories the task declares, else the planner's choice
        declared = [f.key for f in declared_features(task) if f.kind == "categorical"]
        features = tuple(declared) or None
    request = planner_request(
        task,
        shown,
        served={"val": champion.scores.get("val")},
        budget={"generations": budget.generations, "max_seconds": budget.max_seconds},
        held_back=len(split.held_back),
        features=features,
        llm=has_model,
        limits=settings.limits,
    )
    scored = [e["score"] for e in request["examples"] if "score" in e]
    request["served"]["live_train"] = task.aggregate(scored) if scored else None
    return request


def _model_spec(served: RunRecord, settings: PlanSettings) -> str | None:
    """The planning model's spec (None: none)."""
    if settings.model == RUN_LLM:
        return RunConfig.parse(dict(served.config)).llm
    return settings.model


def _planning_model(ctx: _Context, config: RunConfig, spec: str, attempt: int) -> RunLLM:
    """A plan's model, its calls waiting for the plan's improvement run (and logged as they
    are made; a request an offered orphan answered is answered from it).

    Raises:
        LLMConfigError: The spec is invalid.
    """
    journal = PlanJournal(ctx.log, plan_id=_plan_id(ctx, attempt), waiting=ctx.offered)
    return RunLLM(
        ctx.service.storage,
        None,
        spec=spec,
        seed=derive_seed(ctx.seed + attempt, "service", "plan"),
        retries=config.llm_retries,
        timeout=config.llm_timeout,
        max_cost=ctx.budget.max_cost,
        max_tokens=ctx.budget.max_tokens,
        cache=config.llm_cache,
        prices=config.llm_prices,
        failure_limit=config.llm_failure_limit,
        journal=journal,
        answered=[w.call for w in ctx.offered.unclaimed() if w.call is not None],
    )


def _plan_id(ctx: _Context, attempt: int) -> str:
    """The id of the plan of ``attempt`` (its calls and its run carry it)."""
    return f"{ctx.improvement}/{attempt}"


def _handlers(model: RunLLM | None, fixed: Handler | None, attempt: int) -> dict[str, Any]:
    """The handlers of one plan's calls: the planner's, the teacher's, and the champion's
    own while it answers for a ``self`` action."""
    if model is None:
        return dict.fromkeys(("plan", "teacher", "self"), fixed)
    return {
        purpose: model.handler(variant_id=None, purpose=purpose, scope=f"{purpose}/{attempt}")
        for purpose in ("plan", "teacher", "self")
    }


def _record_data(
    service: RunService, service_id: int | None, run_id: int, data: DataOutcome
) -> None:
    """Log what a plan's data actions did in the service's log (when there is a service)."""
    if service_id is None or not data.record:
        return
    store = service.storage
    if data.wanted:
        ids = list(data.wanted)
        message = f"{len(ids)} requests want a label"
        store.add_service_event(
            service_id, WANTED_EVENT, message, data={"request_ids": ids, "run_id": run_id}
        )
    kept = sum(int(r.get("kept") or 0) for r in data.record)
    store.add_service_event(
        service_id,
        DATA_EVENT,
        f"{kept} examples labelled for run {run_id}",
        data={"run_id": run_id, "actions": list(data.record)},
    )


@dataclass(frozen=True)
class _Context:
    """What every plan of one :func:`improve_with_plans` shares."""

    service: RunService
    served: RunRecord
    champion: VariantRecord
    task: Task
    budget: ImprovementBudget
    holdout_fraction: float
    seed: int
    settings: PlanSettings
    spec: str | None
    service_id: int | None
    log: PlanLog
    offered: WaitingCalls
    improvement: str


def _plan_and_act(
    ctx: _Context,
    request: Mapping[str, Any],
    attempt: int,
    sandbox: Sandbox,
    live: Sequence[LiveExample],
) -> tuple[PlanRecord, DataOutcome, RunLLM | None]:
    """One plan, its data actions carried out, and its model (calls not yet recorded)."""
    config = RunConfig.parse(dict(ctx.served.config))
    model = None if ctx.spec is None else _planning_model(ctx, config, ctx.spec, attempt)
    handlers = _handlers(model, ctx.settings.llm, attempt)
    program = ctx.service.storage.get_program(str(ctx.champion.program_id))
    record = run_planner(
        program, request, sandbox=sandbox, limits=ctx.settings.limits, llm=handlers["plan"]
    )
    data = act_on_data(
        record.plan,
        live,
        task=ctx.task,
        program=program,
        sandbox=sandbox,
        teacher=handlers["teacher"],
        agent=handlers["self"],
        most=ctx.settings.max_generated,
        memory_mb=config.memory_mb,
        voters=_voters(ctx, record.plan, config),
        quorum=config.training.quorum,
    )
    return record, data, model


def _voters(ctx: _Context, plan: Mapping[str, Any], config: RunConfig) -> list[Voter]:
    """Who votes on the plan's ``self`` answers: the champion's lineage (at most the served
    run's ``training.voters``) when the plan asks for them and the task cannot verify them
    without a target; else none."""
    actions = [a for a in plan.get("actions") or [] if isinstance(a, Mapping)]
    asks = any(a.get("kind") == "more_data" and a.get("source") == "self" for a in actions)
    if not asks or not self_votes(ctx.task):
        return []
    return lineage_voters(ctx.service.storage, ctx.champion, most=config.training.voters)


def _step(
    ctx: _Context, request: Mapping[str, Any], attempt: int, live: Sequence[LiveExample]
) -> tuple[PlanStep, list[LiveExample]]:
    """Plan, act on the plan's data actions, start and drive its run, check its criteria;
    the step, and the live examples with the labels its actions brought in."""
    with own_sandbox(RunConfig.parse(dict(ctx.served.config)), ctx.task) as sandbox:
        record, data, model = _plan_and_act(ctx, request, attempt, sandbox, live)
    live = _merged(live, data.examples)
    asked = record.plan["budget"]
    planned = replace(
        ctx.budget, generations=asked["generations"], max_seconds=asked["max_seconds"]
    )
    run_id = start_improvement(
        ctx.service,
        run=ctx.served.id,
        live=live,
        variant=ctx.champion.id,
        budget=planned,
        holdout_fraction=ctx.holdout_fraction,
        seed=ctx.seed + attempt,  # each plan's run its own; the held-back slice the same
        holdout_seed=ctx.seed,
        plan=record,
        plan_id=_plan_id(ctx, attempt),
        drive="none",
    )
    if model is not None:  # before the run is driven: its budget counts them
        model.attach(run_id)  # with the log told, in the same transaction
    else:
        log_plan_run(ctx.log, run_id, plan_id=_plan_id(ctx, attempt))
    _record_data(ctx.service, ctx.service_id, run_id, data)
    ctx.service.resume(ResumeRequest(run=run_id, workers=planned.workers)).optimize()
    outcome = improvement_outcome(ctx.service, run_id)
    check = check_criteria(record.plan, outcome)
    return PlanStep(record, run_id, outcome, check, data.record), live


def _merged(live: Sequence[LiveExample], brought: Sequence[LiveExample]) -> list[LiveExample]:
    """``live`` with the examples a plan brought in taking the place of the same requests'."""
    by_id = {e.request_id: e for e in live}
    by_id.update((e.request_id, e) for e in brought)
    return list(by_id.values())


def _begin(
    service: RunService,
    run: RunRef,
    variant: VariantRef | None,
    live: Sequence[LiveExample],
    budget: ImprovementBudget,
    holdout_fraction: float,
    seed: int,
    settings: PlanSettings,
    service_id: int | None,
) -> tuple[_Context, dict[str, Any]]:
    """What the plans share, and the first plan's request (see :func:`improve_with_plans`)."""
    served = service.find_run(run)
    champion = _served_variant(service, served, variant)
    split = split_live(live, holdout_fraction=holdout_fraction, seed=seed)
    task = load_task(*base_task_of(served))
    spec = _model_spec(served, settings)
    has_model = spec is not None or settings.llm is not None
    if service_id is not None:
        log = PlanLog(service.storage, service_id=service_id)
    else:
        log = PlanLog(service.storage, run_id=served.id)
    ctx = _Context(
        service=service,
        served=served,
        champion=champion,
        task=task,
        budget=budget,
        holdout_fraction=holdout_fraction,
        seed=seed,
        settings=settings,
        spec=spec,
        service_id=service_id,
        log=log,
        offered=offer_orphans(log),
        improvement=uuid.uuid4().hex,
    )
    return ctx, _first_request(champion, live, split, task, budget, settings, has_model)


def improve_with_plans(
    service: RunService,
    *,
    run: RunRef,
    live: Sequence[LiveExample],
    budget: ImprovementBudget = ImprovementBudget(),
    holdout_fraction: float = 0.0,
    seed: int = 0,
    settings: PlanSettings = PlanSettings(),
    variant: VariantRef | None = None,
    service_id: int | None = None,
) -> list[PlanStep]:
    """Plan, act on the plan's data actions, improve, check the plan's criteria, and re-plan
    while they are unmet (at most ``settings.max_replans`` times); each improvement run is
    driven here, to its end.

    Args:
        service: The application service.
        run: The served run (its champion is improved).
        live: The live examples, in the order they were served (oldest first: the planner
            reads a shift in them).
        budget: The budget offered to each plan (a plan may ask for fewer or more
            generations, within its limits; its time within the time offered; its LLM budget
            covers its planning and teaching calls too).
        holdout_fraction: The share of labelled live inputs held back (the same slice for
            every plan; never a teacher's or the champion's own label).
        seed: The seed of the runs, of the planning models and of the held-back draw.
        settings: The planner's bounds, re-plans, features and model.
        variant: The served variant to improve, a variant of ``run`` (default: the run's
            champion).
        service_id: The service whose log records the planning calls, the data actions and
            the requests that want a person's label (None: the planning calls go to the
            served run's event log, the rest is recorded with the steps only).

    Returns:
        The steps in order; the last one's check is met, or the re-plans ran out.

    Raises:
        RunNotFoundError: No such run.
        RunStateError: The run has no champion yet.
        ConfigError: A bad budget, holdout fraction or live example.
        LLMConfigError: The planning model's spec is invalid.
        SandboxError: The sandbox itself broke while evaluating an outcome.
    """
    ctx, request = _begin(
        service, run, variant, live, budget, holdout_fraction, seed, settings, service_id
    )
    steps: list[PlanStep] = []
    gathered = list(live)  # a re-plan keeps what earlier plans brought in
    for attempt in range(max(0, settings.max_replans) + 1):
        step, gathered = _step(ctx, request, attempt, gathered)
        steps.append(step)
        if step.check.met:
            break
        request = replan_request(request, step.plan, step.check)
    runs = ", ".join(str(step.run_id) for step in steps)
    abandon_unclaimed(
        ctx.log, ctx.offered, f"superseded: the plans of run(s) {runs} asked otherwise"
    )
    return steps

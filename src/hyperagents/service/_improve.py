"""Improvement runs: a new run started from the serving champion, with live examples added,
and how it came out against the champion it would replace.

:func:`start_improvement` starts it through the application layer
(:class:`~hyperagents.runs.RunService` and :class:`~hyperagents.runs.StartRequest`): its seed
program is the serving champion's program (``seed_from``), its task the served run's with the
live examples added (a :class:`~hyperagents.service.LiveTask`), its config the served run's
with the budgets given, and its attributes record where it came from (``improvement_of``: the
served run and variant). The served champion keeps answering meanwhile: nothing here touches
the served run.

:func:`improvement_outcome` reads the new run's champion and compares it with the served one,
both evaluated here in the sandbox with trusted scoring on the same instances: the task's own
val split (``val``; like for like: the run's champion was chosen on its val, which holds the
held-back slice too, or only that one when the plan found the task's own labels stale), the
labelled live examples given to training (``live_train``) and the held-back live slice
(``held_back``) that training never saw.

A plan's ``scope`` (see :func:`~hyperagents.service.parse_plan`) narrows the live data to the
requests served since a point (a concept drift's start: train and held-back slice alike, each
example staying on its side) and, with ``own_data: stale``, leaves the task's own train and
val out of the run (:class:`~hyperagents.service.LiveTask`); the run records what was applied
under its ``scope`` attribute.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hyperagents.evaluation import evaluate_stage
from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.program import Program
from hyperagents.runs import (
    BUDGET_FIELDS,
    Mode,
    RunConfig,
    RunRef,
    RunService,
    StartRequest,
    VariantRef,
    champion_of,
    own_sandbox,
)
from hyperagents.sandbox import Limits
from hyperagents.service._live import (
    LIVE_ID_PREFIX,
    LIVE_TASK_SPEC,
    LiveExample,
    LiveSplit,
    LiveTask,
    live_task_options,
    split_live,
    split_since,
)
from hyperagents.service._plan_calls import PLAN_ID_ATTR
from hyperagents.service._planner import PlanRecord
from hyperagents.storages import RunRecord, VariantRecord, VariantState
from hyperagents.tasks import Instance, Split, Task, load_task, stored_task_options

__all__ = [
    "IMPROVEMENT_ATTR",
    "ImprovementBudget",
    "ImprovementOutcome",
    "base_task_of",
    "improvement_outcome",
    "plan_levers",
    "start_improvement",
]

#: The run attribute that links an improvement run to the served run and variant.
IMPROVEMENT_ATTR = "improvement_of"

#: How an improvement run is driven: by an engine process, in a thread here, or not at all.
DriveMode = Literal["detached", "thread", "none"]


def base_task_of(record: RunRecord) -> tuple[str, dict[str, Any]]:
    """The task spec and options a run serves: its own, or, for an improvement run (a
    ``live`` task), the task its live examples were added to (never nested)."""
    options = stored_task_options(record.config)
    if record.task == LIVE_TASK_SPEC:
        return str(options.get("base")), dict(options.get("base_options") or {})
    return record.task, options


def _served_variant(
    service: RunService, served: RunRecord, variant: VariantRef | None
) -> VariantRecord:
    """The variant to improve: the one given, else the served run's champion.

    Raises:
        RunStateError: The run has no complete variant, or the variant is not the run's.
    """
    if variant is None:
        found = champion_of(
            service.storage.list_variants(served.id, states=[VariantState.COMPLETE])
        )
        if found is None:
            raise RunStateError(f"run {served.name!r} has no champion to improve yet")
        return found
    found = service.find_variant(variant)
    if found.run_id != served.id or found.program_id is None:
        raise RunStateError(
            f"variant {found.id} is not a variant of {served.name!r} with a program"
        )
    return found


def _free_name(service: RunService, base: str) -> str:
    """``BASE-improve``, or ``BASE-improve-N`` for the first N >= 2 not taken."""
    taken = {r.name for r in service.storage.list_runs()}
    name, n = f"{base}-improve", 2
    while name in taken:
        name, n = f"{base}-improve-{n}", n + 1
    return name


def _config(
    served: RunRecord, task_options: Mapping[str, Any], budgets: Mapping[str, Any]
) -> dict[str, Any]:
    """The served run's config with the live task's options and the budgets given (each
    given or lifted: the served run's spending is not the new run's); the program keeps its
    own meta agent, and nothing is replayed."""
    config = dict(served.config)
    config.update({name: budgets.get(name) for name in BUDGET_FIELDS})
    config.update(task_options=dict(task_options), meta_agent="task", replay_of=None)
    return config


@dataclass(frozen=True)
class ImprovementBudget:
    """What an improvement run may spend (each None: no limit of that kind; the served
    run's own budgets and spending are not carried over).

    Attributes:
        generations: Its generation target.
        max_seconds: Its time budget.
        max_evaluations: Its evaluation budget.
        max_cost: Its LLM budget in US dollars.
        max_tokens: Its LLM budget in tokens.
        workers: Sandboxed workers driving it.
    """

    generations: int = 4
    max_seconds: float | None = None
    max_evaluations: int | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    workers: int = 1

    def limits(self) -> dict[str, Any]:
        """The run config's budget fields."""
        return {name: getattr(self, name) for name in BUDGET_FIELDS}


def _link(served: RunRecord, champion: VariantRecord) -> dict[str, Any]:
    """What an improvement run records of the run and variant it improves."""
    return {
        "run": served.name,
        "run_id": served.id,
        "variant": champion.id,
        "generation": champion.generation,
        "program": champion.program_id,
    }


def start_improvement(
    service: RunService,
    *,
    run: RunRef,
    live: Sequence[LiveExample],
    variant: VariantRef | None = None,
    budget: ImprovementBudget = ImprovementBudget(),
    holdout_fraction: float = 0.0,
    seed: int = 0,
    holdout_seed: int | None = None,
    name: str | None = None,
    plan: PlanRecord | None = None,
    plan_id: str | None = None,
    drive: DriveMode = "detached",
) -> int:
    """Start a run that improves the serving champion with live examples added to train.

    Args:
        service: The application service of the storage holding the served run.
        run: The served run.
        live: Live examples (split by :func:`~hyperagents.service.split_live`: labelled ones
            to train, feedback-only ones to the meta agent's report, a held-back slice).
        variant: The served variant (default: the run's champion).
        budget: What it may spend, and its workers.
        holdout_fraction: The share of the labelled live inputs held back from training.
        seed: The new run's seed.
        holdout_seed: Which inputs are held back (None: ``seed``).
        name: Its name (default: ``SERVED-improve``, ``SERVED-improve-2``…).
        plan: The plan it carries out (stored under ``plan``; for a program with a model,
            its actions choose the levers: see :func:`plan_levers`).
        plan_id: The plan's id in the planning log (under
            :data:`~hyperagents.service.PLAN_ID_ATTR`: its orphaned calls find their run).
        drive: ``detached``: an engine process drives it (the service must be able to drive
            in the background); ``thread``: a daemon thread here; ``none``: only created.

    Returns:
        The new run's id.

    Raises:
        RunNotFoundError: No such run.
        VariantNotFoundError: No such variant.
        RunStateError: No champion yet, a variant of another run, or the run cannot be driven
            in the background.
        ConfigError: A bad budget, holdout fraction, live example or way to drive it.
        DuplicateError: ``name`` is taken.
    """
    served = service.find_run(run)
    champion = _served_variant(service, served, variant)
    draw = seed if holdout_seed is None else holdout_seed
    split = split_live(live, holdout_fraction=holdout_fraction, seed=draw)
    config, attrs = _run_setup(served, champion, split, live, budget.limits(), plan, plan_id)
    request = _start_request(service, served, champion, config, attrs, budget, seed, name)
    return _drive(service, request, drive)


def _run_setup(
    served: RunRecord,
    champion: VariantRecord,
    split: LiveSplit,
    live: Sequence[LiveExample],
    limits: Mapping[str, Any],
    plan: PlanRecord | None,
    plan_id: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An improvement run's config (the live task over the served one, ``split`` within the
    plan's scope, the budgets ``limits``, the plan's levers) and its attributes (where it
    comes from, what was dropped, its scope, plan and plan id)."""
    base, base_options = base_task_of(served)
    split, own_data, scope = _scoped(split, live, None if plan is None else plan.plan)
    options = live_task_options(base, base_options, split, own_data=own_data)
    attrs: dict[str, Any] = {
        IMPROVEMENT_ATTR: _link(served, champion),
        "live_dropped": list(split.dropped),
    }
    if scope is not None:
        attrs["scope"] = scope
    if plan_id is not None:
        attrs[PLAN_ID_ATTR] = plan_id
    config = _config(served, options, limits)
    if plan is not None:
        attrs["plan"] = plan.as_json()
        levers = plan_levers(plan.plan, carries_model=load_task(base, base_options).carries_model)
        config.update({} if levers is None else {"levers": levers})
    return config, attrs


def _start_request(
    service: RunService,
    served: RunRecord,
    champion: VariantRecord,
    config: dict[str, Any],
    attrs: dict[str, Any],
    budget: ImprovementBudget,
    seed: int,
    name: str | None,
) -> StartRequest:
    """The request that starts the improvement run from ``champion`` (a baseline arm's
    run is improved in hyperagent mode)."""
    mode = Mode(served.mode)
    return StartRequest(
        task=LIVE_TASK_SPEC,
        mode=Mode.HYPERAGENT if mode.baseline else mode,
        generations=budget.generations,
        seed=seed,
        name=name or _free_name(service, served.name),
        workers=budget.workers,
        config=config,
        seed_from=str(champion.id),
        attrs=attrs,
    )


def _scoped(
    split: LiveSplit, live: Sequence[LiveExample], plan: Mapping[str, Any] | None
) -> tuple[LiveSplit, bool, dict[str, Any] | None]:
    """``split`` within the plan's scope (the live examples served since its ``since``;
    see :func:`~hyperagents.service.parse_plan`), whether the task's own train and val join,
    and what was applied (None: no scope). A scope that would leave no live train or no
    held-back slice is not applied (the run would have nothing to train or gate on): the
    record says why."""
    scope = plan.get("scope") if plan is not None else None
    if not isinstance(scope, Mapping):
        return split, True, None
    since = scope.get("since")
    since_id = since.removeprefix(LIVE_ID_PREFIX) if isinstance(since, str) else None
    try:
        scoped = split if since_id is None else split_since(split, live, since_id)
    except ConfigError as exc:
        return split, True, {**scope, "applied": False, "reason": str(exc)}
    stale = scope.get("own_data") == "stale"
    if not scoped.train or (stale and not scoped.held_back):
        why = "no labelled live example" if not scoped.train else "no held-back example"
        return split, True, {**scope, "applied": False, "reason": f"{why} since {since}"}
    applied = {
        **scope,
        "applied": True,
        "train": len(scoped.train),
        "held_back": len(scoped.held_back),
    }
    return scoped, not stale, applied


def plan_levers(plan: Mapping[str, Any], *, carries_model: bool) -> str | None:
    """What a plan lets the children of a program that carries a model change (the run
    config's ``levers``): ``both`` for a harness edit and a weight update, ``weights`` or
    ``harness`` for one alone; None (the served run's setting) for a program without a
    model, or a plan with neither."""
    kinds = {a.get("kind") for a in plan.get("actions") or [] if isinstance(a, Mapping)}
    harness, weights = "harness_edit" in kinds, "weight_update" in kinds
    if not carries_model or not (harness or weights):
        return None
    return "both" if harness and weights else ("weights" if weights else "harness")


def _drive(service: RunService, request: StartRequest, drive: DriveMode) -> int:
    """Create the run ``request`` describes and drive it as asked; its id.

    Raises:
        ConfigError: An unknown way to drive it.
    """
    if drive == "detached":
        return service.start_detached(request).id
    if drive not in ("thread", "none"):
        raise ConfigError(f"drive must be detached, thread or none, not {drive!r}")
    started = service.start(request)
    run_id = started.run.id
    if drive == "thread":
        thread = threading.Thread(target=started.optimize, name=f"improve-{run_id}", daemon=True)
        thread.start()
    return run_id


@dataclass(frozen=True)
class ImprovementOutcome:
    """How an improvement run came out against the champion it would replace.

    Attributes:
        run_id: The improvement run.
        status: Its status (``running``, ``complete``…).
        served_variant: The served variant it started from.
        candidate_variant: The improvement run's champion (None: none complete yet).
        improved: Whether the candidate is a new program (not the served one again).
        scores: Per slice (``val``, ``live_train``, ``held_back``), the ``served`` and the
            ``candidate`` score (None where not measured).
        held_back: How many held-back live examples checked the candidate.
    """

    run_id: int
    status: str
    served_variant: int
    candidate_variant: int | None
    improved: bool
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    held_back: int = 0

    def as_json(self) -> dict[str, Any]:
        """The outcome as a JSON object (what the service stores)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "served_variant": self.served_variant,
            "candidate_variant": self.candidate_variant,
            "improved": self.improved,
            "scores": {k: dict(v) for k, v in self.scores.items()},
            "held_back": self.held_back,
        }


def _evaluate(
    record: RunRecord,
    task: Task,
    programs: Sequence[Program],
    instances: Sequence[Instance],
    split: str,
) -> list[float | None]:
    """Each program's score on ``instances`` (None for none), in one sandbox of the run's."""
    if not instances:
        return [None for _ in programs]
    config = RunConfig.parse(dict(record.config))
    limits = Limits(
        wall_time=task.instance_timeout * len(instances) + 30.0, memory_mb=config.memory_mb
    )
    scores: list[float | None] = []
    with own_sandbox(config, task) as sandbox:
        for program in programs:
            stage = evaluate_stage(
                program,
                task=task,
                instances=instances,
                stage=split,
                split=split,
                sandbox=sandbox,
                limits=limits,
            )
            scores.append(stage.score)
    return scores


def improvement_outcome(
    service: RunService, run: RunRef, *, evaluate_live: bool = True
) -> ImprovementOutcome:
    """The improvement run's champion against the served variant it started from.

    Args:
        service: The application service.
        run: The improvement run (started by :func:`start_improvement`).
        evaluate_live: Whether to evaluate both on the task's own val and the live slices
            (``live_train``, ``held_back``) in the sandbox; else only the recorded val scores
            are compared (the candidate's over its run's val, the held-back slice included).

    Raises:
        RunNotFoundError: No such run.
        ConfigError: It is not an improvement run.
        SandboxError: The sandbox itself broke while evaluating.
    """
    record = service.find_run(run)
    link = record.attrs.get(IMPROVEMENT_ATTR)
    if not isinstance(link, Mapping) or record.task != LIVE_TASK_SPEC:
        raise ConfigError(f"run {record.name!r} is not an improvement run")
    served = service.storage.get_variant(int(link["variant"]))
    variants = service.storage.list_variants(record.id, states=[VariantState.COMPLETE])
    candidate = champion_of(variants)
    task = load_task(record.task, stored_task_options(record.config))
    if not isinstance(task, LiveTask):  # pragma: no cover - the spec names it
        raise ConfigError(f"run {record.name!r} is not an improvement run")
    held = task.held_back_instances()
    scores = {"val": {"served": served.scores.get("val"), "candidate": _val(candidate)}}
    if evaluate_live:
        scores.update(_live_scores(service, record, task, served, candidate))
    return ImprovementOutcome(
        run_id=record.id,
        status=record.status.name.lower(),
        served_variant=served.id,
        candidate_variant=None if candidate is None else candidate.id,
        improved=candidate is not None and candidate.program_id != served.program_id,
        scores=scores,
        held_back=len(held),
    )


def _val(variant: VariantRecord | None) -> float | None:
    """``variant``'s recorded val score (None: no variant, or none recorded)."""
    return None if variant is None else variant.scores.get("val")


def _live_scores(
    service: RunService,
    record: RunRecord,
    task: LiveTask,
    served: VariantRecord,
    candidate: VariantRecord | None,
) -> dict[str, dict[str, float | None]]:
    """Both programs' scores on the task's own val, the live train examples and the
    held-back slice (the candidate's None when there is none yet; one evaluation when it is
    the served program)."""
    store = service.storage
    programs = [store.get_program(str(served.program_id))]
    same = candidate is None or candidate.program_id == served.program_id
    if not same:
        assert candidate is not None
        programs.append(store.get_program(str(candidate.program_id)))
    live_ids = {LIVE_ID_PREFIX + e.request_id for e in task.live_examples["train"]}
    slices = {
        "val": task.own_val_instances(),
        "live_train": [i for i in task.instances(Split.TRAIN) if i.id in live_ids],
        "held_back": task.held_back_instances(),
    }
    scores: dict[str, dict[str, float | None]] = {}
    for name, instances in slices.items():
        values = _evaluate(record, task, programs, instances, name)
        scores[name] = {
            "served": values[0],
            "candidate": None if candidate is None else values[-1],
        }
    return scores

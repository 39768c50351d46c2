"""The planner: a program file that diagnoses live failures and plans an improvement, run in
the sandbox; the trusted code around it that bounds its plan and checks the plan's criteria.

The planning agent is ``planner.py`` of the serving champion's program (a meta file, see
:attr:`hyperagents.tasks.Task.meta_files`: the meta level may rewrite it), else the seed
planner shipped here (``seed/planner.py``: rule-based, no language model needed). It runs in
the sandbox like any agent code (``plan(request)``, through the harness's ``solve`` action),
with the run's LLM bridge when the caller gives one. Its request holds the live examples that
may be shown (train and feedback ones, never held-back ones).

Whatever the planner does — crash, loop, print megabytes, return garbage — is recorded as a
planner failure on the :class:`PlanRecord` and a fallback plan (written here, trusted) takes
its place; nothing it does raises. Its plan is parsed with bounds (:class:`PlanLimits`): sizes,
kinds of actions, criteria operators and slices, and a budget clamped to what was offered.

A plan may carry a ``scope`` (:data:`OWN_DATA`): the live examples it uses begin at one it
was shown (a concept drift's start), and the task's own train and val may be called stale
(the improvement run then trains and selects on live data alone). Whatever it says, a plan
must keep a criterion that *gates* on data training never saw: the held-back live slice, or
val unless it called the task's own data stale; a criterion with ``"gate": false`` is
information, reported and not required.

:func:`check_criteria` evaluates a plan's success criteria on an improvement's outcome
(:class:`~hyperagents.service.ImprovementOutcome`); :func:`replan_request` makes the request
of the next plan from the unmet ones.
"""

from __future__ import annotations

import json
import math
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from hyperagents.evaluation import solve_in_sandbox
from hyperagents.exceptions import SandboxError, TaskError
from hyperagents.program import Program
from hyperagents.sandbox import Limits, Sandbox
from hyperagents.service._live import LIVE_ID_PREFIX, LiveExample
from hyperagents.tasks import Instance, Task

__all__ = [
    "ACTION_KINDS",
    "CRITERION_OPS",
    "DATA_SOURCES",
    "OWN_DATA",
    "PLANNER_FILE",
    "SLICES",
    "CriteriaCheck",
    "PlanLimits",
    "PlanRecord",
    "check_criteria",
    "fallback_plan",
    "parse_plan",
    "planner_program",
    "planner_request",
    "replan_request",
    "run_planner",
    "seed_planner",
]

#: The planning agent's file in a program.
PLANNER_FILE = "planner.py"
#: The kinds of action a plan may hold.
ACTION_KINDS = ("harness_edit", "more_data", "weight_update")
#: Where more data may come from.
DATA_SOURCES = ("teacher", "people", "self")
#: The slices a criterion may name: the gate's val, the labelled live
#: examples given to training, and the held-back live slice.
SLICES = ("val", "live_train", "held_back")
#: What a plan's ``scope`` may say of the task's own train and val: used (as always), or
#: stale (the run trains and selects on the live data alone; val only informs).
OWN_DATA = ("use", "stale")
#: How close two scores count as equal (for ``>=`` and ``<=``).
_TOLERANCE = 1e-9
#: The comparisons a criterion may make (actual ``op`` target).
CRITERION_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda actual, target: actual >= target - _TOLERANCE,
    ">": operator.gt,
    "<=": lambda actual, target: actual <= target + _TOLERANCE,
    "<": operator.lt,
}


class _Invalid(Exception):
    """A plan that does not follow the format (its message says why)."""


@dataclass(frozen=True)
class PlanLimits:
    """Bounds on the planner and on what it returns.

    Attributes:
        wall_time: Seconds the planner may run.
        memory_mb: Its memory limit.
        max_bytes: The largest plan, as JSON.
        max_actions: Actions kept at most.
        max_criteria: Criteria kept at most.
        max_generations: The most generations a plan may ask for.
        max_examples: Live examples shown to the planner at most.
    """

    wall_time: float = 20.0
    memory_mb: int = 1024
    max_bytes: int = 64 * 1024
    max_actions: int = 16
    max_criteria: int = 16
    max_generations: int = 50
    max_examples: int = 200


@dataclass(frozen=True)
class PlanRecord:
    """One plan, as the service stores and shows it.

    Attributes:
        attempt: 0 for the first plan, then 1, 2… for each re-plan.
        plan: The plan (parsed and bounded; the fallback when the planner failed).
        source: ``planner`` (the program's planner gave it) or ``fallback``.
        error: Why the planner failed (None when it did not).
        wall: Seconds the planner ran.
    """

    attempt: int
    plan: dict[str, Any]
    source: str
    error: str | None = None
    wall: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return {
            "attempt": self.attempt,
            "plan": self.plan,
            "source": self.source,
            "error": self.error,
            "wall": self.wall,
        }


@dataclass(frozen=True)
class CriteriaCheck:
    """The verdict on a plan's criteria.

    Attributes:
        met: Whether every criterion is met (False for a plan without any).
        results: Per criterion: ``{"criterion", "actual", "target", "met", "reason"}``.
    """

    met: bool
    results: tuple[dict[str, Any], ...] = field(default=())

    @property
    def unmet(self) -> list[dict[str, Any]]:
        """The criteria not met (with their values), for the next plan's request."""
        return [r for r in self.results if not r["met"]]

    def as_json(self) -> dict[str, Any]:
        """The verdict as a JSON object."""
        return {"met": self.met, "results": list(self.results)}


def seed_planner() -> str:
    """The seed planner's source (``seed/planner.py``)."""
    path = resources.files("hyperagents.service").joinpath("seed", PLANNER_FILE)
    return path.read_text(encoding="utf-8")


def planner_program(program: Program) -> Program:
    """``program`` when it has a planner, else with the seed planner added."""
    if PLANNER_FILE in program:
        return program
    return program.with_files({PLANNER_FILE: seed_planner()})


def _shown(task: Task, example: LiveExample, threshold: float) -> dict[str, Any]:
    """An example as the planner sees it, with whether it failed: a labelled one scored by
    the task's trusted scorer against its label, one with feedback only by the feedback."""
    shown: dict[str, Any] = {
        "id": LIVE_ID_PREFIX + example.request_id,
        "inputs": example.inputs,
        "output": example.output,
    }
    if example.feedback is not None:
        shown["feedback"] = example.feedback
        shown["failed"] = example.feedback < threshold
    if example.labelled:
        shown["label"] = example.label
        try:
            target = task.target_from_label(example.label)
            score = task.checked_score(
                Instance(shown["id"], example.inputs, target), example.output
            )
        except TaskError:
            return shown  # the task cannot score it: shown as it came, judged by its feedback
        shown["score"] = score.value
        shown["failed"] = score.value < task.score_range[1] - 1e-9
    return shown


def planner_request(
    task: Task,
    examples: Sequence[LiveExample],
    *,
    served: Mapping[str, float | None],
    budget: Mapping[str, Any],
    held_back: int = 0,
    features: Sequence[str] | None = None,
    llm: bool = False,
    feedback_threshold: float = 0.5,
    limits: PlanLimits = PlanLimits(),
) -> dict[str, Any]:
    """The request of a first plan.

    Args:
        task: The served task (its trusted scorer judges the labelled examples).
        examples: Live examples that may be shown: train and feedback ones, never held-back
            ones, in the order they were served (the latest ``limits.max_examples``).
        served: The served champion's scores by slice (``val``, ``live_train``…).
        budget: What the improvement may spend (``generations``, ``max_seconds``).
        held_back: How many held-back live examples will check the candidate (the count only).
        features: The declared input features to group failures by (None: the planner picks).
        llm: Whether a language model is configured (the planner may call it).
        feedback_threshold: Feedback below it counts as a failure.
        limits: Bounds (``max_examples``).
    """
    shown = [_shown(task, e, feedback_threshold) for e in list(examples)[-limits.max_examples :]]
    return {
        "task": {
            "name": task.name,
            "description": task.description,
            "score_range": list(task.score_range),
        },
        "examples": shown,
        "features": None if features is None else list(features),
        "has_model": bool(task.carries_model),
        "llm": llm,
        "served": dict(served),
        "held_back": held_back,
        "budget": dict(budget),
        "attempt": 0,
        "failed_criteria": [],
        "previous_plan": None,
    }


def replan_request(
    request: Mapping[str, Any], previous: PlanRecord, check: CriteriaCheck
) -> dict[str, Any]:
    """The request of the next plan: ``request`` with the previous plan and its unmet
    criteria (with the values reached)."""
    return {
        **dict(request),
        "attempt": previous.attempt + 1,
        "failed_criteria": check.unmet,
        "previous_plan": previous.plan,
    }


def _text(value: Any, limit: int = 200) -> str:
    """A string of at most ``limit`` characters."""
    return str(value)[:limit]


def _strings(value: Any, most: int) -> list[str]:
    """A list of short strings from ``value`` (anything else: empty)."""
    return [_text(v) for v in value[:most]] if isinstance(value, list) else []


def _action(raw: Any, has_model: bool) -> dict[str, Any]:
    """One action, bounded.

    Raises:
        _Invalid: Not an action of a known kind, or a data source unknown.
    """
    if not isinstance(raw, dict) or raw.get("kind") not in ACTION_KINDS:
        raise _Invalid(f"unknown action {_text(raw)!r}: kinds are {', '.join(ACTION_KINDS)}")
    kind = raw["kind"]
    action: dict[str, Any] = {"kind": kind}
    if kind == "weight_update" and not has_model:
        raise _Invalid("a weight update needs a program that carries a model")
    if kind == "more_data":
        if raw.get("source") not in DATA_SOURCES:
            raise _Invalid(f"more_data from {_text(raw.get('source'))!r}: sources {DATA_SOURCES}")
        action["source"] = raw["source"]
        action["request_ids"] = _strings(raw.get("request_ids"), 100)
    action["focus"] = _strings(raw.get("focus"), 10)
    return action


def _criterion(raw: Any) -> dict[str, Any]:
    """One success criterion, checked.

    Raises:
        _Invalid: A metric, slice, operator or value out of the format.
    """
    if not isinstance(raw, dict):
        raise _Invalid(f"a criterion must be an object, not {_text(raw)!r}")
    where, op, value = raw.get("split_or_slice"), raw.get("op"), raw.get("value")
    if raw.get("metric") != "score" or where not in SLICES or op not in CRITERION_OPS:
        raise _Invalid(f"criterion {_text(raw)!r}: metric score, slices {SLICES}, ops >= > <= <")
    if value != "served" and not _finite(value):
        raise _Invalid(f"criterion value {_text(value)!r}: a finite number or 'served'")
    margin = raw.get("margin", 0.0)
    if not _finite(margin):
        raise _Invalid(f"criterion margin {_text(margin)!r}: a finite number")
    if not isinstance(raw.get("gate", True), bool):
        raise _Invalid(f"criterion gate {_text(raw.get('gate'))!r}: true or false")
    criterion = {"metric": "score", "split_or_slice": where, "op": op, "value": value}
    if margin:
        criterion["margin"] = float(margin)
    if raw.get("gate") is False:
        criterion["gate"] = False
    return criterion


def _scope(raw: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """A plan's scope, checked: where the live data it uses begin (the id of an example it
    was shown), and whether the task's own train and val are used or stale.

    Raises:
        _Invalid: Out of the format, or ``since`` is not an example shown.
    """
    if not isinstance(raw, dict) or not set(raw) <= {"since", "own_data"}:
        raise _Invalid(f"scope {_text(raw)!r}: an object with since and own_data")
    since, own = raw.get("since"), raw.get("own_data", "use")
    shown = {str(e.get("id")) for e in request.get("examples") or [] if isinstance(e, dict)}
    if since is not None and (not isinstance(since, str) or since not in shown):
        raise _Invalid(f"scope since {_text(since, 80)!r}: the id of an example shown")
    if own not in OWN_DATA:
        raise _Invalid(f"scope own_data {_text(own, 80)!r}: one of {OWN_DATA}")
    return {"since": since, "own_data": own}


def _gates_unseen(criteria: Sequence[Mapping[str, Any]], scope: Mapping[str, Any] | None) -> bool:
    """Whether a criterion gates on data training never saw: the held-back slice, or val
    unless the plan calls the task's own data stale."""
    unseen = {"held_back"} if scope and scope.get("own_data") == "stale" else {"val", "held_back"}
    return any(c.get("gate", True) and c["split_or_slice"] in unseen for c in criteria)


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _budget(raw: Any, offered: Mapping[str, Any], limits: PlanLimits) -> dict[str, Any]:
    """The plan's budget, within ``limits`` and the time offered."""
    raw = raw if isinstance(raw, dict) else {}
    generations = raw.get("generations", offered.get("generations"))
    if not isinstance(generations, int) or isinstance(generations, bool):
        generations = int(offered.get("generations") or 1)
    seconds = offered.get("max_seconds")
    asked = raw.get("max_seconds")
    if isinstance(asked, int | float) and not isinstance(asked, bool) and math.isfinite(asked):
        seconds = max(1.0, float(asked)) if seconds is None else min(float(seconds), asked)
    return {"generations": max(1, min(generations, limits.max_generations)), "max_seconds": seconds}


def parse_plan(
    raw: Any, request: Mapping[str, Any], *, limits: PlanLimits = PlanLimits()
) -> dict[str, Any]:
    """A planner's output as a plan, bounded; actions and criteria out of the format are
    left out (named under ``ignored``).

    Raises:
        ValueError: Not a plan: not an object, too large, no valid action, no valid
            criterion, or none that gates on data training never saw (``held_back``, or
            ``val`` unless the scope calls the task's own data stale).
    """
    try:
        size = len(json.dumps(raw, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"the plan is not JSON: {exc}") from None
    if not isinstance(raw, dict) or size > limits.max_bytes:
        raise ValueError(f"the plan must be a JSON object of at most {limits.max_bytes} bytes")
    has_model = bool(request.get("has_model"))
    ignored: list[str] = []
    for key in ("actions", "success_criteria"):
        if not isinstance(raw.get(key), list):
            ignored.append(f"{key} must be a list, not {_text(raw.get(key), 80)!r}")
    actions = _kept(
        _items(raw, "actions")[: limits.max_actions], lambda a: _action(a, has_model), ignored
    )
    criteria = _kept(_items(raw, "success_criteria")[: limits.max_criteria], _criterion, ignored)
    if not actions or not criteria:
        raise ValueError(f"the plan needs a valid action and criterion ({'; '.join(ignored)})")
    scopes = [] if raw.get("scope") is None else [raw["scope"]]
    scope = next(iter(_kept(scopes, lambda r: _scope(r, request), ignored)), None)
    if not _gates_unseen(criteria, scope):
        raise ValueError(
            "the plan needs a criterion that gates on data training never saw: held_back, "
            "or val unless its scope calls the task's own data stale"
        )
    diagnosis = raw.get("diagnosis")
    if not isinstance(diagnosis, dict):
        diagnosis = {"summary": _text(diagnosis, 2000)}
    plan = {
        "diagnosis": diagnosis,
        "actions": actions,
        "success_criteria": criteria,
        "budget": _budget(raw.get("budget"), request.get("budget") or {}, limits),
    }
    if scope is not None:
        plan["scope"] = scope
    if ignored:
        plan["ignored"] = ignored[:20]
    return plan


def _kept(
    items: Sequence[Any], parse: Callable[[Any], dict[str, Any]], ignored: list[str]
) -> list[dict[str, Any]]:
    """Each of ``items`` parsed; one out of the format is left out, named in ``ignored``."""
    kept = []
    for item in items:
        try:
            kept.append(parse(item))
        except _Invalid as exc:
            ignored.append(str(exc)[:300])
    return kept


def _items(raw: Mapping[str, Any], key: str) -> list[Any]:
    """``raw[key]`` when it is a list (anything else: empty)."""
    value = raw.get(key)
    return value if isinstance(value, list) else []


def fallback_plan(request: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """The plan when the planner failed: a harness edit that must hold val (and the held-back
    slice when there is one), with the budget offered."""
    examples = request.get("examples") or []
    criteria = [{"metric": "score", "split_or_slice": "val", "op": ">=", "value": "served"}]
    if request.get("held_back"):
        criteria.append(
            {"metric": "score", "split_or_slice": "held_back", "op": ">=", "value": "served"}
        )
    offered = request.get("budget") or {}
    return {
        "diagnosis": {
            "summary": f"the planner failed ({_text(reason, 300)}): fallback plan",
            "examples": len(examples),
            "failures": sum(1 for e in examples if isinstance(e, dict) and e.get("failed")),
        },
        "actions": [{"kind": "harness_edit", "focus": []}],
        "success_criteria": criteria,
        "budget": _budget({}, offered, PlanLimits()),
    }


def _planner_output(
    program: Program,
    request: Mapping[str, Any],
    sandbox: Sandbox,
    limits: PlanLimits,
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> Any:
    """What ``plan(request)`` returned in the sandbox.

    Raises:
        ValueError: It failed (crashed, timed out, printed or returned too much).
        SandboxError: The sandbox itself broke.
    """
    bounds = Limits(
        wall_time=limits.wall_time + 10.0,
        memory_mb=limits.memory_mb,
        max_output_bytes=16 * 1024,
        max_result_bytes=4 * limits.max_bytes,
    )
    result, answered = solve_in_sandbox(
        planner_program(program),
        [("plan", dict(request))],
        instance_timeout=limits.wall_time,
        sandbox=sandbox,
        limits=bounds,
        module=PLANNER_FILE.removesuffix(".py"),
        function="plan",
        llm=llm,
    )
    message = answered.get("plan")
    if message is None:
        why = result.reason or "no output: none, or more than the limit"
        raise ValueError(f"no plan ({result.outcome.name.lower()}: {why})")
    if message.get("error"):
        raise ValueError(str(message["error"]))
    return message.get("output")


def run_planner(
    program: Program,
    request: Mapping[str, Any],
    *,
    sandbox: Sandbox,
    limits: PlanLimits = PlanLimits(),
    llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> PlanRecord:
    """Run the planner of ``program`` (else the seed planner) in the sandbox on ``request``
    and parse its plan; never raises for what the planner does.

    Args:
        program: The serving champion's program.
        request: From :func:`planner_request` or :func:`replan_request`.
        sandbox: Where it runs.
        limits: Bounds on its time, memory and plan.
        llm: The engine-side handler of its ``llm.complete`` calls (None: no model; the seed
            planner then plans without one).

    Returns:
        The plan record: the planner's plan, or the fallback with the failure recorded.
    """
    attempt = int(request.get("attempt") or 0)
    start = time.monotonic()
    try:
        plan = parse_plan(
            _planner_output(program, request, sandbox, limits, llm), request, limits=limits
        )
    except (ValueError, SandboxError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, SandboxError) else str(exc)
        wall = time.monotonic() - start
        return PlanRecord(attempt, fallback_plan(request, reason), "fallback", reason[:1000], wall)
    return PlanRecord(attempt, plan, "planner", None, time.monotonic() - start)


def _slice_scores(outcome: Any) -> Mapping[str, Mapping[str, float | None]]:
    """``outcome.scores`` (an :class:`ImprovementOutcome`) or ``outcome["scores"]``."""
    scores = (
        outcome.get("scores") if isinstance(outcome, Mapping) else getattr(outcome, "scores", None)
    )
    return scores if isinstance(scores, Mapping) else {}


def check_criteria(plan: Mapping[str, Any], outcome: Any) -> CriteriaCheck:
    """Evaluate ``plan``'s success criteria on an improvement's outcome (trusted).

    Args:
        plan: A parsed plan (:func:`parse_plan`, :func:`fallback_plan`).
        outcome: An :class:`~hyperagents.service.ImprovementOutcome` (or its JSON object):
            per slice, the candidate's and the served champion's scores.

    Returns:
        Met when every gating criterion holds for the candidate (one with ``"gate": false``
        is reported, not required; a plan needs one that gates); a criterion whose slice was
        not measured is unmet (with the reason).
    """
    scores = _slice_scores(outcome)
    results, gates = [], []
    for criterion in plan.get("success_criteria") or []:
        where = scores.get(criterion["split_or_slice"]) or {}
        actual = where.get("candidate")
        target = where.get("served") if criterion["value"] == "served" else criterion["value"]
        if target is not None:
            target = float(target) + float(criterion.get("margin", 0.0))
        if actual is None or target is None:
            met, reason = False, f"{criterion['split_or_slice']} was not measured"
        else:
            met = CRITERION_OPS[criterion["op"]](actual, target)
            reason = f"{actual:.4g} {criterion['op']} {target:.4g}: {'met' if met else 'unmet'}"
        if criterion.get("gate", True) is not False:
            gates.append(met)
        results.append(
            {
                "criterion": dict(criterion),
                "actual": actual,
                "target": target,
                "met": met,
                "reason": reason,
            }
        )
    return CriteriaCheck(bool(gates) and all(gates), tuple(results))

"""The planning calls' journal: every model call made while planning, durable as it is made.

A plan's model (:func:`~hyperagents.service.improve_with_plans`) calls the planner, the teacher
and the champion (``self``) *before* the improvement run the plan leads to exists, so those
calls cannot be written into that run yet; held only in memory they would be lost, spent but
never counted, if the process died before the run started. So each one is also written, as
it is made, to the service's own log (an existing durable record with the service's
lifetime; no new table): a :data:`PLAN_CALL_EVENT` entry with an id of its own, its purpose,
scope, model, tokens and cost, and its messages and reply cut to :data:`MAX_TEXT_CHARS`
characters each (for audit; the run's record keeps them whole).

When the run starts, :meth:`~hyperagents.runs.RunLLM.attach` writes the calls into the run's
``llm_calls`` and this journal adds a :data:`PLAN_RUN_EVENT` entry naming the run and the
ids of the calls it took, **in one storage transaction**: a kill at any moment leaves each
call either waiting (journal only) or attached (run and journal), never half of it, and the
run's record holds each call exactly once (its budget and its replay stay exact). A plan
without a model logs its run the same way (no calls), so a service's log names every run its
improvements started.

A call whose :data:`PLAN_CALL_EVENT` no :data:`PLAN_RUN_EVENT` names is **orphaned**: its run
never started (the process died, or the improvement failed before). It still counts:
:func:`improvement_spend` (what one improvement cost: its orphaned calls plus its runs'
recorded calls, for the trigger's budget, after a restart too) and :func:`planning_usage`
(what a service's planning cost in all, for the dashboard and ``hyperagents autopilot``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hyperagents.exceptions import RunNotFoundError
from hyperagents.llm import LLMCall
from hyperagents.storages import BaseStorage, ServiceEventRecord

__all__ = [
    "MAX_TEXT_CHARS",
    "PLAN_CALL_EVENT",
    "PLAN_RUN_EVENT",
    "ImprovementSpend",
    "PlanJournal",
    "improvement_spend",
    "log_plan_run",
    "planning_usage",
]

#: The service log's event kind of one model call made while planning (``data``: the call).
PLAN_CALL_EVENT = "plan.llm_call"
#: The service log's event kind of an improvement run a plan started (``data``: ``run_id``,
#: ``calls``: the ids of the planning calls written into it).
PLAN_RUN_EVENT = "plan.run"
#: Characters kept of each message and reply in the log (the run's record keeps them whole).
MAX_TEXT_CHARS = 4000


def _cut(text: str | None) -> tuple[str | None, bool]:
    """``text`` cut to :data:`MAX_TEXT_CHARS`, and whether it was cut."""
    if text is None or len(text) <= MAX_TEXT_CHARS:
        return text, False
    return text[:MAX_TEXT_CHARS], True


def _call_data(call_id: str, call: LLMCall) -> dict[str, Any]:
    """A call as its log entry holds it (texts bounded)."""
    data = call.to_dict()
    truncated = False
    messages = []
    for message in call.messages:
        content, cut = _cut(message.get("content"))
        truncated |= cut
        messages.append({**message, "content": content})
    data["messages"] = messages
    data["reply"], cut = _cut(call.reply)
    data["error"] = _cut(call.error)[0]
    data["truncated"] = truncated or cut
    data["id"] = call_id
    return data


class PlanJournal:
    """The :class:`~hyperagents.runs.PendingJournal` of one plan's model: its calls and its
    run in the service's log (see the module docstring).

    Args:
        storage: The service's storage.
        service_id: The service whose log records them.
    """

    def __init__(self, storage: BaseStorage, service_id: int) -> None:
        self._storage = storage
        self._service_id = service_id
        self._ids: list[str] = []

    def pending(self, call: LLMCall) -> None:
        """Log ``call`` with an id of its own (durable when this returns).

        Raises:
            ServiceNotFoundError: The service is gone.
            StorageError: It could not be written.
        """
        call_id = uuid.uuid4().hex
        tokens = call.prompt_tokens + call.completion_tokens
        message = f"{call.purpose or 'call'}: {tokens} tokens, ${call.cost:.4f}"
        if call.error is not None:
            message = f"{call.purpose or 'call'}: failed"
        data = _call_data(call_id, call)
        self._storage.add_service_event(self._service_id, PLAN_CALL_EVENT, message, data=data)
        self._ids.append(call_id)

    def attached(self, run_id: int, calls: Sequence[LLMCall]) -> None:
        """Log that the calls logged so far are written into ``run_id`` (called in the same
        transaction as that write; harmless to repeat when a transient error retries it, as
        it changes nothing here: a model logs no call once it is attached).

        Raises:
            ServiceNotFoundError: The service is gone.
            StorageError: It could not be written.
        """
        log_plan_run(self._storage, self._service_id, run_id, call_ids=self._ids)


def log_plan_run(
    storage: BaseStorage, service_id: int, run_id: int, *, call_ids: Sequence[str] = ()
) -> int:
    """Log the improvement run a plan started, with the planning calls written into it.

    Returns:
        The entry's id.

    Raises:
        ServiceNotFoundError: No such service.
    """
    message = f"run {run_id}: {len(call_ids)} planning calls attached"
    data = {"run_id": run_id, "calls": list(call_ids)}
    return storage.add_service_event(service_id, PLAN_RUN_EVENT, message, data=data)


def _journal(
    storage: BaseStorage, service_id: int, after_id: int
) -> tuple[list[ServiceEventRecord], list[int], set[str]]:
    """The planning calls logged after ``after_id``, the runs logged, and the attached ids."""
    events = storage.list_service_events(
        service_id, after_id=after_id, kinds=[PLAN_CALL_EVENT, PLAN_RUN_EVENT]
    )
    calls = [e for e in events if e.kind == PLAN_CALL_EVENT]
    runs: list[int] = []
    attached: set[str] = set()
    for event in events:
        if event.kind != PLAN_RUN_EVENT:
            continue
        run_id = (event.data or {}).get("run_id")
        if isinstance(run_id, int) and not isinstance(run_id, bool) and run_id not in runs:
            runs.append(run_id)
        attached.update(str(i) for i in (event.data or {}).get("calls") or [])
    return calls, runs, attached


def _counted(data: dict[str, Any]) -> tuple[float, int, int]:
    """A logged call's cost and tokens, counted as the gateway counts (errors and cache hits
    cost nothing); a malformed entry counts nothing."""
    if data.get("error") is not None or data.get("cached"):
        return 0.0, 0, 0
    try:
        cost = max(0.0, float(data.get("cost") or 0.0))
        return cost, int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0)
    except (TypeError, ValueError):
        return 0.0, 0, 0


@dataclass(frozen=True)
class ImprovementSpend:
    """What one improvement's models cost.

    Attributes:
        cost: US dollars in all: the orphaned calls' and the runs' recorded calls'.
        orphaned: Planning calls never written into a run (their run never started).
        orphaned_cost: Their US dollars.
        runs: The improvement runs counted.
    """

    cost: float
    orphaned: int
    orphaned_cost: float
    runs: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        """The spend as a JSON object."""
        return {
            "cost": self.cost,
            "orphaned": self.orphaned,
            "orphaned_cost": self.orphaned_cost,
            "runs": list(self.runs),
        }


def improvement_spend(
    storage: BaseStorage, service_id: int, *, after_id: int, runs: Iterable[int] = ()
) -> ImprovementSpend:
    """What an improvement that began after the log entry ``after_id`` cost: the planning
    calls logged since and never attached, and every recorded call of its runs (those logged
    since, and ``runs``; planning calls attached to them are counted there, once).

    Raises:
        ServiceNotFoundError: No such service.
    """
    calls, logged, attached = _journal(storage, service_id, after_id)
    orphans = [e for e in calls if str((e.data or {}).get("id")) not in attached]
    orphaned_cost = sum(_counted(dict(e.data or {}))[0] for e in orphans)
    counted = list(dict.fromkeys([*logged, *runs]))
    spent = orphaned_cost
    found = []
    for run_id in counted:
        try:
            spent += float(storage.llm_usage(run_id)["cost"])
        except RunNotFoundError:  # deleted since: nothing left to count
            continue
        found.append(run_id)
    return ImprovementSpend(max(0.0, spent), len(orphans), orphaned_cost, tuple(found))


def planning_usage(storage: BaseStorage, service_id: int) -> dict[str, Any]:
    """What a service's planning calls cost in all, as its log records them.

    Returns:
        ``calls`` (logged attempts), ``attached`` (written into their run), ``orphaned``
        (never: their run never started), ``prompt_tokens``, ``completion_tokens``,
        ``cost`` and ``orphaned_cost`` (US dollars).

    Raises:
        ServiceNotFoundError: No such service.
    """
    calls, _, attached = _journal(storage, service_id, 0)
    usage: dict[str, Any] = dict.fromkeys(
        ("calls", "attached", "orphaned", "prompt_tokens", "completion_tokens"), 0
    )
    usage["cost"] = usage["orphaned_cost"] = 0.0
    for event in calls:
        data = dict(event.data or {})
        cost, prompt, completion = _counted(data)
        usage["calls"] += 1
        usage["prompt_tokens"] += prompt
        usage["completion_tokens"] += completion
        usage["cost"] += cost
        if str(data.get("id")) in attached:
            usage["attached"] += 1
        else:
            usage["orphaned"] += 1
            usage["orphaned_cost"] += cost
    return usage

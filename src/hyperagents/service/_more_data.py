"""A plan's ``more_data`` actions, carried out before its improvement run starts.

* ``people``: the requests the action lists (those still without a label) are marked as
  wanting one: a ``plan.wanted_labels`` event in the service's log, read back by
  :func:`wanted_labels` (the API's ``GET /api/service/wanted``, ``hyperagents wanted
  SERVICE``). A label posted later through the feedback path joins the next improvement's
  train data (the autopilot's live examples are the requests with a label or feedback; one a
  plan asked for is marked ``source="people"``, see :func:`wanted_ids`: train only).
* ``teacher``: the configured model (through the gateway: counted against the improvement's
  budget, recorded with its run, see :mod:`hyperagents.service._planning`) labels the listed
  live inputs that have no label (all of them when none is listed); a reply is taken as JSON,
  else as its text, and kept only when the task can score against it
  (:meth:`~hyperagents.tasks.Task.target_from_label`).
* ``self``: the serving champion answers the same inputs again in the sandbox, and an answer
  is kept only when the task's verifier accepts it (:func:`hyperagents.weights.verified`,
  given the inputs and no target: a verifier that needs the target keeps none).

Teacher, self and people examples carry their ``source`` (:class:`LiveExample`): they join
train only, never a held-back slice, val or test (:func:`~hyperagents.service.split_live`,
:class:`~hyperagents.service.LiveTask`). What was done is returned for the plan's step and
recorded in the service's log (``plan.data``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hyperagents.evaluation import solve_in_sandbox
from hyperagents.exceptions import RequestNotFoundError, SandboxError, TaskError
from hyperagents.program import Program
from hyperagents.sandbox import InvalidMessage, Limits, Sandbox, loads_bounded
from hyperagents.service._live import LIVE_ID_PREFIX, LiveExample
from hyperagents.storages import BaseStorage
from hyperagents.tasks import Instance, Task
from hyperagents.weights import verified

__all__ = [
    "DATA_EVENT",
    "WANTED_EVENT",
    "DataOutcome",
    "act_on_data",
    "wanted_ids",
    "wanted_labels",
]

#: The service log's event kind of requests a plan wants people to label (``{"request_ids"}``).
WANTED_EVENT = "plan.wanted_labels"
#: The service log's event kind of what a plan's data actions did.
DATA_EVENT = "plan.data"
#: Wanted-label events read back at most (the latest).
_WANTED_EVENTS = 50
#: Requests looked up at most when listing the wanted labels.
_WANTED_LOOKUPS = 500

#: Answers a sandbox's ``llm.complete`` request (see :meth:`hyperagents.runs.RunLLM.handler`).
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class DataOutcome:
    """What a plan's ``more_data`` actions gave.

    Attributes:
        examples: New labelled live examples (teacher, self), for train only.
        wanted: The request ids marked as wanting a person's label.
        record: Per action, what was asked and kept (JSON, for the step and the log).
    """

    examples: tuple[LiveExample, ...] = ()
    wanted: tuple[str, ...] = ()
    record: tuple[dict[str, Any], ...] = ()


def _listed(
    action: Mapping[str, Any], unlabelled: Mapping[str, LiveExample], most: int
) -> list[LiveExample]:
    """The unlabelled live examples an action lists (all of them when it lists none)."""
    ids = [str(i).removeprefix(LIVE_ID_PREFIX) for i in action.get("request_ids") or []]
    chosen = [unlabelled[i] for i in dict.fromkeys(ids) if i in unlabelled] if ids else []
    return (chosen if ids else list(unlabelled.values()))[:most]


def _reply_label(reply: Mapping[str, Any]) -> tuple[Any, str | None]:
    """A teacher's reply as a label (JSON, else its text) or why there is none."""
    if "text" not in reply:
        return None, str(reply.get("error") or "no reply")[:300]
    text = str(reply["text"]).strip()
    if not text:
        return None, "an empty reply"
    try:
        return loads_bounded(text, max_depth=32), None
    except InvalidMessage:
        return text, None


def _teacher(
    task: Task, examples: Sequence[LiveExample], ask: Handler
) -> tuple[list[LiveExample], list[str]]:
    """The teacher's labels the task can score against, and why the others were refused."""
    system = (
        f"You label live requests for the task {task.name!r}: {task.description} "
        "Reply with the correct output for the given input as JSON and nothing else."
    )
    kept: list[LiveExample] = []
    refused: list[str] = []
    for example in examples:
        content = json.dumps(example.inputs, sort_keys=True)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": content}]
        label, why = _reply_label(ask({"messages": messages, "purpose": "label"}))
        if why is None:
            try:
                task.target_from_label(label)
                kept.append(replace(example, label=label, source="teacher"))
                continue
            except TaskError as exc:
                why = f"the task cannot score against it: {exc}"
        refused.append(f"{example.request_id}: {why}"[:300])
    return kept, refused


def _self(
    task: Task,
    examples: Sequence[LiveExample],
    *,
    program: Program,
    sandbox: Sandbox,
    llm: Handler | None,
    memory_mb: int,
) -> tuple[list[LiveExample], list[str]]:
    """The champion's answers the verifier accepts, and why the others were not kept."""
    if not examples:
        return [], []
    pairs = [(LIVE_ID_PREFIX + e.request_id, e.inputs) for e in examples]
    timeout = task.instance_timeout
    limits = Limits(wall_time=timeout * len(pairs) + 30.0, memory_mb=memory_mb)
    try:
        _, answered = solve_in_sandbox(
            program, pairs, instance_timeout=timeout, sandbox=sandbox, limits=limits, llm=llm
        )
    except SandboxError as exc:
        return [], [f"the sandbox failed: {exc}"[:300]]
    kept: list[LiveExample] = []
    refused: list[str] = []
    for (instance_id, inputs), example in zip(pairs, examples, strict=True):
        message = answered.get(instance_id) or {}
        output = message.get("output")
        if output is not None and verified(task, Instance(instance_id, inputs, None), output):
            kept.append(replace(example, label=output, source="self"))
        else:
            refused.append(f"{example.request_id}: not accepted by the verifier")
    return kept, refused


def act_on_data(
    plan: Mapping[str, Any],
    live: Sequence[LiveExample],
    *,
    task: Task,
    program: Program,
    sandbox: Sandbox,
    teacher: Handler | None,
    agent: Handler | None = None,
    most: int = 50,
    memory_mb: int = 2048,
) -> DataOutcome:
    """Carry out a plan's ``more_data`` actions (see the module docstring).

    Args:
        plan: The parsed plan.
        live: The live examples the plan was made from.
        task: The served task (its label rule and verifier, trusted).
        program: The serving champion's program (the ``self`` answers).
        sandbox: Where the champion answers.
        teacher: The teacher's model (None: no model; a ``teacher`` action labels nothing).
        agent: The model the champion's own calls reach while it answers (``self``).
        most: Examples labelled at most per action.
        memory_mb: The champion's memory limit while it answers.

    Returns:
        The new examples, the wanted requests and the record of each action.
    """
    unlabelled = {e.request_id: e for e in live if not e.labelled}
    examples: list[LiveExample] = []
    wanted: list[str] = []
    record: list[dict[str, Any]] = []
    for action in plan.get("actions") or []:
        if action.get("kind") != "more_data":
            continue
        source, chosen = action["source"], _listed(action, unlabelled, most)
        done: dict[str, Any] = {"source": source, "asked": len(chosen)}
        if source == "people":
            wanted += [e.request_id for e in chosen if e.request_id not in wanted]
            done["wanted"] = [e.request_id for e in chosen]
        elif source == "teacher" and teacher is None:
            done.update(kept=0, refused=["no model is configured to teach"])
        else:
            if source == "teacher":
                assert teacher is not None
                kept, refused = _teacher(task, chosen, teacher)
            else:
                kept, refused = _self(
                    task, chosen, program=program, sandbox=sandbox, llm=agent, memory_mb=memory_mb
                )
            examples += kept
            done.update(kept=len(kept), ids=[e.request_id for e in kept], refused=refused[:20])
        record.append(done)
    return DataOutcome(tuple(examples), tuple(wanted), tuple(record))


def _wanted_events(storage: BaseStorage, service_id: int) -> list[tuple[Any, list[int]]]:
    """The latest wanted-label events, newest first, each with its request ids."""
    events = storage.list_service_events(
        service_id, kinds=[WANTED_EVENT], newest_first=True, limit=_WANTED_EVENTS
    )
    found = []
    for event in events:
        raw = (event.data or {}).get("request_ids") or []
        found.append((event, [int(i) for i in raw if str(i).isdigit()]))
    return found


def wanted_ids(storage: BaseStorage, service_id: int) -> set[str]:
    """The ids of the requests plans asked people to label (labelled since or not)."""
    return {str(i) for _, ids in _wanted_events(storage, service_id) for i in ids}


def wanted_labels(storage: BaseStorage, service_id: int) -> list[dict[str, Any]]:
    """The requests a plan asked people to label that still have none, newest ask first:
    ``{"request_id", "asked_at", "run_id"}`` (of the latest 50 asks, at most 500 requests).

    Raises:
        ServiceNotFoundError: No such service.
    """
    storage.get_service(service_id)
    found: dict[int, dict[str, Any]] = {}
    seen: set[int] = set()
    for event, ids in _wanted_events(storage, service_id):
        data = event.data or {}
        for request_id in ids:
            if request_id in seen or len(seen) >= _WANTED_LOOKUPS:
                continue
            seen.add(request_id)
            try:
                request = storage.get_service_request(request_id)
            except RequestNotFoundError:
                continue
            if request.service_id == service_id and request.label is None:
                found[request.id] = {
                    "request_id": request.id,
                    "asked_at": event.created_at.isoformat(),
                    "run_id": data.get("run_id"),
                }
    return list(found.values())

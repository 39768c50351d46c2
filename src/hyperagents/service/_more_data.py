"""A plan's ``more_data`` actions, carried out before its improvement run starts.

* ``people``: the requests the action lists (those still without a label) are marked as
  wanting one: a ``plan.wanted_labels`` event in the service's log, read back by
  :func:`wanted_labels` (the API's ``GET /api/service/wanted``, ``hyperagents wanted
  SERVICE``). A label posted later through the feedback path joins the next improvement's
  train data (the autopilot's live examples are the requests with a label or feedback; one a
  plan asked for is marked ``source="people"``, see :func:`wanted_ids`: train only).
* ``teacher``: the program's own teacher (``teacher.py``, ``label(inputs)``, run in the
  sandbox, see :data:`hyperagents.weights.TEACHER_FILE`) when it has one, else the configured
  model (through the gateway: counted against the improvement's budget, recorded with its run,
  see :mod:`hyperagents.service._planning`), labels the listed live inputs that have no label
  (all of them when none is listed); a model's reply is taken as JSON, else as its text; a
  label is kept only when the task can score against it
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
from hyperagents.weights import TEACHER_FILE, verified

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


def _labelled(
    task: Task, example: LiveExample, label: Any, source: str
) -> tuple[LiveExample | None, str | None]:
    """``example`` with ``label`` from ``source``, or why the task cannot score against it."""
    try:
        task.target_from_label(label)
    except TaskError as exc:
        return None, f"the task cannot score against it: {exc}"
    return replace(example, label=label, source=source), None


def _teacher(
    task: Task, examples: Sequence[LiveExample], ask: Handler
) -> tuple[list[LiveExample], list[str]]:
    """The model's labels the task can score against, and why the others were refused."""
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
        made = None
        if why is None:
            made, why = _labelled(task, example, label, "teacher")
        if made is not None:
            kept.append(made)
        else:
            refused.append(f"{example.request_id}: {why}"[:300])
    return kept, refused


@dataclass(frozen=True)
class _Answering:
    """Where the program's own code answers live inputs (its champion, its teacher)."""

    task: Task
    program: Program
    sandbox: Sandbox
    llm: Handler | None
    memory_mb: int


def _answers(
    box: _Answering, examples: Sequence[LiveExample], module: str, function: str
) -> dict[str, Any]:
    """What ``module.function`` of the program answered for each example (by request id;
    None where it failed).

    Raises:
        SandboxError: The sandbox itself failed.
    """
    pairs = [(LIVE_ID_PREFIX + e.request_id, e.inputs) for e in examples]
    timeout = box.task.instance_timeout
    limits = Limits(wall_time=timeout * len(pairs) + 30.0, memory_mb=box.memory_mb)
    _, answered = solve_in_sandbox(
        box.program,
        pairs,
        instance_timeout=timeout,
        sandbox=box.sandbox,
        limits=limits,
        module=module,
        function=function,
        llm=box.llm,
    )
    return {
        e.request_id: (answered.get(LIVE_ID_PREFIX + e.request_id) or {}).get("output")
        for e in examples
    }


def _from_program(
    box: _Answering, examples: Sequence[LiveExample], source: str
) -> tuple[list[LiveExample], list[str]]:
    """``self``: the champion's answers its verifier accepts; ``teacher``: the labels of
    the program's ``teacher.py`` the task can score against; and why the others were not
    kept."""
    if not examples:
        return [], []
    module, function = ("task_agent", "solve") if source == "self" else ("teacher", "label")
    try:
        outputs = _answers(box, examples, module, function)
    except SandboxError as exc:
        return [], [f"the sandbox failed: {exc}"[:300]]
    kept: list[LiveExample] = []
    refused: list[str] = []
    for example in examples:
        output = outputs[example.request_id]
        made: LiveExample | None = None
        why: str | None = "no answer"
        if output is not None and source == "self":
            instance = Instance(LIVE_ID_PREFIX + example.request_id, example.inputs, None)
            ok = verified(box.task, instance, output)
            made = replace(example, label=output, source="self") if ok else None
            why = "not accepted by the verifier"
        elif output is not None:
            made, why = _labelled(box.task, example, output, "teacher")
        if made is not None:
            kept.append(made)
        else:
            refused.append(f"{example.request_id}: {why}"[:300])
    return kept, refused


def _teacher_of(source: str, program: Program, model: Handler | None) -> str:
    """Who labels for ``source``: the champion, the program's teacher, the model, or none."""
    if source == "self":
        return "champion"
    if TEACHER_FILE in program:
        return "program"
    return "none" if model is None else "model"


def _generated(
    source: str, chosen: Sequence[LiveExample], box: _Answering, model: Handler | None
) -> tuple[list[LiveExample], list[str]]:
    """The labels a ``teacher`` or ``self`` action brings in, and why others were not kept."""
    by = _teacher_of(source, box.program, model)
    if by == "model":
        assert model is not None
        return _teacher(box.task, chosen, model)
    if by == "none":
        return [], ["no model is configured to teach, and the program has no teacher.py"]
    return _from_program(replace(box, llm=box.llm if by == "champion" else model), chosen, source)


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
    box = _Answering(task, program, sandbox, agent, memory_mb)
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
        else:
            kept, refused = _generated(source, chosen, box, teacher)
            done["by"] = _teacher_of(source, program, teacher)
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

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
  given the inputs and no target) — for a task whose verifier can judge without a target
  (:attr:`~hyperagents.tasks.Task.verifier_needs_target` False). A task whose verifier needs
  the target (the default), or that has none, keeps answers by **majority vote** instead
  (recorded as ``self-vote``, like the training stage's ``self`` source:
  :func:`hyperagents.weights.voted_outputs`): the voters (:class:`Voter`, from
  :func:`lineage_voters`) are the serving champion, its ancestors in its run and, through
  each improvement run's link, the earlier champions it was improved from and theirs (distinct
  programs, newest first, at most the served run's ``training.voters``), each answering in
  the sandbox; an answer is kept when at least a quorum of voters (the served run's
  ``training.quorum``, default 3) answered the input and more than half of those gave it. A
  tie or a plurality keeps nothing; with fewer voters than the quorum none is asked. A voter
  whose sandbox fails (or whose code fails on an input) does not vote (on it); the others
  still do. Inputs equal to a val or test instance's are never kept
  (:class:`~hyperagents.weights.DataGuard`).

Teacher, self, self-vote and people examples carry their ``source`` (:class:`LiveExample`):
they join train only, never a held-back slice, val or test
(:func:`~hyperagents.service.split_live`, :class:`~hyperagents.service.LiveTask`). What was
done is returned for the plan's step and recorded in the service's log (``plan.data``: for a
vote, ``by: "vote"``, ``kept_as: "self-vote"``, the voters' variant ids, the quorum and why
each answer not kept was refused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hyperagents.evaluation import solve_in_sandbox
from hyperagents.exceptions import (
    RequestNotFoundError,
    RunNotFoundError,
    SandboxError,
    TaskError,
    VariantNotFoundError,
)
from hyperagents.program import Program
from hyperagents.sandbox import InvalidMessage, Limits, Sandbox, loads_bounded
from hyperagents.service._improve import IMPROVEMENT_ATTR
from hyperagents.service._live import LIVE_ID_PREFIX, LiveExample
from hyperagents.storages import BaseStorage, VariantRecord
from hyperagents.tasks import Instance, Task
from hyperagents.weights import TEACHER_FILE, DataGuard, verified, voted_outputs

__all__ = [
    "DATA_EVENT",
    "DEFAULT_QUORUM",
    "WANTED_EVENT",
    "DataOutcome",
    "Voter",
    "act_on_data",
    "lineage_voters",
    "self_votes",
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

#: Voters that must have answered an input for a ``self-vote`` answer to be kept, when none
#: is given (the training stage's default, ``training.quorum``).
DEFAULT_QUORUM = 3
#: Variants looked at most while walking a champion's lineage for voters.
_LINEAGE_STEPS = 1000

#: Answers a sandbox's ``llm.complete`` request (see :meth:`hyperagents.runs.RunLLM.handler`).
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Voter:
    """A program that votes on a ``self`` action's answers (see the module docstring).

    Attributes:
        variant_id: The variant it is (the champion, an ancestor, an earlier champion; None:
            not known).
        program: Its program (its task agent answers in the sandbox).
    """

    variant_id: int | None
    program: Program


def self_votes(task: Task) -> bool:
    """Whether a ``self`` action keeps answers by vote: the task cannot verify an answer
    without its target (no verifier, or one that needs the target)."""
    return not task.has_verifier or task.verifier_needs_target


def _before(storage: BaseStorage, variant: VariantRecord) -> VariantRecord | None:
    """The variant ``variant`` came from: its parent, else (the first variant of an
    improvement run) the champion that run improved; None: none, or it is gone."""
    try:
        if variant.parent_id is not None:
            return storage.get_variant(variant.parent_id)
        link = storage.get_run(variant.run_id).attrs.get(IMPROVEMENT_ATTR)
        earlier = link.get("variant") if isinstance(link, Mapping) else None
        if isinstance(earlier, int) and not isinstance(earlier, bool):
            return storage.get_variant(earlier)
    except (RunNotFoundError, VariantNotFoundError):
        pass
    return None


def lineage_voters(storage: BaseStorage, champion: VariantRecord, *, most: int) -> list[Voter]:
    """The serving ``champion`` and the programs it came from, newest first, each program
    once, at most ``most``: its ancestors in its run and, past an improvement run's first
    variant, the champion that run improved (the service's earlier champion) and its
    ancestors, and so on."""
    voters: list[Voter] = []
    programs: set[str] = set()
    seen: set[int] = set()
    current: VariantRecord | None = champion
    while current is not None and len(voters) < most and len(seen) < _LINEAGE_STEPS:
        if current.id in seen:
            break
        seen.add(current.id)
        if current.program_id is not None and current.program_id not in programs:
            programs.add(current.program_id)
            voters.append(Voter(current.id, storage.get_program(current.program_id)))
        current = _before(storage, current)
    return voters


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


@dataclass(frozen=True)
class _Vote:
    """Who votes on a ``self`` action's answers, and how many must have answered."""

    voters: tuple[Voter, ...]
    quorum: int


def _ballots(
    box: _Answering, examples: Sequence[LiveExample], voters: Sequence[Voter]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each voter's answers by live instance id (None where its code failed), and a note for
    each voter whose sandbox failed (it does not vote)."""
    ballots: list[dict[str, Any]] = []
    failed: list[str] = []
    for voter in voters:
        try:
            answers = _answers(replace(box, program=voter.program), examples, "task_agent", "solve")
        except SandboxError as exc:
            failed.append(f"voter {voter.variant_id}: the sandbox failed: {exc}"[:300])
            continue
        ballots.append({LIVE_ID_PREFIX + rid: output for rid, output in answers.items()})
    return ballots, failed


def _lost(
    guard: DataGuard, ballots: Sequence[Mapping[str, Any]], instance_id: str, vote: _Vote
) -> str:
    """Why the vote kept no answer for ``instance_id``."""
    if guard.train_instance(instance_id) is None:
        return "its inputs are a val or test instance's"
    answered = sum(1 for ballot in ballots if ballot.get(instance_id) is not None)
    if answered < vote.quorum:
        return f"{answered} of {len(vote.voters)} voters answered (quorum {vote.quorum})"
    return f"no majority among the {answered} answers"


def _voted(
    box: _Answering, examples: Sequence[LiveExample], vote: _Vote
) -> tuple[list[LiveExample], list[str]]:
    """``self`` by vote: the answers a majority of the voters agree on (see the module
    docstring), and why the others were not kept."""
    if not examples:
        return [], []
    if len(vote.voters) < vote.quorum:
        return [], [f"{len(vote.voters)} voters, fewer than the quorum of {vote.quorum}"]
    live = [Instance(LIVE_ID_PREFIX + e.request_id, e.inputs, None) for e in examples]
    guard = DataGuard(box.task, train=live)
    ballots, refused = _ballots(box, examples, vote.voters)
    won = {e.instance_id: e.output for e in voted_outputs(guard, ballots, quorum=vote.quorum)}
    kept: list[LiveExample] = []
    for example in examples:
        instance_id = LIVE_ID_PREFIX + example.request_id
        made: LiveExample | None = None
        if instance_id in won:
            made, why = _labelled(box.task, example, won[instance_id], "self-vote")
        else:
            why = _lost(guard, ballots, instance_id, vote)
        if made is not None:
            kept.append(made)
        else:
            refused.append(f"{example.request_id}: {why}"[:300])
    return kept, refused


def _teacher_of(source: str, box: _Answering, model: Handler | None) -> str:
    """Who labels for ``source``: the champion (verified), its voters, the program's
    teacher, the model, or none."""
    if source == "self":
        return "vote" if self_votes(box.task) else "champion"
    if TEACHER_FILE in box.program:
        return "program"
    return "none" if model is None else "model"


def _generated(
    source: str,
    chosen: Sequence[LiveExample],
    box: _Answering,
    model: Handler | None,
    vote: _Vote,
) -> tuple[list[LiveExample], list[str]]:
    """The labels a ``teacher`` or ``self`` action brings in, and why others were not kept."""
    by = _teacher_of(source, box, model)
    if by == "model":
        assert model is not None
        return _teacher(box.task, chosen, model)
    if by == "none":
        return [], ["no model is configured to teach, and the program has no teacher.py"]
    if by == "vote":
        return _voted(box, chosen, vote)
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
    voters: Sequence[Voter] = (),
    quorum: int = DEFAULT_QUORUM,
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
        voters: Who votes on the ``self`` answers of a task that cannot verify them without
            a target (see :func:`lineage_voters`; none: the champion's ``program`` alone).
        quorum: The fewest voters that must have answered an input for its majority answer
            to be kept (at least 1).

    Returns:
        The new examples, the wanted requests and the record of each action.
    """
    unlabelled = {e.request_id: e for e in live if not e.labelled}
    box = _Answering(task, program, sandbox, agent, memory_mb)
    vote = _Vote(tuple(voters) or (Voter(None, program),), max(1, quorum))
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
            kept, refused = _generated(source, chosen, box, teacher, vote)
            done["by"] = _teacher_of(source, box, teacher)
            if done["by"] == "vote":
                done.update(kept_as="self-vote", quorum=vote.quorum)
                done["voters"] = [v.variant_id for v in vote.voters]
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

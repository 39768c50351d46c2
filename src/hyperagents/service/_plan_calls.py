"""The planning calls' journal: every model call made while planning, durable as it is made.

A plan's model (:func:`~hyperagents.service.improve_with_plans`) calls the planner, the teacher
and the champion (``self``) *before* the improvement run the plan leads to exists, so those
calls cannot be written into that run yet; held only in memory they would be lost, spent but
never counted, if the process died before the run started. So each one is also written, as
it is made, to a durable log (:class:`PlanLog`): the service's own log, or, for an
improvement made through the Python API without a service, the served run's event log (its
calls, budget and replay stay untouched: only entries are added). An entry
(:data:`PLAN_CALL_EVENT`) holds the call whole (its messages and reply too: what a run's
record of it needs) with an id of its own and the id of the plan that made it.

When the run starts, :meth:`~hyperagents.runs.RunLLM.attach` writes the calls into the run's
``llm_calls`` and this journal adds a :data:`PLAN_RUN_EVENT` entry naming the run and the
ids of the calls it took, **in one storage transaction**: a kill at any moment leaves each
call either waiting (journal only) or attached (run and journal), never half of it, and the
run's record holds each call exactly once (its budget and its replay stay exact). A plan
without a model logs its run the same way (no calls), so the log names every run its
improvements started.

A call no :data:`PLAN_RUN_EVENT` names is **orphaned**: its run never started (the process
died, or the improvement failed first). An orphan **waits** to be attached to the run that
carries its plan out (see :mod:`hyperagents.service._orphans`) until a
:data:`PLAN_ABANDONED_EVENT` gives it up, with the reason. Orphans count, waiting or
abandoned: :func:`improvement_spend` (what one improvement cost: its orphans plus its runs'
recorded calls, for the trigger's budget, after a restart too) and :func:`planning_usage`
(what planning cost in all, for the dashboard and ``hyperagents autopilot``).
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperagents.exceptions import LLMError, RunNotFoundError
from hyperagents.llm import LLMCall
from hyperagents.storages import BaseStorage

__all__ = [
    "PLAN_ABANDONED_EVENT",
    "PLAN_CALL_EVENT",
    "PLAN_ID_ATTR",
    "PLAN_RUN_EVENT",
    "ImprovementSpend",
    "JournalState",
    "PlanJournal",
    "PlanLog",
    "WaitingCall",
    "WaitingCalls",
    "improvement_spend",
    "log_plan_run",
    "planning_usage",
    "read_journal",
]

#: The log's event kind of one model call made while planning (``data``: the call, its
#: ``id`` and its ``plan``).
PLAN_CALL_EVENT = "plan.llm_call"
#: The log's event kind of an improvement run a plan started (``data``: ``run_id``,
#: ``calls``: the ids of the planning calls written into it, ``plan``: the plan's id).
PLAN_RUN_EVENT = "plan.run"
#: The log's event kind of orphaned calls given up (``data``: ``calls``, ``reason``).
PLAN_ABANDONED_EVENT = "plan.abandoned"
#: The run attribute naming the plan an improvement run carries out (its calls' ``plan``).
PLAN_ID_ATTR = "plan_id"

_KINDS = (PLAN_CALL_EVENT, PLAN_RUN_EVENT, PLAN_ABANDONED_EVENT)


class PlanLog:
    """Where planning calls are journaled: a service's log, or (no service) the served run's
    event log. Give exactly one of ``service_id`` and ``run_id``.

    Args:
        storage: The storage.
        service_id: The service whose log it is.
        run_id: The served run whose event log it is.

    Raises:
        ValueError: Neither or both are given.
    """

    def __init__(
        self, storage: BaseStorage, *, service_id: int | None = None, run_id: int | None = None
    ) -> None:
        if (service_id is None) == (run_id is None):
            raise ValueError("give exactly one of service_id and run_id")
        self.storage = storage
        self.service_id = service_id
        self.run_id = run_id

    def __repr__(self) -> str:
        where = f"service_id={self.service_id}" if self.run_id is None else f"run_id={self.run_id}"
        return f"{type(self).__name__}({where})"

    def add(self, kind: str, message: str, data: dict[str, Any]) -> int:
        """Append an entry; its id.

        Raises:
            ServiceNotFoundError: The service is gone.
            RunNotFoundError: The run is gone.
            StorageError: It could not be written.
        """
        if self.service_id is not None:
            return self.storage.add_service_event(self.service_id, kind, message, data=data)
        assert self.run_id is not None
        return self.storage.add_event(self.run_id, kind, message, data=data)

    def lock(self) -> None:
        """Inside :meth:`~hyperagents.storages.BaseStorage.atomically`: hold the log (its
        service's or run's record) until the transaction ends, so that transactions attaching
        its calls queue, each reading the entries the one before it added.

        Raises:
            ServiceNotFoundError: The service is gone.
            RunNotFoundError: The run is gone.
            StorageError: Called outside ``atomically``, or the storage failed.
        """
        self.storage.lock_record(service_id=self.service_id, run_id=self.run_id)

    def entries(
        self, kinds: Iterable[str], *, after_id: int = 0
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """The entries of ``kinds`` after ``after_id``, oldest first: ``(id, kind, data)``.

        Raises:
            ServiceNotFoundError: The service is gone.
            RunNotFoundError: The run is gone.
        """
        if self.service_id is not None:
            found = self.storage.list_service_events(
                self.service_id, after_id=after_id, kinds=list(kinds)
            )
            return [(e.id, e.kind, dict(e.data or {})) for e in found]
        assert self.run_id is not None
        rows = self.storage.list_events(self.run_id, after_id=after_id, kinds=list(kinds))
        return [(e.id, e.kind, dict(e.data or {})) for e in rows]


@dataclass(frozen=True)
class WaitingCall:
    """An orphaned planning call not given up: it waits for the run that carries its plan.

    Attributes:
        entry: Its log entry's id.
        call_id: Its own id.
        plan_id: The plan that made it ("" for an entry older than plan ids).
        call: The call as made (None: its entry cannot rebuild it, e.g. an older entry whose
            texts were cut; it can be counted, never attached).
    """

    entry: int
    call_id: str
    plan_id: str
    call: LLMCall | None


@dataclass
class JournalState:
    """A log's planning entries, read (see :func:`read_journal`).

    Attributes:
        calls: The calls' entries ``(entry id, data)``, oldest first.
        runs: The runs logged ``(entry id, run id)``, in order.
        attached: Each attached call's id, with its run.
        abandoned: Each abandoned call's id, with the reason.
    """

    calls: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    runs: list[tuple[int, int]] = field(default_factory=list)
    attached: dict[str, int] = field(default_factory=dict)
    abandoned: dict[str, str] = field(default_factory=dict)

    def orphans(self) -> list[tuple[int, dict[str, Any]]]:
        """The calls never attached (waiting or abandoned)."""
        return [(i, d) for i, d in self.calls if str(d.get("id")) not in self.attached]

    def waiting(self) -> list[WaitingCall]:
        """The orphans not given up, oldest first."""
        found = []
        for entry, data in self.orphans():
            call_id = str(data.get("id"))
            if call_id not in self.abandoned:
                found.append(WaitingCall(entry, call_id, str(data.get("plan") or ""), _call(data)))
        return found


def _call(data: dict[str, Any]) -> LLMCall | None:
    """The call an entry holds (None: cut or malformed)."""
    if data.get("truncated"):
        return None
    try:
        return LLMCall.from_dict(data)
    except LLMError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_journal(log: PlanLog, *, after_id: int = 0) -> JournalState:
    """The planning entries of ``log`` after ``after_id``.

    Raises:
        ServiceNotFoundError: The service is gone.
        RunNotFoundError: The run is gone.
    """
    state = JournalState()
    for entry, kind, data in log.entries(_KINDS, after_id=after_id):
        ids = [str(i) for i in data.get("calls") or []]
        if kind == PLAN_CALL_EVENT:
            state.calls.append((entry, data))
        elif kind == PLAN_ABANDONED_EVENT:
            state.abandoned.update(dict.fromkeys(ids, str(data.get("reason") or "")))
        elif (run_id := _int(data.get("run_id"))) is not None:
            state.runs.append((entry, run_id))
            state.attached.update(dict.fromkeys(ids, run_id))
    return state


class WaitingCalls:
    """Orphans offered to the plans of one improvement: a call a plan's model makes again
    (same request, same reply: it was answered from the orphan) takes the orphan's place,
    once (see :meth:`claim`). Thread-safe.

    Args:
        waiting: The orphans offered, oldest first.
    """

    def __init__(self, waiting: Sequence[WaitingCall] = ()) -> None:
        self._waiting = list(waiting)
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def unclaimed(self) -> list[WaitingCall]:
        """The orphans no call took yet."""
        with self._lock:
            return [w for w in self._waiting if w.call_id not in self._claimed]

    def claimed(self) -> list[str]:
        """The ids of the orphans calls took."""
        with self._lock:
            return [w.call_id for w in self._waiting if w.call_id in self._claimed]

    def claim(self, call: LLMCall) -> str | None:
        """The id of the oldest unclaimed orphan that ``call`` repeats (same request key,
        reply and cache use), now claimed; None if none."""
        if not call.ok:
            return None
        with self._lock:
            for w in self._waiting:
                old = w.call
                if w.call_id in self._claimed or old is None or old.key != call.key:
                    continue
                if old.reply == call.reply and old.cached == call.cached:
                    self._claimed.add(w.call_id)
                    return w.call_id
        return None


class PlanJournal:
    """The :class:`~hyperagents.runs.PendingJournal` of one plan's model: its calls and its
    run in a :class:`PlanLog` (see the module docstring).

    Args:
        log: Where they are journaled.
        plan_id: The plan's id (kept with each call).
        waiting: Orphans of an earlier, cut-off attempt at the same work: a call repeating one
            takes its place (no new entry: it is that call, attached with the others).
    """

    def __init__(
        self, log: PlanLog, *, plan_id: str = "", waiting: WaitingCalls | None = None
    ) -> None:
        self._log = log
        self._plan_id = plan_id
        self._waiting = waiting
        #: Each call journaled (or adopted), with its id, in order.
        self._calls: list[tuple[LLMCall, str]] = []
        self._adopted: set[str] = set()

    def pending(self, call: LLMCall) -> None:
        """Log ``call`` with an id of its own (durable when this returns), or note the orphan
        it repeats.

        Raises:
            ServiceNotFoundError: The service is gone.
            RunNotFoundError: The run is gone.
            StorageError: It could not be written.
        """
        adopted = None if self._waiting is None else self._waiting.claim(call)
        if adopted is not None:
            self._adopted.add(adopted)
            self._calls.append((call, adopted))
            return
        self._calls.append((call, self._log_call(call)))

    def _log_call(self, call: LLMCall, *, repeats: str | None = None) -> str:
        """Log ``call`` (``repeats``: the id of the call it repeats); its new id."""
        call_id = uuid.uuid4().hex
        tokens = call.prompt_tokens + call.completion_tokens
        message = f"{call.purpose or 'call'}: {tokens} tokens, ${call.cost:.4f}"
        if call.error is not None:
            message = f"{call.purpose or 'call'}: failed"
        data = {**call.to_dict(), "id": call_id, "plan": self._plan_id}
        if repeats is not None:
            message = f"{call.purpose or 'call'}: answered from call {repeats}"
            data["repeats"] = repeats
        self._log.add(PLAN_CALL_EVENT, message, data)
        return call_id

    def attached(self, run_id: int, calls: Sequence[LLMCall]) -> list[LLMCall]:
        """Log that the calls logged (or adopted) so far are written into ``run_id`` (called
        in the same transaction as that write; harmless to repeat when a transient error
        retries it, as it changes nothing here: a model logs no call once it is attached).

        The log is locked first (:meth:`PlanLog.lock`) and read again: an adopted orphan that
        another process attached meanwhile (its improvement adopted it too, or reattached it)
        is not attached twice. The call that repeated it stays in this run's record, logged
        as a call of its own, answered from the orphan's record: cached, costing nothing
        (the orphan's cost is counted where it is attached; the model's in-memory totals
        and budget count it as written too: see :meth:`~hyperagents.runs.RunLLM.attach`).

        Returns:
            The calls to write into the run: ``calls``, each such repeat marked cached.

        Raises:
            ServiceNotFoundError: The service is gone.
            RunNotFoundError: The run is gone.
            StorageError: It could not be written.
        """
        self._log.lock()
        taken = read_journal(self._log).attached if self._adopted else {}
        ids = {id(call): call_id for call, call_id in self._calls}
        written: list[LLMCall] = []
        logged: list[str] = []
        for made in calls:
            call, call_id = made, ids.get(id(made))
            if call_id is not None and call_id in self._adopted and call_id in taken:
                call = dataclasses.replace(made, cached=True, cost=0.0)
                call_id = self._log_call(call, repeats=call_id)
            written.append(call)
            if call_id is not None:
                logged.append(call_id)
        log_plan_run(self._log, run_id, call_ids=logged, plan_id=self._plan_id)
        return written


def log_plan_run(
    log: PlanLog, run_id: int, *, call_ids: Sequence[str] = (), plan_id: str = ""
) -> int:
    """Log the improvement run a plan started, with the planning calls written into it.

    Returns:
        The entry's id.

    Raises:
        ServiceNotFoundError: No such service.
        RunNotFoundError: No such run (of a run's log).
    """
    message = f"run {run_id}: {len(call_ids)} planning calls attached"
    data = {"run_id": run_id, "calls": list(call_ids), "plan": plan_id}
    return log.add(PLAN_RUN_EVENT, message, data)


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
        earlier_cost: US dollars of calls in those runs that an earlier improvement made and
            counted (orphans of a cut-off one, attached here): not counted again.
    """

    cost: float
    orphaned: int
    orphaned_cost: float
    runs: tuple[int, ...]
    earlier_cost: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The spend as a JSON object."""
        return {
            "cost": self.cost,
            "orphaned": self.orphaned,
            "orphaned_cost": self.orphaned_cost,
            "runs": list(self.runs),
            "earlier_cost": self.earlier_cost,
        }


def improvement_spend(
    storage: BaseStorage, service_id: int, *, after_id: int, runs: Iterable[int] = ()
) -> ImprovementSpend:
    """What an improvement that began after the log entry ``after_id`` cost: the planning
    calls logged since and never attached, and every recorded call of its runs (those logged
    since, and ``runs``; planning calls attached to them are counted there, once), less the
    calls logged before ``after_id`` that its runs took over (counted by the improvement
    that made them).

    Raises:
        ServiceNotFoundError: No such service.
    """
    log = PlanLog(storage, service_id=service_id)
    state = read_journal(log, after_id=after_id)
    orphans = [d for _, d in state.orphans()]
    orphaned_cost = sum(_counted(d)[0] for d in orphans)
    counted = list(dict.fromkeys([*(r for _, r in state.runs), *runs]))
    spent, found = orphaned_cost, []
    for run_id in counted:
        try:
            spent += float(storage.llm_usage(run_id)["cost"])
        except RunNotFoundError:  # deleted since: nothing left to count
            continue
        found.append(run_id)
    earlier = _earlier_cost(log, state, after_id, set(found))
    total = max(0.0, spent - earlier)
    return ImprovementSpend(total, len(orphans), orphaned_cost, tuple(found), earlier)


def _earlier_cost(log: PlanLog, state: JournalState, after_id: int, runs: set[int]) -> float:
    """US dollars of the calls logged up to ``after_id`` and attached since to ``runs``."""
    since = {str(d.get("id")) for _, d in state.calls}
    taken = {c for c, r in state.attached.items() if r in runs and c not in since}
    if not taken:
        return 0.0
    before = log.entries([PLAN_CALL_EVENT])
    return sum(_counted(d)[0] for i, _, d in before if i <= after_id and str(d.get("id")) in taken)


def planning_usage(
    storage: BaseStorage, service_id: int | None = None, *, run_id: int | None = None
) -> dict[str, Any]:
    """What planning calls cost in all, as a service's log (or, for improvements made
    without a service, a served run's event log) records them.

    Returns:
        ``calls`` (logged attempts), ``attached`` (written into their run), ``orphaned``
        (never: their run never started), of which ``waiting`` (for the run that carries
        their plan) and ``abandoned`` (given up), ``prompt_tokens``, ``completion_tokens``,
        ``cost`` and ``orphaned_cost`` (US dollars).

    Raises:
        ServiceNotFoundError: No such service.
        RunNotFoundError: No such run.
        ValueError: Neither or both of ``service_id`` and ``run_id``.
    """
    state = read_journal(PlanLog(storage, service_id=service_id, run_id=run_id))
    usage: dict[str, Any] = dict.fromkeys(
        ("calls", "attached", "orphaned", "waiting", "abandoned"), 0
    )
    usage.update(prompt_tokens=0, completion_tokens=0, cost=0.0, orphaned_cost=0.0)
    for _, data in state.calls:
        cost, prompt, completion = _counted(data)
        call_id = str(data.get("id"))
        usage["calls"] += 1
        usage["prompt_tokens"] += prompt
        usage["completion_tokens"] += completion
        usage["cost"] += cost
        if call_id in state.attached:
            usage["attached"] += 1
            continue
        usage["orphaned"] += 1
        usage["orphaned_cost"] += cost
        usage["abandoned" if call_id in state.abandoned else "waiting"] += 1
    return usage

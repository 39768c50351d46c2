"""Orphaned planning calls: attached to the run that carries their plan out, or given up.

A planning call is orphaned when the process that made it died (or its improvement failed)
before its plan's run took it (see :mod:`hyperagents.service._plan_calls`). Its cost is
counted either way; what this module does is give it a run, so that the run's record of
calls is complete and its replay answers every request its planning made:

* **The run exists** (the process died between creating the plan's run and writing the calls
  into it: the run names its plan under :data:`~hyperagents.service.PLAN_ID_ATTR`):
  :func:`reattach_orphans` writes the calls into it and logs the ``plan.run`` entry in one
  storage transaction, as :meth:`~hyperagents.runs.RunLLM.attach` would have.
* **It does not** (the process died while planning): the work is done again (the autopilot
  resumes the interrupted improvement on its restart; the next
  :func:`~hyperagents.service.improve_with_plans` of the same service or run offers them
  too). :func:`offer_orphans` hands the waiting calls to its plans' models, which answer a
  request an orphan answered from the orphan (no model asked, nothing paid again: see
  :class:`~hyperagents.llm.ReplayFirstProvider`) and attach the orphan itself with the
  plan's other calls (:class:`~hyperagents.service.WaitingCalls`).
* **No run will carry it** (the new plans asked other things, the improvement that made it
  was cut off after its runs started, or it cannot be rebuilt): :func:`abandon_calls` gives
  it up in the log, with the reason; it stays counted.

Exactly once: a call is attached only in the transaction that logs it attached, and that
transaction locks the log (:meth:`~hyperagents.service.PlanLog.lock`: the service's or served
run's record) and reads it again before it decides what to attach, so repeating any step (a
second restart) changes nothing, and two processes attaching at once (two autopilots of one
service, two ``improve_with_plans`` on one served run) attach each call once: the second
sees what the first attached. A plan's call that repeated an orphan another process attached
first stays in its own run's record as a call answered from that one's (cached, costing
nothing: see :meth:`~hyperagents.service.PlanJournal.attached`).
"""

from __future__ import annotations

from collections.abc import Sequence

from hyperagents.runs import llm_call_spec
from hyperagents.service._plan_calls import (
    PLAN_ABANDONED_EVENT,
    PLAN_ID_ATTR,
    PlanLog,
    WaitingCall,
    WaitingCalls,
    log_plan_run,
    read_journal,
)

__all__ = ["abandon_calls", "abandon_unclaimed", "offer_orphans", "reattach_orphans"]


def _plan_runs(log: PlanLog, plans: set[str]) -> dict[str, int]:
    """The runs that carry out ``plans``, by plan id."""
    found: dict[str, int] = {}
    for run in log.storage.list_runs():
        plan_id = run.attrs.get(PLAN_ID_ATTR)
        if isinstance(plan_id, str) and plan_id in plans:
            found.setdefault(plan_id, run.id)
    return found


def reattach_orphans(log: PlanLog) -> dict[int, list[str]]:
    """Write each waiting call whose plan's run exists into that run, with its ``plan.run``
    entry, in one transaction per run (the log is locked and read again inside it: a call
    attached meanwhile, by this process or another, is not written twice).

    Returns:
        The ids of the calls attached, by run.

    Raises:
        ServiceNotFoundError: The service is gone.
        RunNotFoundError: The run whose log it is is gone.
        StorageError: The storage failed.
    """
    waiting = read_journal(log).waiting()
    runs = _plan_runs(log, {w.plan_id for w in waiting if w.plan_id and w.call is not None})
    attached: dict[int, list[str]] = {}
    for plan_id, run_id in runs.items():

        def attach(plan_id: str = plan_id, run_id: int = run_id) -> list[str]:
            log.lock()  # attaches of this log queue: the one before us is read below
            calls = [w for w in read_journal(log).waiting() if w.plan_id == plan_id and w.call]
            for w in calls:
                assert w.call is not None
                log.storage.add_llm_call(run_id, llm_call_spec(w.call))
            ids = [w.call_id for w in calls]
            if ids:
                log_plan_run(log, run_id, call_ids=ids, plan_id=plan_id)
            return ids

        ids = log.storage.atomically(attach)
        if ids:
            attached[run_id] = ids
    return attached


def abandon_calls(log: PlanLog, call_ids: Sequence[str], reason: str) -> int | None:
    """Give up waiting calls: no run will carry their plan (they stay counted).

    Returns:
        The log entry's id (None: nothing to give up).

    Raises:
        ServiceNotFoundError: The service is gone.
        RunNotFoundError: The run whose log it is is gone.
    """
    if not call_ids:
        return None
    message = f"{len(call_ids)} planning calls abandoned: {reason}"
    return log.add(PLAN_ABANDONED_EVENT, message[:500], {"calls": list(call_ids), "reason": reason})


def offer_orphans(log: PlanLog, *, after_id: int = 0) -> WaitingCalls:
    """The waiting calls logged after ``after_id`` that an improvement starting now may take
    over, once those whose run exists are attached to it (:func:`reattach_orphans`).

    Raises:
        ServiceNotFoundError: The service is gone.
        RunNotFoundError: The run whose log it is is gone.
        StorageError: The storage failed.
    """
    reattach_orphans(log)
    return WaitingCalls([w for w in read_journal(log).waiting() if w.entry > after_id])


def abandon_unclaimed(log: PlanLog, offered: WaitingCalls, reason: str) -> list[WaitingCall]:
    """Give up the offered calls that no plan took (see :func:`abandon_calls`); them.

    Raises:
        ServiceNotFoundError: The service is gone.
        RunNotFoundError: The run whose log it is is gone.
    """
    still = {w.call_id for w in read_journal(log).waiting()}
    left = [w for w in offered.unclaimed() if w.call_id in still]
    abandon_calls(log, [w.call_id for w in left if w.call is not None], reason)
    cut = "its log entry does not hold the whole call (an older entry): no run can take it"
    abandon_calls(log, [w.call_id for w in left if w.call is None], cut)
    return left

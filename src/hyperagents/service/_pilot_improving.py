"""The autopilot's improvements: run in a thread beside the service, fed the latest live
examples, their spend counted, and one a restart found cut off either resumed or given up.

The :class:`~hyperagents.service.Autopilot` decides *when* (its trigger) and reads the
result; this module does the improvement's side of it:

* :class:`ImprovementWorker`: the improver in a daemon thread of its own (the champion keeps
  answering meanwhile; nothing waits for it).
* :func:`live_examples`: the latest requests with a label or feedback, the data it gets; their
  ids go into the ``autopilot.improving`` entry, so a restart can give it the same again
  (:func:`live_of`).
* :func:`improvement_spend_of`: what its models cost, for the trigger's budget.
* :func:`resumable`: what a restart does with an improvement the process died in. Its
  planning calls whose plan's run exists are attached to that run; then, if no run of it had
  started and it was not resumed before, it is **resumed** with the same live examples: its
  plans are made again, their models answering the requests the dead process already paid
  for from its orphaned calls, which are attached to the run that carries the plan out (see
  :mod:`hyperagents.service._orphans`). Otherwise it stays interrupted (its runs resumable
  by hand) and :func:`abandon_interrupted` gives up its waiting calls, with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from hyperagents.exceptions import RequestNotFoundError
from hyperagents.service._live import LiveExample
from hyperagents.service._more_data import wanted_ids
from hyperagents.service._orphans import abandon_calls, reattach_orphans
from hyperagents.service._plan_calls import (
    ImprovementSpend,
    PlanLog,
    improvement_spend,
    read_journal,
)
from hyperagents.service._steering import Improvement, Improver
from hyperagents.storages import BaseStorage, RequestRecord, ServiceRecord

__all__ = [
    "IMPROVING_EVENT",
    "ImprovementWorker",
    "abandon_interrupted",
    "improvement_spend_of",
    "last_improving",
    "live_examples",
    "live_of",
    "resumable",
]

#: The service log's entry an improvement begins with (``data``: ``reasons``,
#: ``live_examples``, ``requests``: the ids of the live examples' requests).
IMPROVING_EVENT = "autopilot.improving"


class ImprovementWorker:
    """One improvement at a time, in a daemon thread.

    Args:
        improver: How the champion is improved.
    """

    def __init__(self, improver: Improver) -> None:
        self._improver = improver
        self._thread: threading.Thread | None = None
        self._result: Improvement | BaseException | None = None

    @property
    def running(self) -> bool:
        """Whether the improvement started last is still running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, live: list[LiveExample], service: ServiceRecord) -> None:
        """Start improving ``service``'s champion with ``live`` (a finished one's result is
        dropped)."""
        self._result = None
        self._thread = threading.Thread(
            target=self._improve, args=(live, service), name="hyperagents-improve", daemon=True
        )
        self._thread.start()

    def _improve(self, live: list[LiveExample], service: ServiceRecord) -> None:
        try:
            self._result = self._improver(live, service)
        except BaseException as exc:
            self._result = exc

    def take(self) -> Improvement | BaseException | None:
        """The finished improvement's result (an exception it raised; None: none), once."""
        result, self._result, self._thread = self._result, None, None
        return result


def _example(record: RequestRecord, wanted: set[str]) -> LiveExample:
    """A request as a live example (a label a plan asked people for: ``source="people"``)."""
    asked = record.label is not None and str(record.id) in wanted
    return LiveExample(
        request_id=str(record.id),
        inputs=record.inputs,
        output=record.output,
        label=record.label,
        feedback=record.feedback,
        source="people" if asked else None,
    )


def live_examples(storage: BaseStorage, service_id: int, *, limit: int) -> list[LiveExample]:
    """The latest ``limit`` requests the champion (or the candidate) answered with a label or
    feedback, oldest first (the data an improvement gets; a label a plan asked people for is
    marked ``source="people"``: train only).

    Raises:
        ServiceNotFoundError: No such service.
    """
    rows = storage.list_service_requests(
        service_id,
        arms=["champion", "candidate"],
        answered=True,
        with_feedback=True,
        newest_first=True,
        limit=limit,
    )
    wanted = wanted_ids(storage, service_id)
    return [_example(r, wanted) for r in reversed(rows)]


def live_of(storage: BaseStorage, service_id: int, request_ids: Sequence[int]) -> list[LiveExample]:
    """The live examples of these requests, in this order, as they are now.

    Raises:
        RequestNotFoundError: A request is gone.
        ServiceNotFoundError: No such service.
    """
    wanted = wanted_ids(storage, service_id)
    return [_example(storage.get_service_request(int(i)), wanted) for i in request_ids]


def last_improving(storage: BaseStorage, service_id: int) -> int:
    """The latest :data:`IMPROVING_EVENT` entry's id (0: none)."""
    found = storage.list_service_events(
        service_id, kinds=[IMPROVING_EVENT], newest_first=True, limit=1
    )
    return found[0].id if found else 0


def improvement_spend_of(
    storage: BaseStorage, service_id: int, *, since: int, result: Improvement | None = None
) -> ImprovementSpend:
    """What the models of the improvement that began with entry ``since`` cost: the recorded
    calls of its runs (those the log names and those of ``result``'s plans: planning,
    teaching and the runs' own) and its planning calls that never reached a run (see
    :func:`~hyperagents.service.improvement_spend`).

    Raises:
        ServiceNotFoundError: No such service.
    """
    runs = []
    for step in result.plans if result is not None else []:
        run_id = step.get("run_id") if isinstance(step, dict) else None
        if isinstance(run_id, int) and not isinstance(run_id, bool):
            runs.append(run_id)
    return improvement_spend(storage, service_id, after_id=since, runs=runs)


def _entry(storage: BaseStorage, service_id: int, entry_id: int) -> dict[str, Any] | None:
    """The data of the :data:`IMPROVING_EVENT` entry ``entry_id`` (None: not one)."""
    found = storage.list_service_events(
        service_id, after_id=entry_id - 1, kinds=[IMPROVING_EVENT], limit=1
    )
    return dict(found[0].data or {}) if found and found[0].id == entry_id else None


def resumable(
    storage: BaseStorage, service_id: int, *, began: int, resumed: int
) -> tuple[list[LiveExample], str]:
    """What a restart does with the improvement that began with entry ``began`` and was cut
    off (see the module docstring): the live examples to resume it with, or none and why not.
    Its calls whose plan's run exists are attached to that run first.

    Raises:
        ServiceNotFoundError: No such service.
        StorageError: The storage failed.
    """
    log = PlanLog(storage, service_id=service_id)
    reattach_orphans(log)
    if began <= 0:
        return [], "its start was not recorded"
    if resumed == began:
        return [], "it was resumed once already and cut off again"
    started = [run_id for _, run_id in read_journal(log, after_id=began).runs]
    if started:
        runs = ", ".join(str(r) for r in dict.fromkeys(started))
        return [], f"its run(s) {runs} had started (resumable by hand)"
    entry = _entry(storage, service_id, began)
    ids = None if entry is None else entry.get("requests")
    if not isinstance(ids, list) or not ids:
        return [], "its live examples were not recorded"
    try:
        return live_of(storage, service_id, ids), ""
    except (RequestNotFoundError, TypeError, ValueError):
        return [], "a request of its live examples is gone"


def abandon_interrupted(storage: BaseStorage, service_id: int, *, began: int, reason: str) -> None:
    """Give up the waiting planning calls of the improvement that began with entry
    ``began`` (logged since): it is not resumed, so no run will carry their plans.

    Raises:
        ServiceNotFoundError: No such service.
    """
    log = PlanLog(storage, service_id=service_id)
    waiting = [w.call_id for w in read_journal(log, after_id=began).waiting()]
    abandon_calls(log, waiting, f"the improvement was interrupted: {reason}")

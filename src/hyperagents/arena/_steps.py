"""The work of the round in flight, durable step by step, and done by several workers.

A round is made of steps: a test agent's proposals, a code agent's answers on new inputs (its
screening), on the suite cases it has not answered (its catching up), a child made by its meta
agent and that child's answers on the suite. Each step's result is stored as it completes: an
``arena.step`` event with the step's key (``<round>/<agent>/<step>``) and its result (JSON),
written with the events the step raised (an agent's failure) in one transaction. A round
played again after a kill, an interrupt or a sandbox failure (:class:`StepLog` reads the steps
stored since the last finished round) takes each stored step's result instead of doing it
again; every random choice being derived from the seed, the round and the agent, and every
step's input from the steps before it, the round ends exactly as one never stopped, with every
step done once.

The steps are needed only until their round is recorded: :meth:`StepLog.end_round` writes the
round's record and deletes every stored step in one transaction, so a kill at any moment leaves
either the round's steps or its record, and an arena keeps the steps of one round at most.
(Steps stored by an earlier version name their result as a content-addressed blob: they are
still read, and deleted with their round; the blob stays, as every stored program does.)

:class:`Workers` runs independent steps (those of different agents) on up to ``workers``
threads; their results are taken in the agents' order, so the number of workers never changes
a result. An interrupt (Ctrl-C, SIGTERM under the command line) or a failure stops the
starting of new steps from the moment it comes, whichever thread the signal reaches (see
:mod:`hyperagents.arena._signals`); the steps in flight finish and are stored before it is
raised again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from hyperagents.arena._signals import SignalWatch
from hyperagents.runs import wait_awake
from hyperagents.storages import BaseStorage

__all__ = ["STEP_EVENT", "Halted", "StepLog", "Workers", "workers_for"]

#: The event a completed step is recorded with.
STEP_EVENT = "arena.step"
#: The file of a step's result blob (steps stored by an earlier version).
_RESULT_FILE = "step.json"

_T = TypeVar("_T")
_R = TypeVar("_R")

#: An event a step raises: (kind, message, data).
Raised = tuple[str, str, dict[str, Any]]


class Halted(KeyboardInterrupt):
    """A step was not started: the round is being stopped (an interrupt, or a failure of
    another step). An interrupt, so that nothing on the way takes it for an agent's error."""


class StepLog:
    """The stored steps of the round in flight, and the recording of new ones.

    Args:
        store: The arena's storage.
        run_id: Its run.
    """

    def __init__(self, store: BaseStorage, run_id: int) -> None:
        self.store = store
        self.run_id = run_id
        self.round = 0
        #: Stored results by key: the JSON text, or the id of a blob that holds it.
        self._done: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.signals = SignalWatch()

    def open(self, round_no: int, after_id: int) -> None:
        """Read the steps of round ``round_no`` stored after event ``after_id`` (the last
        finished round's)."""
        self.round, self._done = round_no, {}
        self.stopping.clear()
        for event in self.store.list_events(self.run_id, kinds=[STEP_EVENT], after_id=after_id):
            data = event.data
            if int(data.get("round", -1)) != round_no:
                continue
            if "value" in data:
                stored = ("text", json.dumps(data["value"], sort_keys=True, ensure_ascii=False))
            else:
                stored = ("blob", str(data["result"]))
            self._done.setdefault(str(data["key"]), stored)

    @property
    def stored(self) -> int:
        """Steps of the round in flight stored so far."""
        return len(self._done)

    def step(self, key: str, work: Callable[[], tuple[dict[str, Any], list[Raised]]]) -> Any:
        """The result of the round's step ``key``: the stored one, else ``work()``'s (its
        result, JSON, and the events it raises, recorded with it).

        Raises:
            Halted: The step is not stored and the round is being stopped.
            SandboxError: The sandbox itself failed (nothing of the step is stored).
        """
        full = f"{self.round}/{key}"
        with self._lock:
            found = self._done.get(full)
        if found is not None:
            how, value = found
            text = self.store.get_program(value).text(_RESULT_FILE) if how == "blob" else value
            return json.loads(text)
        if self.signals.came():
            self.stopping.set()
        if self.stopping.is_set():
            raise Halted(full)
        result, raised = work()
        text = json.dumps(result, sort_keys=True, ensure_ascii=False)
        data = {"round": self.round, "key": full, "value": json.loads(text)}

        def record() -> None:
            for kind, message, event_data in raised:
                self.store.add_event(self.run_id, kind, message, data=event_data)
            self.store.add_event(self.run_id, STEP_EVENT, f"step {full} done", data=data)

        with self._lock:
            self.store.atomically(record)
            self._done[full] = ("text", text)
        return json.loads(text)

    def end_round(self, kind: str, message: str, data: dict[str, Any]) -> int:
        """Record the round (a ``kind`` event) and delete every stored step, in one
        transaction (see the module docstring); the event's id.

        Raises:
            StorageError: Storage failed (neither is done: the steps stay for a resume).
        """

        def record() -> int:
            event_id = self.store.add_event(self.run_id, kind, message, data=data)
            self.store.delete_events(self.run_id, kinds=[STEP_EVENT], before_id=event_id)
            return event_id

        with self._lock:
            event_id = self.store.atomically(record)
            self._done = {}
        return event_id


def workers_for(workers: int | None) -> int:
    """``workers`` (at least 1), or 1 when not given."""
    return max(1, int(workers or 1))


class Workers:
    """Threads that run a round's independent steps (see the module docstring).

    Args:
        log: The round's step log (its ``stopping`` flag stops new steps).
        workers: Threads at most.
    """

    def __init__(self, log: StepLog, workers: int) -> None:
        self.log = log
        self.count = workers_for(workers)
        self._pool: ThreadPoolExecutor | None = None

    @contextmanager
    def running(self) -> Iterator[Workers]:
        """The threads, from entry to exit (they finish their steps before it returns; after
        an interrupt or an error, none starts another), with the interrupts watched."""
        with self.log.signals.watching():
            self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="arena")
            try:
                yield self
            except BaseException:
                self.log.stopping.set()
                raise
            finally:
                pool, self._pool = self._pool, None
                pool.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``fn`` of each item, on the threads, in the items' order.

        Raises:
            KeyboardInterrupt: An interrupt: the steps in flight were finished and stored.
            Exception: What ``fn`` raised first (the others in flight finished first).
        """
        if self._pool is None or len(items) <= 1 or self.count == 1:
            return self._inline(fn, items)
        futures: list[Future[_R]] = []
        try:
            futures.extend(self._pool.submit(fn, item) for item in items)
            pending: set[Future[_R]] = set(futures)
            while pending:
                pending -= wait_awake(pending)
                if any(f.exception() is not None for f in futures if f.done()):
                    raise _first_error(futures)
        except BaseException:
            self._drain(futures)
            raise
        return [f.result() for f in futures]

    def _inline(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``fn`` of each item, one after the other, each on a thread of its own so that an
        interrupt lets the step in flight finish and be stored."""
        results = []
        for item in items:
            if self._pool is None:
                results.append(fn(item))
                continue
            futures: list[Future[_R]] = []
            try:
                futures.append(self._pool.submit(fn, item))
                wait_awake(futures)
            except BaseException:
                self._drain(futures)
                raise
            future = futures[0]
            results.append(future.result())
        return results

    def _drain(self, futures: Sequence[Future[Any]]) -> None:
        """Stop new steps and wait for those in flight (a second interrupt ends the wait)."""
        self.log.stopping.set()
        for future in futures:
            future.cancel()
        pending = {f for f in futures if not f.done()}
        while pending:
            pending -= wait_awake(pending)


def _first_error(futures: Sequence[Future[Any]]) -> BaseException:
    """The first exception of ``futures`` in their order (a :class:`Halted` only when no
    other error is there)."""
    errors = [f.exception() for f in futures if f.done() and f.exception() is not None]
    real = [e for e in errors if not isinstance(e, Halted)]
    found = (real or errors)[0]
    assert found is not None  # for mypy: filtered above
    return found

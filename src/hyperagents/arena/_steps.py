"""The work of the round in flight, durable step by step, and done by several workers.

A round is made of steps: a test agent's proposals, a code agent's answers on new inputs (its
screening), on the suite cases it has not answered (its catching up), a child made by its meta
agent and that child's answers on the suite. Each step's result is stored as it completes: a
content-addressed blob named by an ``arena.step`` event with the step's key (``<round>/<agent>/
<step>``), written with the events the step raised (an agent's failure) in one transaction. A
round played again after a kill, an interrupt or a sandbox failure (:class:`StepLog` reads the
steps stored since the last finished round) takes each stored step's result instead of doing
it again; every random choice being derived from the seed, the round and the agent, and every
step's input from the steps before it, the round ends exactly as one never stopped, with every
step done once.

:class:`Workers` runs independent steps (those of different agents) on up to ``workers``
threads; their results are taken in the agents' order, so the number of workers never changes
a result. An interrupt (Ctrl-C, SIGTERM under the command line) or a failure stops the
starting of new steps; the steps in flight finish and are stored before it is raised again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from hyperagents.program import Program
from hyperagents.runs import wait_awake
from hyperagents.storages import BaseStorage

__all__ = ["STEP_EVENT", "Halted", "StepLog", "Workers", "workers_for"]

#: The event a completed step is recorded with.
STEP_EVENT = "arena.step"
#: The file of a step's result blob.
_RESULT_FILE = "step.json"

_T = TypeVar("_T")
_R = TypeVar("_R")

#: An event a step raises: (kind, message, data).
Raised = tuple[str, str, dict[str, Any]]


class Halted(Exception):
    """A step was not started: the round is being stopped (an interrupt or a failure)."""


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
        self._done: dict[str, str] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def open(self, round_no: int, after_id: int) -> None:
        """Read the steps of round ``round_no`` stored after event ``after_id`` (the last
        finished round's)."""
        self.round, self._done = round_no, {}
        self.stopping.clear()
        for event in self.store.list_events(self.run_id, kinds=[STEP_EVENT], after_id=after_id):
            data = event.data
            if int(data.get("round", -1)) == round_no:
                self._done.setdefault(str(data["key"]), str(data["result"]))

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
            return json.loads(self.store.get_program(found).text(_RESULT_FILE))
        if self.stopping.is_set():
            raise Halted(full)
        result, raised = work()
        text = json.dumps(result, sort_keys=True, ensure_ascii=False)
        blob = self.store.put_program(Program({_RESULT_FILE: text}))
        data = {"round": self.round, "key": full, "result": blob}

        def record() -> None:
            for kind, message, event_data in raised:
                self.store.add_event(self.run_id, kind, message, data=event_data)
            self.store.add_event(self.run_id, STEP_EVENT, f"step {full} done", data=data)

        with self._lock:
            self.store.atomically(record)
            self._done[full] = blob
        return json.loads(text)


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
        """The threads, from entry to exit (they finish their steps before it returns)."""
        self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="arena")
        try:
            yield self
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
        futures = [self._pool.submit(fn, item) for item in items]
        try:
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
            future = self._pool.submit(fn, item)
            try:
                wait_awake([future])
            except BaseException:
                self._drain([future])
                raise
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

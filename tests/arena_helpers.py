"""Helpers of the arena's tests: a sandbox that records what enters it (to check the held-out
suite never does) and can fail at a given call (a kill); what a run of the arena level recorded
(its variants, its rounds), to compare a stopped and resumed run with one never stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperagents.archive import search_evaluations
from hyperagents.exceptions import SandboxError
from hyperagents.sandbox import Limits, SandboxResult, get_sandbox
from hyperagents.storages import BaseStorage


def strings_of(value: Any) -> set[str]:
    """Every string in a JSON value (keys and leaves)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value) | {s for item in value.values() for s in strings_of(item)}
    if isinstance(value, list | tuple):
        return {s for item in value for s in strings_of(item)}
    return set()


class RecordingSandbox:
    """The real sandbox ``kind``, recording the strings of every request it is given (inputs to
    solve, a test agent's history, a meta agent's report: all data enters the sandbox this
    way), and raising :class:`SandboxError` at call ``fail_at`` (as if killed); calling
    ``at_call(n)`` as call ``n`` starts (e.g. to interrupt the main thread). It counts the
    calls done (:attr:`done`) and the most it ran at once (:attr:`most`)."""

    def __init__(
        self,
        fail_at: int | None = None,
        kind: str = "auto",
        at_call: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = get_sandbox(kind)
        self.name = self.inner.name
        self.seen: list[set[str]] = []
        self.calls = 0
        self.fail_at = fail_at
        self.at_call = at_call
        self.done = 0
        self.most = 0
        self._running = 0
        self._lock = threading.Lock()

    def run(
        self,
        workspace: Path,
        request: dict[str, Any],
        *,
        limits: Limits,
        llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> SandboxResult:
        with self._lock:
            self.calls += 1
            call = self.calls
            if self.fail_at is not None and call == self.fail_at:
                raise SandboxError("killed (test)")
            self.seen.append(strings_of(request))
            self._running += 1
            self.most = max(self.most, self._running)
        if self.at_call is not None:
            self.at_call(call)
        try:
            result = self.inner.run(workspace, request, limits=limits)
        finally:
            with self._lock:
                self._running -= 1
        with self._lock:
            self.done += 1
        return result


def level_variants(store: BaseStorage, run_id: int) -> list[tuple[Any, ...]]:
    """A run's variants as a result: generation, program, state, scores and evaluations."""
    return [
        (v.generation, v.program_id, v.state, dict(v.scores), search_evaluations(v))
        for v in store.list_variants(run_id)
    ]


def played_rounds(store: BaseStorage, run_id: int) -> list[int]:
    """The rounds an arena stored, in the order it stored them (each once, if none was
    played twice)."""
    return [int(e.data["round"]) for e in store.list_events(run_id, kinds=["arena.round"])]


def step_keys(store: BaseStorage, run_id: int) -> list[str]:
    """The keys of the steps an arena stored, in the order it stored them."""
    return [str(e.data["key"]) for e in store.list_events(run_id, kinds=["arena.step"])]


def arena_outcome(store: BaseStorage, run_id: int) -> dict[str, Any]:
    """What an arena ended with, to compare two: its suite, each round's record (scores, suite
    size, champion, evaluations; the seconds it took aside) and the held-out scores."""
    from hyperagents.arena import arena_series, arena_suite

    series = [{k: v for k, v in s.items() if k != "seconds"} for s in arena_series(store, run_id)]
    heldout = [dict(e.data) for e in store.list_events(run_id, kinds=["arena.heldout"])]
    return {"suite": arena_suite(store, run_id), "series": series, "heldout": heldout}


def live_email_task(address: str, *, valid: bool) -> Any:
    """email_validation wrapped for live data (the service's live task), with one labelled
    live example: ``address``, valid or not."""
    from hyperagents.service import LiveTask

    label = {"valid": valid, "reason": "" if valid else "labelled invalid"}
    example = {"request_id": "r1", "inputs": {"address": address}, "output": True}
    return LiveTask("email_validation", train=[example | {"label": label}])

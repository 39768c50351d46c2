"""What the lease, the crew and the heartbeat need of the run they hold (:class:`LeaseScope`).

The engine's run context is one (:class:`~hyperagents.runs._context.RunContext`); a run that a
level's own loop drives (the arena's rounds) is another (:class:`~hyperagents.runs.HeldRun`),
so both hold, beat and give back a run's engine slot with the same machinery.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from hyperagents.storages import BaseStorage, RunRecord, VariantRecord, VariantState

__all__ = ["LeaseScope", "LeaseTimes"]


class LeaseTimes(Protocol):
    """How often an engine beats, and how long without a beat it counts as gone."""

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between two heartbeats."""
        ...

    @property
    def heartbeat_grace(self) -> float:
        """Seconds without a heartbeat after which a holder on another host counts as gone."""
        ...


class LeaseScope(Protocol):
    """A run as an engine holding it sees it: its storage, its id and name, the holder's owner
    token, its heartbeat times, and the few reads and writes a lease makes."""

    @property
    def storage(self) -> BaseStorage:
        """The run's storage."""
        ...

    @property
    def run_id(self) -> int:
        """The run's id."""
        ...

    @property
    def name(self) -> str:
        """The run's name."""
        ...

    @property
    def owner(self) -> str:
        """The owner token the holder claims the run with."""
        ...

    @property
    def config(self) -> LeaseTimes:
        """The heartbeat times."""
        ...

    def record(self) -> RunRecord:
        """The run's record as stored now."""
        ...

    def variants(self, states: Iterable[VariantState] | None = None) -> list[VariantRecord]:
        """The run's variants (only those in ``states``, if given)."""
        ...

    def store_elapsed(self, seconds: float) -> None:
        """Store the seconds engines have spent on the run."""
        ...

    def event(
        self, kind: str, message: str = "", variant_id: int | None = None, **data: Any
    ) -> None:
        """Record an event of the run."""
        ...

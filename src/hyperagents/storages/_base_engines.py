"""The storage contract of a run's engines: which engine processes work on a run.

Several engines may work on one run at once (on a storage that lets several processes write
at once): the one holding the run's engine slot (:meth:`BaseStorage.claim_run_engine`) and
any number that *joined* it. Each registers itself in the run's engines
(:meth:`EngineStorage.register_engine`), beats while it works
(:meth:`EngineStorage.beat_engine`) and records how it left
(:meth:`EngineStorage.leave_engine`). These rows say who did what (the dashboard shows them,
with the ``engine`` and ``worker`` recorded on variants and evaluations); the work itself is
shared out by compare-and-set on the variants (a generation is created once: a run has at
most one variant per generation; a variant is claimed with
:meth:`BaseStorage.claim_variant`), never by these rows.

Contract (checked by ``hyperagents.testing.storage``):

* A run has at most one row per owner token: registering again (the same engine driving
  the run again) makes that row active again with its new details, keeping its id.
* :meth:`EngineStorage.beat_engine` and :meth:`EngineStorage.leave_engine` change only an
  active row (compare-and-set on the status) and say whether they did.
* The rows go with their run (:meth:`BaseStorage.delete_run`).
* :attr:`EngineStorage.joinable` says whether engines in several processes may work on one
  run of this storage at once (SQLite: no, it has a single writer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from hyperagents.storages._records import EngineRecord, EngineStatus

__all__ = ["EngineStorage"]


class EngineStorage(ABC):
    """The engine methods every storage has (see the module docstring)."""

    @property
    def joinable(self) -> bool:
        """Whether engines may join a run another engine drives (several writers at once)."""
        return True

    @abstractmethod
    def register_engine(self, run_id: int, owner: str, *, host: str, pid: int, workers: int) -> int:
        """Record that the engine ``owner`` works on the run now (status ``ACTIVE``,
        ``joined_at`` = ``heartbeat_at`` = now, ``left_at`` cleared) and return its row's id.

        Raises:
            RunNotFoundError: No such run.
            StorageError: ``owner`` is empty, or ``workers`` < 1.
        """

    @abstractmethod
    def beat_engine(self, run_id: int, owner: str) -> bool:
        """Stamp ``heartbeat_at`` = now on the engine's row if it is active.

        Returns:
            Whether the row is active (and was stamped).
        """

    @abstractmethod
    def leave_engine(
        self, run_id: int, owner: str, *, status: EngineStatus = EngineStatus.LEFT
    ) -> bool:
        """Compare-and-set: mark the engine's active row ``status`` (``LEFT``, or ``LOST`` when
        another engine found it dead) with ``left_at`` = now.

        Returns:
            Whether an active row was changed.

        Raises:
            StorageError: ``status`` is ``ACTIVE``.
        """

    @abstractmethod
    def list_engines(self, run_id: int) -> list[EngineRecord]:
        """The run's engines, ascending id.

        Raises:
            RunNotFoundError: No such run.
        """

"""The run engines of :class:`InMemoryStorage` (engines in one process share its runs)."""

from __future__ import annotations

import dataclasses

from hyperagents.exceptions import StorageError
from hyperagents.storages._common import utcnow
from hyperagents.storages._in_memory_state import MemoryState
from hyperagents.storages._records import EngineRecord, EngineStatus

__all__ = ["MemoryEngines"]


class MemoryEngines(MemoryState):
    """The engine methods of :class:`InMemoryStorage`."""

    def _engine_of(self, run_id: int, owner: str) -> EngineRecord | None:
        for record in self._engines.values():
            if record.run_id == run_id and record.owner == owner:
                return record
        return None

    def register_engine(self, run_id: int, owner: str, *, host: str, pid: int, workers: int) -> int:
        if not owner:
            raise StorageError("an engine owner token must not be empty")
        if workers < 1:
            raise StorageError("an engine has at least one worker")
        with self._lock:
            self._run(run_id)
            now = utcnow()
            found = self._engine_of(run_id, owner)
            engine_id = found.id if found is not None else self._new_id("engine")
            self._engines[engine_id] = EngineRecord(
                id=engine_id,
                run_id=run_id,
                owner=owner,
                host=str(host)[:255],
                pid=int(pid),
                workers=int(workers),
                status=EngineStatus.ACTIVE,
                joined_at=now,
                heartbeat_at=now,
            )
            return engine_id

    def beat_engine(self, run_id: int, owner: str) -> bool:
        with self._lock:
            found = self._engine_of(run_id, owner)
            if found is None or found.status is not EngineStatus.ACTIVE:
                return False
            self._engines[found.id] = dataclasses.replace(found, heartbeat_at=utcnow())
            return True

    def leave_engine(
        self, run_id: int, owner: str, *, status: EngineStatus = EngineStatus.LEFT
    ) -> bool:
        if status is EngineStatus.ACTIVE:
            raise StorageError("an engine leaves with status LEFT or LOST, not ACTIVE")
        with self._lock:
            found = self._engine_of(run_id, owner)
            if found is None or found.status is not EngineStatus.ACTIVE:
                return False
            self._engines[found.id] = dataclasses.replace(
                found, status=EngineStatus(status), left_at=utcnow()
            )
            return True

    def list_engines(self, run_id: int) -> list[EngineRecord]:
        with self._lock:
            self._run(run_id)
            return sorted(
                (e for e in self._engines.values() if e.run_id == run_id), key=lambda e: e.id
            )

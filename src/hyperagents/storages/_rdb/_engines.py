"""The run engines of :class:`RDBStorage`: rows of ``run_engines``, one per engine process
that worked on a run, changed by single statements (status changes are compare-and-set)."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update

from hyperagents.exceptions import StorageError
from hyperagents.storages._common import utcnow
from hyperagents.storages._rdb._transactions import RUN_ENGINES, RDBCore, retried
from hyperagents.storages._records import EngineRecord, EngineStatus

__all__ = ["EngineMethods"]

_ENGINE_COLUMNS = [RUN_ENGINES.c[f.name] for f in dataclasses.fields(EngineRecord)]
_STATUSES = {int(s): s for s in EngineStatus}


def _active_row(run_id: int, owner: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions of an engine's active row."""
    return (
        RUN_ENGINES.c.run_id == run_id,
        RUN_ENGINES.c.owner == owner,
        RUN_ENGINES.c.status == int(EngineStatus.ACTIVE),
    )


class EngineMethods(RDBCore):
    """The engine methods of :class:`RDBStorage`."""

    @property
    def joinable(self) -> bool:
        """SQLite has one writer at a time: engines in several processes cannot share a run."""
        return self._dialect != "sqlite"

    # Harmless to apply twice: the row is keyed by (run, owner).
    @retried(idempotent=True)
    def register_engine(self, run_id: int, owner: str, *, host: str, pid: int, workers: int) -> int:
        if not owner:
            raise StorageError("an engine owner token must not be empty")
        if workers < 1:
            raise StorageError("an engine has at least one worker")
        now = utcnow()
        values: dict[str, Any] = {
            "host": str(host)[:255],
            "pid": int(pid),
            "workers": int(workers),
            "status": int(EngineStatus.ACTIVE),
            "joined_at": now,
            "heartbeat_at": now,
            "left_at": None,
        }
        mine = (RUN_ENGINES.c.run_id == run_id, RUN_ENGINES.c.owner == owner)
        with self._write() as conn:
            self._require_run(conn, run_id)
            found = conn.execute(select(RUN_ENGINES.c.id).where(*mine)).scalar()
            if found is not None:
                conn.execute(update(RUN_ENGINES).where(*mine).values(values))
                return int(found)
            result = conn.execute(insert(RUN_ENGINES), {"run_id": run_id, "owner": owner, **values})
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    @retried(idempotent=True)
    def beat_engine(self, run_id: int, owner: str) -> bool:
        stmt = update(RUN_ENGINES).where(*_active_row(run_id, owner)).values(heartbeat_at=utcnow())
        with self._write() as conn:
            return bool(conn.execute(stmt).rowcount)

    # A retry finds the row no longer active and changes nothing.
    @retried(idempotent=True)
    def leave_engine(
        self, run_id: int, owner: str, *, status: EngineStatus = EngineStatus.LEFT
    ) -> bool:
        if status is EngineStatus.ACTIVE:
            raise StorageError("an engine leaves with status LEFT or LOST, not ACTIVE")
        stmt = (
            update(RUN_ENGINES)
            .where(*_active_row(run_id, owner))
            .values(status=int(status), left_at=utcnow())
        )
        with self._write() as conn:
            return bool(conn.execute(stmt).rowcount)

    @retried(idempotent=True)
    def list_engines(self, run_id: int) -> list[EngineRecord]:
        stmt = select(*_ENGINE_COLUMNS).where(RUN_ENGINES.c.run_id == run_id)
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(RUN_ENGINES.c.id)).all()
            if not rows:
                self._require_run(conn, run_id)
        records = []
        for row in rows:
            values = list(row)
            values[6] = _STATUSES[values[6]]
            records.append(EngineRecord(*values))
        return records

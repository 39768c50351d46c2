"""The runs of :class:`RDBStorage`: create, read, compare-and-set their status and engine slot,
change their typed state, delete them.

A run's banned variants are rows of ``banned_variants``; every read of runs fetches them in the
same transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hyperagents.exceptions import DuplicateError, RunNotFoundError, StorageError
from hyperagents.storages._common import (
    check_seconds,
    check_target,
    normalise_expected,
    utcnow,
)
from hyperagents.storages._rdb._checkpoints import CheckpointMethods, checkpoint_folder
from hyperagents.storages._rdb._transactions import (
    BANNED,
    CHECKPOINTS,
    EVALUATIONS,
    EVENTS,
    LLM_CALLS,
    RUN_ENGINES,
    RUNS,
    SERVICE_EVENTS,
    SERVICE_REQUESTS,
    SERVICES,
    VARIANTS,
    retried,
)
from hyperagents.storages._records import EventSpec, RunRecord, RunSpec, RunStatus

__all__ = ["RunMethods"]

#: The columns of a run record, in field order (``banned`` comes from its own table).
_RUN_COLUMNS = [RUNS.c[f.name] for f in dataclasses.fields(RunRecord) if f.name != "banned"]
_STATUS_INDEX = [c.name for c in _RUN_COLUMNS].index("status")
_RUN_STATUSES = {int(s): s for s in RunStatus}
#: A run's row once per banned variant (or once with none), by id.
_RUNS_SELECT = select(*_RUN_COLUMNS, BANNED.c.variant_id).select_from(
    RUNS.outerjoin(BANNED, BANNED.c.run_id == RUNS.c.id)
)
#: ``get_run``'s statement, built once (it runs every generation).
_GET_RUN = _RUNS_SELECT.where(RUNS.c.id == bindparam("run_key")).order_by(RUNS.c.id)


class RunMethods(CheckpointMethods):
    """The run methods of :class:`RDBStorage`."""

    @retried(idempotent=False)
    def create_run(self, run: RunSpec) -> int:
        now = utcnow()
        row = {
            "name": run.name,
            "task": run.task,
            "mode": run.mode,
            "seed": int(run.seed),
            "config": dict(run.config),
            "seed_program_id": run.seed_program_id,
            "status": int(RunStatus.CREATED),
            "attrs": dict(run.attrs),
            "created_at": now,
            "updated_at": now,
            "task_name": run.task_name,
            "experiment": run.experiment,
            "arm": run.arm,
            "target_generations": check_target(run.target_generations),
            "elapsed_seconds": 0.0,
        }
        try:
            with self._write() as conn:
                result = conn.execute(insert(RUNS), row)
                return self._done(conn, int(cast(Any, result.inserted_primary_key)[0]))
        except IntegrityError:
            raise DuplicateError(f"a run named {run.name!r} already exists") from None

    @staticmethod
    def _run_records(
        conn: Connection,
        where: ColumnElement[bool] | None = None,
        *,
        stmt: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        """The runs matching ``where`` (all: None), by id, with their banned variants: one
        query (a run's row comes once per banned variant, or once with none). ``stmt``: such a
        query built already, run with ``params``."""
        if stmt is None:
            stmt = _RUNS_SELECT if where is None else _RUNS_SELECT.where(where)
            stmt = stmt.order_by(RUNS.c.id)
        rows: dict[int, list[Any]] = {}
        banned: dict[int, set[int]] = {}
        for row in conn.execute(stmt, params):
            values = list(row)
            variant_id = values.pop()
            rows.setdefault(values[0], values)
            bans = banned.setdefault(values[0], set())
            if variant_id is not None:
                bans.add(int(variant_id))
        records = []
        for run_id, values in rows.items():
            values[_STATUS_INDEX] = _RUN_STATUSES[values[_STATUS_INDEX]]
            values.append(frozenset(banned[run_id]))  # the last field: banned
            records.append(RunRecord(*values))
        return records

    @retried(idempotent=True)
    def get_run(self, run_id: int) -> RunRecord:
        with self._read() as conn:
            found = self._run_records(conn, stmt=_GET_RUN, params={"run_key": run_id})
        if not found:
            raise RunNotFoundError(f"run {run_id} not found")
        return found[0]

    @retried(idempotent=True)
    def get_run_by_name(self, name: str) -> RunRecord:
        with self._read() as conn:
            found = self._run_records(conn, RUNS.c.name == name)
        if not found:
            raise RunNotFoundError(f"run {name!r} not found")
        return found[0]

    @retried(idempotent=True)
    def list_runs(self) -> list[RunRecord]:
        with self._read() as conn:
            return self._run_records(conn)

    @retried(idempotent=False)
    def set_run_status(
        self,
        run_id: int,
        status: RunStatus,
        *,
        expected: RunStatus | Iterable[RunStatus] | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        stmt = (
            update(RUNS).where(RUNS.c.id == run_id).values(status=int(status), updated_at=utcnow())
        )
        if expected is not None:
            allowed = [int(s) for s in normalise_expected(expected, RunStatus)]
            stmt = stmt.where(RUNS.c.status.in_(allowed))
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)
                return self._done(conn, False)
            self._insert_event(conn, run_id, None, event)
            return self._done(conn, True)

    def _merge_run_json(
        self, run_id: int, column: str, update_with: Mapping[str, Any], *, replace: bool
    ) -> None:
        col = RUNS.c[column]
        with self._write() as conn:
            stmt = select(col).where(RUNS.c.id == run_id)
            if self._dialect != "sqlite":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).first()
            if row is None:
                raise RunNotFoundError(f"run {run_id} not found")
            if replace:
                value = dict(update_with)
            else:
                value = dict(row[0] or {})
                for key, item in update_with.items():
                    if item is None:
                        value.pop(key, None)
                    else:
                        value[key] = item
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values({column: value, "updated_at": utcnow()})
            )

    @retried(idempotent=True)
    def update_run_attrs(self, run_id: int, attrs: Mapping[str, Any]) -> None:
        self._merge_run_json(run_id, "attrs", attrs, replace=False)

    @retried(idempotent=True)
    def update_run_config(self, run_id: int, config: Mapping[str, Any]) -> None:
        self._merge_run_json(run_id, "config", config, replace=True)

    # One UPDATE; claiming again as the holder refreshes the heartbeat, which also makes a
    # retried claim safe.
    @retried(idempotent=True)
    def claim_run_engine(self, run_id: int, owner: str, *, expected: str | None) -> bool:
        if not owner:
            raise StorageError("an engine owner token must not be empty")
        now = utcnow()
        was = RUNS.c.engine.is_(None) if expected is None else RUNS.c.engine == expected
        stmt = (
            update(RUNS)
            .where(RUNS.c.id == run_id, or_(RUNS.c.engine == owner, was))
            .values(engine=owner, engine_heartbeat_at=now, updated_at=now)
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)
                return False
            return True

    # One transaction; a retry finds the slot empty and changes nothing.
    @retried(idempotent=True)
    def release_run_engine(
        self,
        run_id: int,
        owner: str,
        *,
        status: RunStatus | None = None,
        event: EventSpec | None = None,
    ) -> bool:
        values: dict[str, Any] = {"engine": None, "engine_heartbeat_at": None}
        values["updated_at"] = utcnow()
        if status is not None:
            values["status"] = int(status)
        stmt = update(RUNS).where(RUNS.c.id == run_id, RUNS.c.engine == owner).values(values)
        with self._write() as conn:
            if not owner or conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)
                return False
            self._insert_event(conn, run_id, None, event)
            return True

    def _set_run_columns(self, run_id: int, values: dict[str, Any]) -> None:
        stmt = update(RUNS).where(RUNS.c.id == run_id).values({**values, "updated_at": utcnow()})
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)

    @retried(idempotent=True)
    def set_target_generations(self, run_id: int, target: int | None) -> None:
        self._set_run_columns(run_id, {"target_generations": check_target(target)})

    @retried(idempotent=True)
    def set_elapsed_seconds(self, run_id: int, seconds: float) -> None:
        self._set_run_columns(run_id, {"elapsed_seconds": check_seconds(seconds)})

    def _run_of_variant(self, conn: Connection, variant_id: int) -> int:
        run_id = conn.execute(select(VARIANTS.c.run_id).where(VARIANTS.c.id == variant_id)).scalar()
        if run_id is None:
            self._require_variant(conn, variant_id)
        return int(cast(int, run_id))

    @retried(idempotent=False)
    def pin_parent(self, variant_id: int, *, by: str, event: EventSpec | None = None) -> None:
        with self._write() as conn:
            run_id = self._run_of_variant(conn, variant_id)
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(pinned_parent=variant_id, pinned_by=str(by), updated_at=utcnow())
            )
            self._insert_event(conn, run_id, variant_id, event)

    @retried(idempotent=False)
    def unpin_parent(self, run_id: int, *, expected: int | None = None) -> bool:
        pinned = RUNS.c.pinned_parent
        stmt = (
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .where(pinned.is_not(None) if expected is None else pinned == expected)
            .values(pinned_parent=None, pinned_by=None, updated_at=utcnow())
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_run(conn, run_id)
                return self._done(conn, False)
            return self._done(conn, True)

    @retried(idempotent=False)
    def ban_variant(self, variant_id: int, *, event: EventSpec | None = None) -> None:
        with self._write() as conn:
            run_id = self._run_of_variant(conn, variant_id)
            known = select(BANNED.c.run_id).where(
                BANNED.c.run_id == run_id, BANNED.c.variant_id == variant_id
            )
            if conn.execute(known).first() is None:
                row = {"run_id": run_id, "variant_id": variant_id}
                self._insert_ignoring_duplicates(conn, BANNED, [row])
                conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(updated_at=utcnow()))
            self._insert_event(conn, run_id, variant_id, event)

    @retried(idempotent=False)
    def delete_run(self, run_id: int) -> None:
        with self._write() as conn:
            self._require_run(conn, run_id)
            variant_ids = select(VARIANTS.c.id).where(VARIANTS.c.run_id == run_id)
            conn.execute(delete(EVENTS).where(EVENTS.c.run_id == run_id))
            conn.execute(delete(LLM_CALLS).where(LLM_CALLS.c.run_id == run_id))
            conn.execute(delete(BANNED).where(BANNED.c.run_id == run_id))
            conn.execute(delete(RUN_ENGINES).where(RUN_ENGINES.c.run_id == run_id))
            service_ids = select(SERVICES.c.id).where(SERVICES.c.run_id == run_id)
            for table in (SERVICE_REQUESTS, SERVICE_EVENTS):
                conn.execute(delete(table).where(table.c.service_id.in_(service_ids)))
            conn.execute(delete(SERVICES).where(SERVICES.c.run_id == run_id))
            # Checkpoints: on PostgreSQL a trigger unlinks their large objects.
            conn.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.run_id == run_id))
            conn.execute(delete(EVALUATIONS).where(EVALUATIONS.c.variant_id.in_(variant_ids)))
            conn.execute(delete(VARIANTS).where(VARIANTS.c.run_id == run_id))
            conn.execute(delete(RUNS).where(RUNS.c.id == run_id))
        if checkpoint_folder(self._artifacts) is not None:  # its files, once it has committed
            self._when_done(lambda: self._sweep_checkpoint_files(run_id, None))

"""Statements :class:`RDBStorage` runs every generation, built once: building a SQLAlchemy
statement (and its cache key) costs more than running it on SQLite."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Executable, Table, bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hyperagents.storages._rdb.models import (
    BannedVariantModel,
    BlobModel,
    EventModel,
    ProgramModel,
    RunModel,
    VariantModel,
    WriteReceiptModel,
)

__all__ = [
    "INSERT_EVENT",
    "INSERT_RECEIPT",
    "PROGRAMS_PRESENT",
    "PROGRAM_EXISTS",
    "RUN_EXISTS",
    "VARIANT_EXISTS",
    "insert_ignoring",
]

_RUNS = cast(Table, RunModel.__table__)
_VARIANTS = cast(Table, VariantModel.__table__)
_PROGRAMS = cast(Table, ProgramModel.__table__)
_BLOBS = cast(Table, BlobModel.__table__)
_BANNED = cast(Table, BannedVariantModel.__table__)

#: The one event insert.
INSERT_EVENT = insert(cast(Table, EventModel.__table__))
#: The insert of a write-once call's receipt.
INSERT_RECEIPT = insert(cast(Table, WriteReceiptModel.__table__))
#: Existence checks, each with the parameter ``key``.
RUN_EXISTS = select(_RUNS.c.id).where(_RUNS.c.id == bindparam("key"))
VARIANT_EXISTS = select(_VARIANTS.c.id).where(_VARIANTS.c.id == bindparam("key"))
PROGRAM_EXISTS = select(_PROGRAMS.c.id).where(_PROGRAMS.c.id == bindparam("key"))
#: Which of some program ids (the parameter ``ids``, a list) are stored.
PROGRAMS_PRESENT = select(_PROGRAMS.c.id).where(
    _PROGRAMS.c.id.in_(bindparam("ids", expanding=True))
)


def _inserts_ignoring(dialect: str) -> dict[str, Executable]:
    """The inserts that skip rows whose key exists, by table name (the tables written that
    way: blobs, programs, banned variants): ``ON CONFLICT DO NOTHING`` on SQLite and
    PostgreSQL; plain inserts elsewhere (a concurrent writer makes one fail; ``put_program``
    retries)."""
    tables = (_BLOBS, _PROGRAMS, _BANNED)
    if dialect == "sqlite":
        return {t.name: sqlite_insert(t).on_conflict_do_nothing() for t in tables}
    if dialect == "postgresql":
        return {t.name: pg_insert(t).on_conflict_do_nothing() for t in tables}
    return {t.name: insert(t) for t in tables}


_INSERTS_IGNORING = {d: _inserts_ignoring(d) for d in ("sqlite", "postgresql", "other")}


def insert_ignoring(dialect: str, table: Table) -> Executable:
    """The insert into ``table`` (blobs, programs or banned variants) that skips rows whose
    key exists, for ``dialect``.

    Raises:
        KeyError: ``table`` is not one of those.
    """
    inserts = _INSERTS_IGNORING.get(dialect, _INSERTS_IGNORING["other"])
    return inserts[table.name]

"""Compact rows (SQLite): file hashes stored once, manifests as differences, a second preset
dictionary.

- ``blobs`` and ``programs`` become ``WITHOUT ROWID`` tables: their SHA-256 key is the row's
  key, where a rowid table stored it twice (in the row and in the index of its primary key).
- Program manifests may be stored as their difference from another stored manifest (format
  byte ``0x04``, :mod:`hyperagents.storages._rdb._manifests`).
- Packed JSON is written with the dictionary ``JSON_DEFLATE_V2`` (format byte ``0x03``).
- Evaluation results that a later evaluation of the same variant holds (a train subset's, in
  the full train result) may be stored as a reference to it (format byte ``0x05``,
  :mod:`hyperagents.storages._rdb._references`).

The upgrade rebuilds both tables; existing values stay as they are (the storage reads every
format). The downgrade stores every manifest alone and every reference's results as a value,
repacks ``0x03`` values with the dictionary of revision 0007, then rebuilds both tables as
rowid tables, so an older version reads them. PostgreSQL keeps its ``json`` columns and its
tables: nothing changes there.

Revision ID: 0011_compact
Revises: 0010_service
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._manifests import (
    ManifestDifference,
    PackedManifest,
    apply_difference,
)
from hyperagents.storages._rdb._migrating import PACKED_JSON, convert_rows, rebuild_sqlite_table
from hyperagents.storages._rdb._packing import (
    JSON_DEFLATE_V1,
    JSON_DEFLATE_V2,
    JSON_RECORDS_REF,
    json_text,
    pack_json_text,
)
from hyperagents.storages._rdb._references import read_reference, resolve_reference

revision = "0011_compact"
down_revision = "0010_service"
branch_labels = None
depends_on = None


#: The tables keyed by a SHA-256 (64 hex digits), stored once as the row's key on SQLite.
_KEYED_BY_HASH = ("blobs", "programs")


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def upgrade() -> None:
    if _sqlite():
        for table in _KEYED_BY_HASH:
            rebuild_sqlite_table(table, with_rowid=False)


def _manifest_alone(value: Any) -> Any:
    """A manifest stored as a difference, stored alone as revision 0007 packs it."""
    conn = op.get_bind()
    difference = PackedManifest().process_result_value(value, conn.dialect)
    if not isinstance(difference, ManifestDifference):
        return None
    programs = sa.table("programs", sa.column("id"), sa.column("manifest", sa.Text()))
    query = sa.select(programs.c.manifest).where(programs.c.id == difference.base)
    base = json.loads(json_text(conn.execute(query).scalar_one()))
    manifest = apply_difference(base, difference)
    return pack_json_text(dumps_json(manifest), version=JSON_DEFLATE_V1)


def _expand_references() -> None:
    """Store the results held as references to another evaluation as values again."""
    conn = op.get_bind()
    evaluations = sa.table(
        "evaluations",
        sa.column("id"),
        sa.column("variant_id"),
        sa.column("stage"),
        sa.column("results", sa.Text()),
    )
    query = sa.select(evaluations.c.id, evaluations.c.variant_id, evaluations.c.results).where(
        sa.func.substr(evaluations.c.results, 1, 1) == bytes((JSON_RECORDS_REF,))
    )
    for evaluation_id, variant_id, stored in conn.execute(query).all():
        of, ids = read_reference(stored)
        target = sa.select(evaluations.c.results).where(
            evaluations.c.variant_id == variant_id, evaluations.c.stage == of
        )
        records = resolve_reference(ids, json.loads(json_text(conn.execute(target).scalar_one())))
        text = pack_json_text(dumps_json(records), version=JSON_DEFLATE_V1)
        value = sa.literal(text, sa.LargeBinary() if isinstance(text, bytes) else sa.Text())
        conn.execute(
            evaluations.update().where(evaluations.c.id == evaluation_id).values(results=value)
        )


def _v1(value: Any) -> Any:
    if isinstance(value, bytes | memoryview) and bytes(value[:1]) == bytes((JSON_DEFLATE_V2,)):
        return pack_json_text(json_text(value), version=JSON_DEFLATE_V1)
    return None


def downgrade() -> None:
    if not _sqlite():
        return
    # Differences and references first, while what they refer to has its format byte.
    convert_rows("programs", "id", ("manifest",), _manifest_alone)
    _expand_references()
    for table, (key, *columns) in PACKED_JSON.items():
        convert_rows(table, key, tuple(columns), _v1)
    for table in _KEYED_BY_HASH:
        rebuild_sqlite_table(table, with_rowid=True)

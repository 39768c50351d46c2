"""Packed values: the JSON of the big tables deflated with a preset dictionary (SQLite), and
program files stored with a format byte and zlib-compressed (every database).

The upgrade packs the existing rows as the storage writes new ones (see
:mod:`hyperagents.storages._rdb._packing`; files are compressed, none is stored as a
difference); the downgrade puts plain JSON text and plain file bytes back, differences
resolved. No column changes type: SQLite keeps a BLOB in a JSON column as it is, and
PostgreSQL keeps its ``json`` columns (only its blobs change). Rows are converted in batches
by primary key, so a large database is not read into memory at once.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from hyperagents.storages._rdb._packing import (
    BLOB_RAW,
    blob_base,
    json_text,
    pack_blob,
    pack_json_text,
    unpack_blob,
)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The packed JSON columns (SQLite only), by table, with the table's primary key first.
PACKED_JSON = {
    "variants": ("id", "metrics", "meta_info"),
    "evaluations": ("id", "results", "metrics"),
    "events": ("id", "data"),
    "programs": ("id", "manifest"),
    "llm_calls": ("id", "request"),
}
_BATCH = 500


def _convert(table: str, key: str, columns: tuple[str, ...], change: Callable[[Any], Any]) -> None:
    """Rewrite ``columns`` of every row of ``table`` with ``change`` (returning None: the value
    stays as it is)."""
    raw = sa.LargeBinary() if table == "blobs" else sa.Text()
    t = sa.table(table, sa.column(key), *(sa.column(c, raw) for c in columns))
    params = {f"new_{c}": sa.bindparam(f"new_{c}", type_=raw) for c in columns}
    stmt = (
        t.update()
        .where(t.c[key] == sa.bindparam("old_key"))
        .values({c: params[f"new_{c}"] for c in columns})
    )
    conn = op.get_bind()
    last: Any = None
    while True:
        query = sa.select(t.c[key], *(t.c[c] for c in columns)).order_by(t.c[key]).limit(_BATCH)
        if last is not None:
            query = query.where(t.c[key] > last)
        rows = conn.execute(query).all()
        if not rows:
            return
        last = rows[-1][0]
        updates = []
        for row in rows:
            new = [change(v) for v in row[1:]]
            if any(v is not None for v in new):
                kept = (v if n is None else n for v, n in zip(row[1:], new, strict=True))
                updates.append(
                    {"old_key": row[0]}
                    | {f"new_{c}": v for c, v in zip(columns, kept, strict=True)}
                )
        if updates:
            conn.execute(stmt, updates)


def _pack(value: Any) -> Any:
    return pack_json_text(value) if isinstance(value, str) else None


def _unpack(value: Any) -> Any:
    return json_text(value) if isinstance(value, bytes | memoryview) else None


def _json_columns(change: Callable[[Any], Any]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, (key, *columns) in PACKED_JSON.items():
        _convert(table, key, tuple(columns), change)


def upgrade() -> None:
    _json_columns(_pack)
    _convert("blobs", "sha256", ("data",), lambda data: pack_blob(bytes(data)))


def _standalone(value: Any) -> bytes | None:
    """A file stored as a difference, stored alone instead (None: it stands alone already)."""
    base = blob_base(value)
    if base is None:
        return None
    blobs = sa.table("blobs", sa.column("sha256"), sa.column("data", sa.LargeBinary()))
    query = sa.select(blobs.c.data).where(blobs.c.sha256 == base)
    base_file = unpack_blob(op.get_bind().execute(query).scalar_one())
    return bytes((BLOB_RAW,)) + unpack_blob(value, base_file)


def downgrade() -> None:
    _json_columns(_unpack)
    # Differences first, while the files they refer to still have their format byte.
    _convert("blobs", "sha256", ("data",), _standalone)
    _convert("blobs", "sha256", ("data",), unpack_blob)

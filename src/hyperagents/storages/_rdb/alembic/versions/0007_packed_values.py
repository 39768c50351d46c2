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

from hyperagents.storages._rdb._migrating import PACKED_JSON, convert_rows
from hyperagents.storages._rdb._packing import (
    BLOB_RAW,
    JSON_DEFLATE_V1,
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


def _pack(value: Any) -> Any:
    return pack_json_text(value, version=JSON_DEFLATE_V1) if isinstance(value, str) else None


def _unpack(value: Any) -> Any:
    return json_text(value) if isinstance(value, bytes | memoryview) else None


def _json_columns(change: Callable[[Any], Any]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, (key, *columns) in PACKED_JSON.items():
        convert_rows(table, key, tuple(columns), change)


def upgrade() -> None:
    _json_columns(_pack)
    convert_rows("blobs", "sha256", ("data",), lambda data: pack_blob(bytes(data)))


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
    convert_rows("blobs", "sha256", ("data",), _standalone)
    convert_rows("blobs", "sha256", ("data",), unpack_blob)

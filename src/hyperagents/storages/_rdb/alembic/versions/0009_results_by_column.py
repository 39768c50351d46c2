"""Evaluation results laid out by column (SQLite): per-instance results stored as columns, ids
as the steps between their numbers, the columns that take few values once per distinct
combination (see :mod:`hyperagents.storages._rdb._columns`, format byte 0x02).

No column changes. The upgrade re-packs the existing results (each is kept as it was where the
layout would not be smaller); the downgrade packs them as revision 0007 does, so an older
version reads them. PostgreSQL keeps its ``json`` columns: nothing changes there.

Revision ID: 0009_columns
Revises: 0008_artifacts
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from alembic import op

from hyperagents.storages._rdb._migrating import convert_rows
from hyperagents.storages._rdb._packing import (
    JSON_COLUMNS_V1,
    JSON_DEFLATE_V1,
    json_text,
    pack_json_text,
    pack_records,
)

revision = "0009_columns"
down_revision = "0008_artifacts"
branch_labels = None
depends_on = None


def _by_column(value: Any) -> Any:
    if value is None:
        return None
    packed = pack_records(json.loads(json_text(value)))
    return packed if isinstance(packed, bytes) and packed[0] == JSON_COLUMNS_V1 else None


def _by_row(value: Any) -> Any:
    if isinstance(value, bytes | memoryview) and bytes(value[:1]) == bytes((JSON_COLUMNS_V1,)):
        return pack_json_text(json_text(value), version=JSON_DEFLATE_V1)
    return None


def _results(change: Callable[[Any], Any]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        convert_rows("evaluations", "id", ("results",), change)


def upgrade() -> None:
    _results(_by_column)


def downgrade() -> None:
    _results(_by_row)

"""The engine slot of a run as columns: runs.engine, runs.engine_heartbeat_at.

Claiming a run is one compare-and-set ``UPDATE runs SET engine = … WHERE engine = …``.
Earlier versions kept the holder in ``attrs["engine"]`` / ``attrs["engine_heartbeat"]``
(seconds since the epoch); those keys are moved into the new columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from hyperagents.storages._rdb.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OLD_KEYS = ("engine", "engine_heartbeat")


def _runs_table() -> sa.TableClause:
    return sa.table(
        "runs",
        sa.column("id", sa.Integer()),
        sa.column("attrs", sa.JSON()),
        sa.column("engine", sa.String(255)),
        sa.column("engine_heartbeat_at", UTCDateTime()),
    )


def _heartbeat(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def upgrade() -> None:
    op.add_column("runs", sa.Column("engine", sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("engine_heartbeat_at", sa.DateTime(timezone=True)))
    runs = _runs_table()
    conn = op.get_bind()
    for run_id, attrs in conn.execute(sa.select(runs.c.id, runs.c.attrs)).all():
        if not isinstance(attrs, dict) or not any(key in attrs for key in _OLD_KEYS):
            continue
        holder = attrs.get("engine")
        conn.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(
                attrs={k: v for k, v in attrs.items() if k not in _OLD_KEYS},
                engine=holder if isinstance(holder, str) and holder else None,
                engine_heartbeat_at=_heartbeat(attrs.get("engine_heartbeat"))
                if isinstance(holder, str) and holder
                else None,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("engine_heartbeat_at")
        batch.drop_column("engine")

"""Several engines on one run: the table run_engines, and the engine and worker slot that ran
each variant's meta agent (variants.engine, variants.worker) and each evaluation
(evaluations.engine, evaluations.worker).

Existing rows get NULL in the new columns (who ran them was not recorded) and no engine rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_STAMPED = ("variants", "evaluations")


def upgrade() -> None:
    for table in _STAMPED:
        op.add_column(table, sa.Column("engine", sa.String(255), nullable=True))
        op.add_column(table, sa.Column("worker", sa.Integer(), nullable=True))
    op.create_table(
        "run_engines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_run_engines_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run_engines"),
        sa.UniqueConstraint("run_id", "owner", name="uq_run_engines_run_id_owner"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("run_engines")
    for table in reversed(_STAMPED):
        with op.batch_alter_table(table) as batch:  # SQLite cannot drop columns in place
            batch.drop_column("worker")
            batch.drop_column("engine")

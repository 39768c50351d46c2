"""Receipts of writes that must apply once: write_receipts.

A write whose COMMIT is cut off by a dropped connection may or may not have committed; its
retry looks up the receipt the write inserted in the same transaction instead of applying the
write a second time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_receipts",
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_write_receipts"),
    )
    op.create_index("ix_write_receipts_created_at", "write_receipts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_write_receipts_created_at", table_name="write_receipts")
    op.drop_table("write_receipts")

"""Services: a run's champion answering live requests (``services``), every request an arm
answered with its feedback (``service_requests``) and each service's log
(``service_events``).

New tables only: existing rows are untouched; the downgrade drops the tables.

Revision ID: 0010_service
Revises: 0009_columns
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_service"
down_revision = "0009_columns"
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("champion_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("candidate_state", sa.Integer(), nullable=False),
        sa.Column("candidate_share", sa.Float(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("goal", sa.JSON(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("updated_at", _time, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_services_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_services"),
        sa.UniqueConstraint("name", name="uq_services_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_services_run_id", "services", ["run_id"])
    op.create_table(
        "service_requests",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("shadow_of", sa.BigInteger(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.Column("answered_at", _time, nullable=True),
        sa.Column("label", sa.JSON(), nullable=True),
        sa.Column("feedback", sa.Float(), nullable=True),
        sa.Column("feedback_by", sa.String(255), nullable=True),
        sa.Column("feedback_at", _time, nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name="fk_service_requests_service_id_services",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_service_requests"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_service_requests_service_id_id", "service_requests", ["service_id", "id"])
    op.create_index(
        "ix_service_requests_service_id_created_at",
        "service_requests",
        ["service_id", "created_at"],
    )
    op.create_table(
        "service_events",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", _time, nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name="fk_service_events_service_id_services",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_service_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_service_events_service_id_id", "service_events", ["service_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_service_events_service_id_id", table_name="service_events")
    op.drop_table("service_events")
    op.drop_index("ix_service_requests_service_id_created_at", table_name="service_requests")
    op.drop_index("ix_service_requests_service_id_id", table_name="service_requests")
    op.drop_table("service_requests")
    op.drop_index("ix_services_run_id", table_name="services")
    op.drop_table("services")

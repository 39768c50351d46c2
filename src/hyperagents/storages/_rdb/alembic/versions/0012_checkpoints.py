"""Checkpoints: the newest checkpoint of each variant's training, kept in the database.

The upgrade adds the table ``checkpoints`` (one row per run and variant; see
:mod:`hyperagents.storages._rdb._checkpoints`) and, on PostgreSQL, a trigger that unlinks a
row's large object when the row is deleted or names another one. Checkpoints that earlier
versions kept in a folder of the machine that wrote them (``<database>.checkpoints/``) are not
moved in: a training that was in progress starts over once, and that folder may be deleted.

The downgrade drops the table: its checkpoints are lost (a training in progress starts over)
and their large objects are unlinked (PostgreSQL), in its transaction. Their files beside a
SQLite database are left: deleted before the downgrade commits, they would be lost with a
downgrade that rolls back. Nothing reads them without the table, and the upgrade deletes them
before it makes the table (no row names them then, whether it commits or not).

Revision ID: 0012_checkpoints
Revises: 0011_compact
Create Date: 2026-12-07
"""

from __future__ import annotations

import shutil

import sqlalchemy as sa
from alembic import op

from hyperagents.storages._rdb._artifacts import sqlite_artifact_dir
from hyperagents.storages._rdb._checkpoints import CHECKPOINT_FOLDER

revision = "0012_checkpoints"
down_revision = "0011_compact"
branch_labels = None
depends_on = None

_UNLINK_FUNCTION = """
CREATE OR REPLACE FUNCTION hyperagents_checkpoints_unlink() RETURNS trigger AS $$
BEGIN
    IF OLD.lo_oid IS NOT NULL
        AND (TG_OP = 'DELETE' OR NEW.lo_oid IS DISTINCT FROM OLD.lo_oid)
        AND EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = OLD.lo_oid::oid)
    THEN
        PERFORM lo_unlink(OLD.lo_oid::oid);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""
_UNLINK_TRIGGER = (
    "CREATE TRIGGER checkpoints_unlink_large_object AFTER UPDATE OR DELETE ON checkpoints "
    "FOR EACH ROW EXECUTE FUNCTION hyperagents_checkpoints_unlink()"
)
_UNLINK_ALL = (
    "SELECT lo_unlink(lo_oid::oid) FROM checkpoints WHERE lo_oid IS NOT NULL AND EXISTS "
    "(SELECT 1 FROM pg_largeobject_metadata WHERE oid = lo_oid::oid)"
)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":  # files of a downgraded table: no row can name them
        folder = sqlite_artifact_dir(conn.engine.url)
        if folder is not None:
            shutil.rmtree(folder / CHECKPOINT_FOLDER, ignore_errors=True)
    op.create_table(
        "checkpoints",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("lo_oid", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_checkpoints_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variants.id"],
            name="fk_checkpoints_variant_id_variants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "variant_id", name="pk_checkpoints"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNLINK_FUNCTION)
        op.execute(_UNLINK_TRIGGER)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute(_UNLINK_ALL)  # dropping a table fires no delete trigger
        op.execute("DROP TRIGGER IF EXISTS checkpoints_unlink_large_object ON checkpoints")
        op.execute("DROP FUNCTION IF EXISTS hyperagents_checkpoints_unlink()")
    op.drop_table("checkpoints")  # SQLite: its files go with the next upgrade (see above)

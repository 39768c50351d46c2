"""Artifacts: large program files (a model's weights) kept outside the ``blobs`` rows.

The upgrade adds ``blobs.lo_oid`` (the PostgreSQL large object of an artifact row; NULL
everywhere else) and, on PostgreSQL, a trigger that unlinks that large object when its row is
deleted. Rows already stored stay as they are: only files stored from now on become artifacts
(see :mod:`hyperagents.storages._rdb._artifacts`). The downgrade puts each artifact's file back
into its row (compressed, as revision 0007 stores files), unlinks the large objects, and drops
the trigger and the column; a SQLite database's artifact folder is left in place.

Revision ID: 0008_artifacts
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hyperagents.storages._rdb._artifacts import FileArtifacts, LargeObjects, sqlite_artifact_dir
from hyperagents.storages._rdb._packing import ARTIFACT_ROW, pack_blob

revision = "0008_artifacts"
down_revision = "0007"
branch_labels = None
depends_on = None

_UNLINK_FUNCTION = """
CREATE OR REPLACE FUNCTION hyperagents_blobs_unlink() RETURNS trigger AS $$
BEGIN
    IF OLD.lo_oid IS NOT NULL AND EXISTS (
        SELECT 1 FROM pg_largeobject_metadata WHERE oid = OLD.lo_oid::oid
    ) THEN
        PERFORM lo_unlink(OLD.lo_oid::oid);
    END IF;
    RETURN OLD;
END
$$ LANGUAGE plpgsql
"""
_UNLINK_TRIGGER = (
    "CREATE TRIGGER blobs_unlink_large_object AFTER DELETE ON blobs "
    "FOR EACH ROW EXECUTE FUNCTION hyperagents_blobs_unlink()"
)


def upgrade() -> None:
    op.add_column("blobs", sa.Column("lo_oid", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNLINK_FUNCTION)
        op.execute(_UNLINK_TRIGGER)


def downgrade() -> None:
    conn = op.get_bind()
    blobs = sa.table(
        "blobs",
        sa.column("sha256"),
        sa.column("size", sa.BigInteger()),
        sa.column("data", sa.LargeBinary()),
        sa.column("lo_oid", sa.BigInteger()),
    )
    rows = conn.execute(
        sa.select(blobs.c.sha256, blobs.c.size, blobs.c.lo_oid).where(blobs.c.data == ARTIFACT_ROW)
    ).all()
    postgres = conn.dialect.name == "postgresql"
    folder = None if postgres else sqlite_artifact_dir(conn.engine.url)
    store = LargeObjects() if postgres else FileArtifacts(folder) if folder else None
    for digest, size, oid in rows:  # one file in memory at a time
        if store is None:
            raise RuntimeError(f"artifact {digest} has no store to be read from")
        data = store.get(conn, digest, oid, int(size), digest)
        update = blobs.update().where(blobs.c.sha256 == digest)
        conn.execute(update.values(data=pack_blob(data), lo_oid=None))
        if postgres:
            store.discard(conn, oid)
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS blobs_unlink_large_object ON blobs")
        op.execute("DROP FUNCTION IF EXISTS hyperagents_blobs_unlink()")
    with op.batch_alter_table("blobs") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("lo_oid")

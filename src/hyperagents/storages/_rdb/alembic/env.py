"""Alembic environment of the hyperagents storage schema.

Migrations run only programmatically, from :class:`hyperagents.storages.RDBStorage`, which
passes an open connection (already inside a transaction holding the migration lock) in
``config.attributes["connection"]``; no URL is parsed and no second engine is made here.
"""

from __future__ import annotations

from alembic import context

from hyperagents.storages._rdb.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - misuse guard
    raise RuntimeError(
        "hyperagents migrations run only through RDBStorage (no connection was given)"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

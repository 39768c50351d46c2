"""Relational storage (SQLAlchemy 2 + Alembic): SQLite by default, PostgreSQL for many workers."""

from hyperagents.storages._rdb.storage import HEAD_REVISION, RDBStorage, normalise_url

__all__ = ["HEAD_REVISION", "RDBStorage", "normalise_url"]

"""Helpers of the storage migration tests: move a database to a revision (not a pytest module)."""

from __future__ import annotations

import sqlalchemy as sa

from hyperagents.storages._rdb import normalise_url
from hyperagents.storages._rdb.storage import ALEMBIC_DIR


def migrate_url(url: str, revision: str, *, down: bool = False) -> None:
    """Upgrade (or, ``down``, downgrade) the database at ``url`` to ``revision``."""
    from alembic import command
    from alembic.config import Config

    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(ALEMBIC_DIR))
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()

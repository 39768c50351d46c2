"""What the data migrations share: rewriting the values of a table's rows in batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

__all__ = ["PACKED_JSON", "convert_rows", "rebuild_sqlite_table"]

#: The packed JSON columns (SQLite only), by table, with the table's primary key first.
PACKED_JSON = {
    "variants": ("id", "metrics", "meta_info"),
    "evaluations": ("id", "results", "metrics"),
    "events": ("id", "data"),
    "programs": ("id", "manifest"),
    "llm_calls": ("id", "request"),
}

#: Rows read and rewritten at a time, so a large database is not read into memory at once.
_BATCH = 500


def convert_rows(
    table: str, key: str, columns: tuple[str, ...], change: Callable[[Any], Any]
) -> None:
    """Rewrite ``columns`` of every row of ``table`` with ``change`` (returning None: the value
    stays as it is)."""
    raw = sa.LargeBinary() if table == "blobs" else sa.Text()
    t = sa.table(table, sa.column(key), *(sa.column(c, raw) for c in columns))
    params = {f"new_{c}": sa.bindparam(f"new_{c}", type_=raw) for c in columns}
    stmt = (
        t.update()
        .where(t.c[key] == sa.bindparam("old_key"))
        .values({c: params[f"new_{c}"] for c in columns})
    )
    conn = op.get_bind()
    last: Any = None
    while True:
        query = sa.select(t.c[key], *(t.c[c] for c in columns)).order_by(t.c[key]).limit(_BATCH)
        if last is not None:
            query = query.where(t.c[key] > last)
        rows = conn.execute(query).all()
        if not rows:
            return
        last = rows[-1][0]
        updates = []
        for row in rows:
            new = [change(v) for v in row[1:]]
            if any(v is not None for v in new):
                kept = (v if n is None else n for v, n in zip(row[1:], new, strict=True))
                updates.append(
                    {"old_key": row[0]}
                    | {f"new_{c}": v for c, v in zip(columns, kept, strict=True)}
                )
        if updates:
            conn.execute(stmt, updates)


def rebuild_sqlite_table(table: str, *, with_rowid: bool) -> None:
    """Rebuild ``table`` (SQLite; a table with no foreign keys and no indexes of its own) as a
    rowid table or a ``WITHOUT ROWID`` one, keeping its rows, columns and primary key.

    Rows of other tables may refer to it: foreign keys are checked at the commit
    (``defer_foreign_keys``), and the rows go back after the old table is dropped and the new
    one has its name, so each refers to its row again.
    """
    conn = op.get_bind()
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    old = sa.Table(table, sa.MetaData(), autoload_with=conn)
    key = [c.name for c in old.primary_key.columns]
    new = sa.Table(
        f"_new_{table}",
        sa.MetaData(),
        *(sa.Column(c.name, c.type, nullable=c.nullable) for c in old.columns),
        sa.PrimaryKeyConstraint(*key, name=f"pk_{table}"),  # the naming convention
        sqlite_with_rowid=with_rowid,
    )
    conn.exec_driver_sql(f'CREATE TEMP TABLE "_rows_{table}" AS SELECT * FROM "{table}"')
    new.create(conn)
    conn.exec_driver_sql(f'DROP TABLE "{table}"')
    conn.exec_driver_sql(f'ALTER TABLE "_new_{table}" RENAME TO "{table}"')
    names = ", ".join(f'"{c.name}"' for c in old.columns)
    conn.exec_driver_sql(
        f'INSERT INTO "{table}" ({names}) SELECT {names} FROM temp."_rows_{table}"'
    )
    conn.exec_driver_sql(f'DROP TABLE temp."_rows_{table}"')

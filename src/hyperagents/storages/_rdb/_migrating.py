"""What the data migrations share: rewriting the values of a table's rows in batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

__all__ = ["PACKED_JSON", "convert_rows"]

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

"""Run state as columns: runs.task_name, experiment, arm, target_generations, elapsed_seconds,
pinned_parent, pinned_by, and the table banned_variants.

Earlier versions kept this state in the free-form ``runs.attrs`` under the keys ``task_name``,
``experiment``, ``arm``, ``target_generations``, ``elapsed_seconds``, ``pinned_parent``
(``{"variant": id, "by": who}``) and ``banned`` (a list of variant ids); those keys are moved
into the new columns (a value of the wrong type is dropped, as no version wrote one), so old
runs stay readable and resumable. The downgrade puts them back.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Text columns moved from attrs as they are (strings only).
_TEXT_KEYS = ("task_name", "experiment", "arm")
_OLD_KEYS = (*_TEXT_KEYS, "target_generations", "elapsed_seconds", "pinned_parent", "banned")


def _runs_table() -> sa.TableClause:
    return sa.table(
        "runs",
        sa.column("id", sa.Integer()),
        sa.column("attrs", sa.JSON()),
        *(sa.column(key, sa.String(255)) for key in _TEXT_KEYS),
        sa.column("target_generations", sa.Integer()),
        sa.column("elapsed_seconds", sa.Float()),
        sa.column("pinned_parent", sa.Integer()),
        sa.column("pinned_by", sa.String(255)),
    )


_BANNED = sa.table("banned_variants", sa.column("run_id"), sa.column("variant_id"))
_VARIANTS = sa.table("variants", sa.column("id"), sa.column("run_id"))


def _whole(value: Any) -> int | None:
    """``value`` as a whole number >= 0, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if value >= 0 else None


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) and value >= 0 else 0.0


def _columns(attrs: dict[str, Any]) -> dict[str, Any]:
    """The new columns' values taken from old ``attrs``."""
    values: dict[str, Any] = {
        key: attrs[key] if isinstance(attrs.get(key), str) else None for key in _TEXT_KEYS
    }
    values["target_generations"] = _whole(attrs.get("target_generations"))
    values["elapsed_seconds"] = _seconds(attrs.get("elapsed_seconds"))
    pin = attrs.get("pinned_parent")
    pinned = _whole(pin.get("variant")) if isinstance(pin, dict) else None
    by = pin.get("by") if isinstance(pin, dict) and pinned is not None else None
    values["pinned_parent"] = pinned
    values["pinned_by"] = by if isinstance(by, str) else None
    return values


def upgrade() -> None:
    for key in _TEXT_KEYS:
        op.add_column("runs", sa.Column(key, sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("target_generations", sa.Integer(), nullable=True))
    op.add_column(
        "runs",
        sa.Column("elapsed_seconds", sa.Float(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("runs", sa.Column("pinned_parent", sa.Integer(), nullable=True))
    op.add_column("runs", sa.Column("pinned_by", sa.String(255), nullable=True))
    op.create_table(
        "banned_variants",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_banned_variants_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variants.id"],
            name="fk_banned_variants_variant_id_variants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "variant_id", name="pk_banned_variants"),
    )
    runs = _runs_table()
    conn = op.get_bind()
    for run_id, attrs in conn.execute(sa.select(runs.c.id, runs.c.attrs)).all():
        if not isinstance(attrs, dict) or not any(key in attrs for key in _OLD_KEYS):
            continue
        conn.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(attrs={k: v for k, v in attrs.items() if k not in _OLD_KEYS}, **_columns(attrs))
        )
        banned = attrs.get("banned")
        wanted = {b for b in banned if _whole(b) is not None} if isinstance(banned, list) else set()
        if wanted:
            of_run = sa.select(_VARIANTS.c.id).where(_VARIANTS.c.run_id == run_id)
            present = {int(v) for v in conn.execute(of_run).scalars() if v in wanted}
            rows = [{"run_id": run_id, "variant_id": v} for v in sorted(present)]
            if rows:
                conn.execute(_BANNED.insert(), rows)


def _old_attrs(row: Any, banned: list[int]) -> dict[str, Any]:
    """``attrs`` of a run with its state put back under the old keys."""
    attrs = dict(row.attrs or {})
    for key in _TEXT_KEYS:
        if getattr(row, key) is not None:
            attrs[key] = getattr(row, key)
    if row.target_generations is not None:
        attrs["target_generations"] = row.target_generations
    if row.elapsed_seconds:
        attrs["elapsed_seconds"] = row.elapsed_seconds
    if row.pinned_parent is not None:
        attrs["pinned_parent"] = {"variant": row.pinned_parent, "by": row.pinned_by or ""}
    if banned:
        attrs["banned"] = banned
    return attrs


def downgrade() -> None:
    runs = _runs_table()
    conn = op.get_bind()
    banned: dict[int, list[int]] = {}
    for run_id, variant_id in conn.execute(sa.select(_BANNED.c.run_id, _BANNED.c.variant_id)):
        banned.setdefault(int(run_id), []).append(int(variant_id))
    for row in conn.execute(sa.select(runs)).all():
        attrs = _old_attrs(row, sorted(banned.get(int(row.id), [])))
        conn.execute(runs.update().where(runs.c.id == row.id).values(attrs=attrs))
    op.drop_table("banned_variants")
    with op.batch_alter_table("runs") as batch:  # SQLite cannot drop columns in place
        for key in ("pinned_by", "pinned_parent", "elapsed_seconds", "target_generations"):
            batch.drop_column(key)
        for key in reversed(_TEXT_KEYS):
            batch.drop_column(key)

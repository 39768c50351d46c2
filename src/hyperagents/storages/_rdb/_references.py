"""Per-instance results stored as a reference to another evaluation of the same variant
(SQLite).

The engine evaluates a child on a subset of train first, then on the rest, and stores the full
train result with the subset's records in it: the subset's records were stored twice. When an
evaluation is added whose results hold every record of an earlier evaluation of the same
variant, identically, the earlier one's results are rewritten as a reference: the stage of the
evaluation that holds them and their ids in order. Reading resolves it against that
evaluation's results, so both read as they were written. A reference is only ever made to an
evaluation that is not a reference itself, and only where it reads back to the same JSON text.

Stored as format byte :data:`~._packing.JSON_RECORDS_REF`, then ``{"of": stage, "ids": ids}``
(ids as :mod:`._columns` stores a numbered column where it can) packed as
:func:`~._packing.pack_json_text` packs a text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hyperagents.exceptions import StorageError
from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._columns import ids_from_layout, ids_layout
from hyperagents.storages._rdb._packing import JSON_RECORDS_REF, json_text, pack_json_text

__all__ = ["is_reference", "make_reference", "read_reference", "resolve_reference"]

_HEAD = bytes((JSON_RECORDS_REF,))


def is_reference(stored: Any) -> bool:
    """Whether a stored results value is a reference."""
    return isinstance(stored, bytes | memoryview) and bytes(stored[:1]) == _HEAD


def resolve_reference(ids: Sequence[Any], records: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The records of ``records`` with ``ids``, in that order.

    Raises:
        StorageError: An id is not among ``records``.
    """
    by_id = {r.get("id"): r for r in records if isinstance(r, Mapping)}
    try:
        return [dict(by_id[i]) for i in ids]
    except (KeyError, TypeError):
        raise StorageError("stored results refer to records that are missing") from None


def make_reference(
    stage: str, old_text: str, old_size: int, new_records: Sequence[Any]
) -> bytes | None:
    """The results whose JSON text is ``old_text`` (stored in ``old_size`` bytes) as a
    reference to evaluation ``stage``, whose results are ``new_records``; None when they are
    not all among them, identically, or the reference would not be smaller."""
    old = json.loads(old_text)
    if not isinstance(old, list) or not old or not all(isinstance(r, dict) for r in old):
        return None
    ids = [r.get("id") for r in old]
    if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
        return None
    try:
        if dumps_json(resolve_reference(ids, new_records)) != old_text:
            return None
    except StorageError:
        return None
    text = dumps_json({"of": stage, "ids": ids_layout(ids)})
    packed = pack_json_text(text)
    body = packed if isinstance(packed, bytes) else text.encode("utf-8")  # starts with "{"
    stored = _HEAD + body
    return stored if len(stored) < old_size else None


def read_reference(stored: bytes | memoryview) -> tuple[str, list[Any]]:
    """The stage and the ids a stored reference holds.

    Raises:
        StorageError: The value is corrupt.
    """
    body = bytes(stored[1:])
    try:
        value = json.loads(body.decode("utf-8") if body[:1] == b"{" else json_text(body))
        return str(value["of"]), ids_from_layout(value["ids"])
    except (StorageError, ValueError, TypeError, LookupError, UnicodeDecodeError) as exc:
        raise StorageError(f"stored results reference is corrupt: {exc!r}") from None

"""A list of records (evaluation results) laid out by column, so deflate finds what repeats.

Stored per-instance results are lists of JSON objects with the same keys: an instance id that
counts up (``"train-0007"``), a score, feedback and output that take a few values, timings.
Row after row, deflate pays for every id's digits and every record's structure; by column,
ids become the steps between their numbers, and the columns that take few values are stored
once per distinct combination (the *group*) plus one small index per record.

The layout is a JSON object: ``{"n": records, "k": keys, "c": columns, "g": group}``. Each
column is ``{"v": values}`` (as they are), ``{"s": [prefix, width, steps]}`` (strings
``prefix + number`` zero-padded to ``width`` digits; ``steps`` the first number, then the
differences), ``{"u": counts}`` (floats that are whole microseconds, as their counts) or
``{"t": position}`` (the value at ``position`` of the record's group tuple);
the group is ``{"v": distinct tuples, "i": one index per record}``. :func:`columns_layout`
returns None for anything else (not a list of objects with the same keys in the same order);
the caller checks that the layout gives back the same text before storing it.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from hyperagents.storages._common import dumps_json

__all__ = ["columns_layout", "ids_from_layout", "ids_layout", "records_from_layout"]

#: Lists shorter than this stay rows.
MIN_RECORDS = 8
_NUMBERED = re.compile(r"(.*?)(\d+)\Z", re.S)


def _numbered(values: list[Any]) -> list[Any] | None:
    """``[prefix, width, steps]`` when every value is ``prefix`` + a number of ``width``
    digits, else None."""
    if not all(isinstance(v, str) for v in values):
        return None
    found = [_NUMBERED.match(v) for v in values]
    if not all(found):
        return None
    parts = [(m.group(1), m.group(2)) for m in found if m is not None]
    prefix, digits = parts[0]
    width = len(digits)
    if any(p != prefix or len(d) != width for p, d in parts):
        return None
    numbers = [int(d) for _, d in parts]
    steps = [numbers[0], *(b - a for a, b in itertools.pairwise(numbers))]
    return [prefix, width, steps]


def _identity(value: Any) -> Any:
    """What tells JSON values apart (``1``, ``1.0``, ``true`` and ``-0.0`` are all different):
    the type and value of a plain one, the JSON text of a list or an object."""
    kind = type(value)
    if kind is float:
        return (kind, repr(value))
    if kind in (str, int, bool) or value is None:
        return (kind, value)
    return dumps_json(value)


def _identities(column: list[Any]) -> list[Any]:
    """:func:`_identity` of each value (a column of only strings, or only integers, is its
    own)."""
    kinds = {type(v) for v in column}
    if kinds == {str} or kinds == {int}:
        return column
    return [_identity(v) for v in column]


def _microseconds(values: list[Any]) -> list[int] | None:
    """The values as whole microseconds when each is a float that many microseconds give back
    exactly (timings are kept to the microsecond), else None."""
    if not all(type(v) is float for v in values):
        return None
    counts = [round(v * 1e6) for v in values]
    exact = all(n / 1e6 == v for n, v in zip(counts, values, strict=True))
    return counts if exact else None


def _column_layout(column: list[Any]) -> dict[str, Any]:
    """How a column that is not in the group is stored."""
    numbered = _numbered(column)
    if numbered is not None:
        return {"s": numbered}
    counts = _microseconds(column)
    return {"v": column} if counts is None else {"u": counts}


def columns_layout(records: Any) -> dict[str, Any] | None:
    """``records`` laid out by column (see the module docstring), or None when they are not a
    list of at least :data:`MIN_RECORDS` objects with the same keys in the same order."""
    if not isinstance(records, list) or len(records) < MIN_RECORDS:
        return None
    if not all(type(r) is dict for r in records):
        return None
    keys = list(records[0])
    if any(list(r) != keys for r in records):
        return None
    columns = [[r[k] for r in records] for k in keys]
    texts = [_identities(column) for column in columns]
    grouped = _grouped(texts, len(records) // 4)
    layout: list[dict[str, Any]] = []
    for j, column in enumerate(columns):
        layout.append({"t": grouped.index(j)} if j in grouped else _column_layout(column))
    return {"n": len(records), "k": keys, "c": layout, "g": _group(columns, texts, grouped)}


def _grouped(texts: list[list[Any]], most: int) -> list[int]:
    """The columns to store as a group: those with the fewest distinct values first, each
    taken while the group keeps at most ``most`` distinct combinations and the column at most
    doubles their number (one that says little the others do not stays a column)."""
    order = sorted(range(len(texts)), key=lambda j: len(set(texts[j])))
    grouped: list[int] = []
    combinations = 1
    for j in order:
        trial = sorted([*grouped, j])
        count = len(set(zip(*(texts[k] for k in trial), strict=True)))
        if count <= min(most, 2 * combinations):
            grouped, combinations = trial, count
    return grouped


def _group(columns: list[list[Any]], texts: list[list[Any]], grouped: list[int]) -> dict[str, Any]:
    """The distinct tuples of the ``grouped`` columns and each record's index into them."""
    index: dict[tuple[Any, ...], int] = {}
    distinct: list[list[Any]] = []
    picks: list[int] = []
    if grouped:
        for i in range(len(columns[0])):
            key = tuple(texts[j][i] for j in grouped)
            if key not in index:
                index[key] = len(distinct)
                distinct.append([columns[j][i] for j in grouped])
            picks.append(index[key])
    return {"v": distinct, "i": picks}


def _column(spec: dict[str, Any], group: dict[str, Any]) -> list[Any]:
    if "v" in spec:
        return list(spec["v"])
    if "s" in spec:
        prefix, width, steps = spec["s"]
        numbers, total = [], 0
        for step in steps:
            total += step
            numbers.append(total)
        return [f"{prefix}{n:0{width}d}" for n in numbers]
    if "u" in spec:
        return [n / 1e6 for n in spec["u"]]
    position = spec["t"]
    return [group["v"][i][position] for i in group["i"]]


def records_from_layout(layout: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a :func:`columns_layout` holds."""
    keys = layout["k"]
    columns = [_column(spec, layout["g"]) for spec in layout["c"]]
    return [{k: columns[j][i] for j, k in enumerate(keys)} for i in range(layout["n"])]


def ids_layout(ids: list[Any]) -> dict[str, Any]:
    """A column of ids as stored in a layout: numbered where it can be, else as it is."""
    numbered = _numbered(ids)
    return {"v": list(ids)} if numbered is None else {"s": numbered}


def ids_from_layout(spec: dict[str, Any]) -> list[Any]:
    """The ids an :func:`ids_layout` holds."""
    if "s" not in spec and "v" not in spec:
        raise ValueError("not a column of ids")
    return _column(spec, {})

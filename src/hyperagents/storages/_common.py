"""Helpers shared by the storage backends (JSON and value checks, UTC time, argument
normalisation)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, TypeVar

from hyperagents.exceptions import StorageError

__all__ = [
    "check_amount",
    "check_lock_target",
    "check_score",
    "check_seconds",
    "check_target",
    "dumps_json",
    "json_copy",
    "normalise_expected",
    "utcnow",
]

_E = TypeVar("_E", bound=IntEnum)

#: Serialiser used for every JSON field: compact, strict (no NaN/Infinity), UTF-8 kept as is.
dumps_json = functools.partial(
    json.dumps, allow_nan=False, separators=(",", ":"), ensure_ascii=False
)


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def json_copy(value: Any, what: str) -> Any:
    """Return a deep copy of ``value`` made through JSON, checking it is JSON-compatible.

    Raises:
        StorageError: ``value`` holds something JSON cannot represent (an object, a NaN...).
    """
    try:
        return json.loads(dumps_json(value))
    except (TypeError, ValueError) as exc:
        raise StorageError(f"{what} is not JSON-compatible: {exc}") from None


def check_score(score: float) -> float:
    """Return ``score`` as a float.

    Raises:
        StorageError: ``score`` is not a finite real number.
    """
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise StorageError(f"score must be a number, not {score!r}") from None
    if not math.isfinite(value):
        raise StorageError(f"score must be finite, not {value!r}")
    return value


def check_target(target: int | None) -> int | None:
    """Return a generation target as an int (None stays None).

    Raises:
        StorageError: ``target`` is not a whole number >= 0.
    """
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise StorageError(f"a generation target must be a whole number >= 0, not {target!r}")
    return int(target)


def check_seconds(seconds: float) -> float:
    """Return a time spent, in seconds, as a float.

    Raises:
        StorageError: ``seconds`` is not a finite number >= 0.
    """
    return check_amount(seconds, "seconds")


def check_amount(value: float, what: str) -> float:
    """Return an amount (a time, a latency, a cost) as a float.

    Raises:
        StorageError: ``value`` is not a finite number >= 0.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StorageError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise StorageError(f"{what} must be finite and >= 0, not {number!r}")
    return number


def normalise_expected(expected: _E | Iterable[_E], enum: type[_E]) -> tuple[_E, ...]:
    """Turn an ``expected`` argument (one value or several) into a tuple of enum members."""
    if isinstance(expected, int):
        return (enum(expected),)
    return tuple(enum(value) for value in expected)


def check_lock_target(run_id: int | None, service_id: int | None) -> None:
    """Check the record of :meth:`~hyperagents.storages.BaseStorage.lock_record`.

    Raises:
        ValueError: Not exactly one of ``run_id`` and ``service_id`` is given.
    """
    if (run_id is None) == (service_id is None):
        raise ValueError("lock_record locks one record: give exactly one of run_id and service_id")

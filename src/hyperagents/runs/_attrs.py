"""The run state kept in a run record's ``attrs``: every key the engine reads or writes.

``attrs`` is free-form JSON stored with the run. The engine keeps a few pieces of its state
there: the generation target, the time spent so far, and the steering a person left (a pinned
parent, banned lineages). Each is read and written through this module only, so a change in how
they are stored is made here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperagents.storages import BaseStorage, RunRecord

__all__ = [
    "banned",
    "clear_pin",
    "elapsed_seconds",
    "initial_attrs",
    "pinned_parent",
    "store_banned",
    "store_elapsed",
    "store_pin",
    "store_target",
    "target_generations",
]

_TARGET = "target_generations"
_ELAPSED = "elapsed_seconds"
_PIN = "pinned_parent"
_BANNED = "banned"


def initial_attrs(
    task_name: str, attrs: Mapping[str, Any] | None, generations: int | None
) -> dict[str, Any]:
    """The attrs a new run is created with: its task's name, the caller's attrs and, when
    given, the generation target (in the same write as the run: never a run without it)."""
    out: dict[str, Any] = {"task_name": task_name, **dict(attrs or {})}
    if generations is not None:
        out[_TARGET] = generations
    return out


def target_generations(record: RunRecord) -> int | None:
    """The run's stored generation target (None: not set yet)."""
    value = record.attrs.get(_TARGET)
    return None if value is None else int(value)


def store_target(store: BaseStorage, run_id: int, target: int) -> None:
    """Store the run's generation target."""
    store.update_run_attrs(run_id, {_TARGET: target})


def elapsed_seconds(record: RunRecord) -> float:
    """Seconds engines have spent driving the run so far (its time budget counts them)."""
    return float(record.attrs.get(_ELAPSED, 0.0))


def store_elapsed(store: BaseStorage, run_id: int, seconds: float) -> None:
    """Store the seconds engines have spent driving the run so far."""
    store.update_run_attrs(run_id, {_ELAPSED: seconds})


def pinned_parent(record: RunRecord) -> tuple[int, str] | None:
    """The variant a person pinned as the next parent, and who did (None: no pin)."""
    pin = record.attrs.get(_PIN)
    if isinstance(pin, Mapping) and isinstance(pin.get("variant"), int):
        return pin["variant"], str(pin.get("by", "a person"))
    return None


def store_pin(store: BaseStorage, run_id: int, variant_id: int, who: str) -> None:
    """Pin ``variant_id`` as the parent of the run's next child (used once)."""
    store.update_run_attrs(run_id, {_PIN: {"variant": variant_id, "by": who}})


def clear_pin(store: BaseStorage, run_id: int) -> None:
    """Remove the pin (it has been used)."""
    store.update_run_attrs(run_id, {_PIN: None})


def banned(record: RunRecord) -> list[int]:
    """The variants whose lineages are banned as parents."""
    value = record.attrs.get(_BANNED)
    if not isinstance(value, list):
        return []
    return [b for b in value if isinstance(b, int)]


def store_banned(store: BaseStorage, run_id: int, variants: list[int]) -> None:
    """Store the banned lineages (the whole list)."""
    store.update_run_attrs(run_id, {_BANNED: variants})

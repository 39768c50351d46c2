"""What a baseline arm is told about earlier children: each as a trial with its outcome.

Built from a settled snapshot of the archive alone (like every job), so the job a resumed
baseline run rebuilds proposes what the original proposed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperagents.archive import ArchiveView
from hyperagents.constitution import objective
from hyperagents.evaluation import BaselineTrial
from hyperagents.storages import VariantRecord, VariantState

__all__ = ["baseline_trials"]

#: The first stage's score stands for the outcome of a child pruned after it.
_PRUNED_STAGE = "train_subset"


def baseline_trials(snapshot: ArchiveView, seed_values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trials of every settled variant, oldest first, as JSON.

    Args:
        snapshot: The variants settled when the job was asked.
        seed_values: The seed's own parameter values (the seed variant's trial).
    """
    trials: list[dict[str, Any]] = []
    for variant in snapshot:
        if not variant.state.is_terminal:
            continue
        if variant.generation == 0:
            params: Mapping[str, Any] = seed_values
            attrs: Mapping[str, Any] = {}
        else:
            info = variant.meta_info or {}
            params = _mapping(info.get("params"))
            attrs = _mapping(info.get("attrs"))
            if not params:
                continue  # the baseline made no child (recorded as failed): nothing was tried
        state, value = _outcome(variant)
        trials.append(BaselineTrial(dict(params), state, value, dict(attrs)).to_json())
    return trials


def _mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _outcome(variant: VariantRecord) -> tuple[str, float | None]:
    """A settled variant's trial state and value."""
    if variant.state in (VariantState.COMPLETE, VariantState.PENDING):
        value = objective(variant.scores, variant.metrics)
        return ("complete", value) if value is not None else ("failed", None)
    if variant.state is VariantState.PRUNED and _PRUNED_STAGE in variant.scores:
        return "pruned", float(variant.scores[_PRUNED_STAGE])
    return "failed", None

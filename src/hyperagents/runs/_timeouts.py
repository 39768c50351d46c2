"""Adaptive time limits: a child may take on an instance at most ``timeout_factor`` times what
its parent took there.

A child is evaluated on the instances its parent answered (the same train subset, train and
val). Its limit on each of them is ``timeout_factor`` × the parent's wall time on that instance,
never below ``timeout_floor`` and never above the task's ``instance_timeout``; an instance the
parent did not answer cleanly (an error, a timeout, no record) keeps the task's limit, so a
child that fixes a parent's quick crash is not held to the crash's time. A child that loops
forever thus costs the run ``timeout_floor`` seconds, not the task's whole limit (60 s by
default), and is recorded as it always was: that instance a ``timeout`` at its minimum score.
The seed (no parent), a champion's test and a re-check keep the task's limit. ``timeout_factor:
null`` turns it off.

The parent's times are read from its stored evaluations once per parent (a small cache), so a
resumed run computes the same limits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from hyperagents.runs._context import RunContext
from hyperagents.storages import VariantRecord
from hyperagents.tasks import Instance

__all__ = ["AdaptiveTimeouts"]

#: The split whose parent times a stage's limits come from (stages absent: the task's limit).
_SPLIT_OF = {"train_subset": "train", "train": "train", "val": "val"}
#: Parents whose times are kept in memory.
_CACHED_PARENTS = 64


class AdaptiveTimeouts:
    """The per-instance limits of children's stages (see the module).

    Args:
        ctx: The run context.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._walls: OrderedDict[int, dict[tuple[str, str], float]] = OrderedDict()

    def limits(
        self, variant: VariantRecord, stage: str, instances: Sequence[Instance]
    ) -> dict[str, float] | None:
        """The limits of the ``instances`` of ``variant``'s ``stage`` that are shorter than the
        task's (None: none are)."""
        cfg, ceiling = self._ctx.config, float(self._ctx.task.instance_timeout)
        split = _SPLIT_OF.get(stage)
        if cfg.timeout_factor is None or variant.parent_id is None or split is None:
            return None
        if ceiling <= cfg.timeout_floor:
            return None
        walls = self._parent_walls(variant.parent_id)
        found: dict[str, float] = {}
        for inst in instances:
            wall = walls.get((split, inst.id))
            if wall is not None:
                found[inst.id] = min(ceiling, max(cfg.timeout_floor, cfg.timeout_factor * wall))
        shorter = {key: limit for key, limit in found.items() if limit < ceiling}
        return shorter or None

    def stage_wall(
        self, instances: Sequence[Instance], limits: Mapping[str, float] | None
    ) -> float:
        """The wall-clock limit of a stage on ``instances`` under ``limits``."""
        ceiling = float(self._ctx.task.instance_timeout)
        given = limits or {}
        total = sum(given.get(inst.id, ceiling) for inst in instances) if instances else ceiling
        return total + self._ctx.config.eval_overhead

    def _parent_walls(self, parent_id: int) -> dict[tuple[str, str], float]:
        """The parent's wall time on each instance it answered without an error, by
        ``(split, id)`` (read once, then cached)."""
        if parent_id in self._walls:
            self._walls.move_to_end(parent_id)
            return self._walls[parent_id]
        walls: dict[tuple[str, str], float] = {}
        for record in self._ctx.parent_evaluations(parent_id):
            for result in record.results:
                wall = _clean_wall(result)
                if wall is not None:
                    walls[(record.split, str(result.get("id")))] = wall
        self._walls[parent_id] = walls
        while len(self._walls) > _CACHED_PARENTS:
            self._walls.popitem(last=False)
        return walls


def _clean_wall(result: Mapping[str, Any]) -> float | None:
    """An instance's wall time when it was answered without an error (else None)."""
    wall = result.get("wall")
    if result.get("error") or isinstance(wall, bool) or not isinstance(wall, int | float):
        return None
    return float(wall) if wall >= 0 else None

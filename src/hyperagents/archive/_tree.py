"""The archive as a tree: a tidy row layout, shared by the report's figure and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from hyperagents.storages import VariantRecord

__all__ = ["tree_rows"]


def tree_rows(variants: Sequence[VariantRecord]) -> dict[int, float]:
    """A vertical position for every variant: leaves take consecutive rows and a parent sits
    midway between its children's rows (x is the generation).

    A variant whose parent is not among ``variants`` is a root. Iterative (a no-archive lineage
    is one chain thousands deep) and linear in the number of variants.
    """
    by_id = {v.id for v in variants}
    children: dict[int | None, list[int]] = {}
    for v in variants:
        children.setdefault(v.parent_id if v.parent_id in by_id else None, []).append(v.id)
    rows: dict[int, float] = {}
    counter = 0.0
    for root in children.get(None, []):
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            kids = children.get(node, [])
            if not kids:
                rows[node] = counter
                counter += 1
            elif expanded:
                spots = [rows[kid] for kid in kids]
                rows[node] = (min(spots) + max(spots)) / 2
            else:
                stack.append((node, True))
                stack.extend((kid, False) for kid in reversed(kids))
    return rows

"""A run whose children all fail the same way: the pattern a user should be told of.

A mistake in a task or its seed (a typo the meta agent cannot read past, a module the sandbox
lacks) often gives no error at all: every child ends ``failed`` ("the meta agent made no
change") or ``invalid`` with the same reason, and the run "completes". :func:`common_failure`
finds that pattern in a run's variants so ``status`` (and anything showing a run's warnings)
can say so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hyperagents.storages import VariantRecord, VariantState

__all__ = ["common_failure"]

#: Fewer finished children than this say nothing about a pattern.
MIN_CHILDREN = 3

_SUCCESS = (VariantState.COMPLETE, VariantState.PENDING)
#: What differs between two reports of the same failure: numbers, hex ids, temporary names.
_VARYING = re.compile(r"0x[0-9a-f]+|[0-9a-f]{8,}|\d+(?:\.\d+)?|/tmp/\S*", re.IGNORECASE)


def common_failure(variants: Sequence[VariantRecord]) -> str | None:
    """A warning if every finished child (at least :data:`MIN_CHILDREN`) failed the same way:
    one state and one reason, up to the numbers and temporary names in it; else None."""
    children = [v for v in variants if v.parent_id is not None and v.state.is_terminal]
    if len(children) < MIN_CHILDREN or any(v.state in _SUCCESS for v in children):
        return None
    kinds = {(v.state, _shape(v.reason)) for v in children}
    if len(kinds) != 1:
        return None
    first = children[0]
    reason = (first.reason or "no reason recorded").strip()
    if len(reason) > 300:
        reason = reason[:300] + "…"
    return (
        f"every child so far ({len(children)}) ended {first.state.name.lower()} the same way: "
        f"{reason}"
    )


def _shape(reason: str | None) -> str:
    """The reason with what varies between reports of one failure taken out."""
    return _VARYING.sub("#", (reason or "").strip())[:1000]

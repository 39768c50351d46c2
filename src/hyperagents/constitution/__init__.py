"""Constitutions: rules every child must keep before it runs (hard rules reject it, soft rules
lower its selected objective). See :mod:`hyperagents.constitution._policy` for the format."""

from __future__ import annotations

from hyperagents.constitution._policy import (
    Constitution,
    Rule,
    Verdict,
    Violation,
    load_constitution,
    objective,
)

__all__ = ["Constitution", "Rule", "Verdict", "Violation", "load_constitution", "objective"]

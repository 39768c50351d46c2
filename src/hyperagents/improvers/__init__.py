"""Improvers: produce a child program from a parent (the meta level)."""

from __future__ import annotations

from importlib import resources

from hyperagents.improvers._base import (
    META_INFO_CAP,
    Improver,
    ImproveRequest,
    ImproveResult,
    MetaAgentImprover,
)

__all__ = [
    "META_INFO_CAP",
    "ImproveRequest",
    "ImproveResult",
    "Improver",
    "MetaAgentImprover",
    "offline_meta_agent_source",
]


def offline_meta_agent_source() -> str:
    """Source of the offline (no-LLM) meta agent that seed programs ship as ``meta_agent.py``."""
    return (
        resources.files("hyperagents.improvers.seeds")
        .joinpath("offline_meta_agent.py")
        .read_text(encoding="utf-8")
    )

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
    "META_AGENTS",
    "META_INFO_CAP",
    "ImproveRequest",
    "ImproveResult",
    "Improver",
    "MetaAgentImprover",
    "llm_meta_agent_source",
    "meta_agent_source",
    "offline_meta_agent_source",
]

#: The seed meta agents a run can start from (``--meta``).
META_AGENTS = ("task", "offline", "llm")


def offline_meta_agent_source() -> str:
    """Source of the offline (no-LLM) meta agent that seed programs ship as ``meta_agent.py``."""
    return (
        resources.files("hyperagents.improvers.seeds")
        .joinpath("offline_meta_agent.py")
        .read_text(encoding="utf-8")
    )


def llm_meta_agent_source() -> str:
    """Source of the seed LLM meta agent (it calls the run's model through ``import llm``)."""
    return (
        resources.files("hyperagents.improvers.seeds")
        .joinpath("llm_meta_agent.py")
        .read_text(encoding="utf-8")
    )


def meta_agent_source(kind: str) -> str | None:
    """The seed meta agent named ``kind``: ``offline``, ``llm``, or ``task`` (None: keep the
    task's own).

    Raises:
        ConfigError: Unknown kind.
    """
    from hyperagents.exceptions import ConfigError

    if kind == "task":
        return None
    if kind == "offline":
        return offline_meta_agent_source()
    if kind == "llm":
        return llm_meta_agent_source()
    raise ConfigError(f"unknown meta agent {kind!r}; choose one of: {', '.join(META_AGENTS)}")

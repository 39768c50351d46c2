"""Improvers: produce a child program from a parent (the meta level)."""

from __future__ import annotations

from importlib import resources

from hyperagents.exceptions import ConfigError
from hyperagents.improvers._base import (
    META_INFO_CAP,
    Improver,
    ImproveRequest,
    ImproveResult,
    MetaAgentImprover,
)
from hyperagents.sandbox import is_meta_module

__all__ = [
    "META_AGENTS",
    "META_INFO_CAP",
    "ImproveRequest",
    "ImproveResult",
    "Improver",
    "MetaAgentImprover",
    "meta_agent_files",
]

#: The seed meta agents a run can start from (``--meta``).
META_AGENTS = ("task", "offline", "llm")


def meta_agent_files(kind: str) -> dict[str, str] | None:
    """The files of the seed meta agent named ``kind`` (None for ``task``: keep the task's own).

    A seed meta agent is ``meta_agent.py`` and the sibling modules it imports, every one a
    top-level ``meta_*.py`` file of the program (:func:`hyperagents.sandbox.is_meta_module`):
    ``offline`` edits the task agent's declared parameters without a model, ``llm`` asks the
    run's language model for edits to any file.

    Raises:
        ConfigError: Unknown kind.
    """
    if kind == "task":
        return None
    if kind not in META_AGENTS:
        raise ConfigError(f"unknown meta agent {kind!r}; choose one of: {', '.join(META_AGENTS)}")
    folder = resources.files("hyperagents.improvers.seeds").joinpath(kind)
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if entry.is_file() and is_meta_module(entry.name)
    }

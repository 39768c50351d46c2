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
    "REVIEWER_FILE",
    "ImproveRequest",
    "ImproveResult",
    "Improver",
    "MetaAgentImprover",
    "default_reviewer",
    "meta_agent_files",
]

#: The file of a program whose ``review(workspace, history)`` reviews each evaluated child in a
#: run with ``review`` on (a meta file: see :mod:`hyperagents.runs._review`).
REVIEWER_FILE = "reviewer.py"

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


def default_reviewer() -> str:
    """The source of the default reviewer (:data:`REVIEWER_FILE`), given to the seed program of
    a run with ``review`` on when the task's seed has none: rules over the run's history
    offline, the run's model (through the sandbox's ``llm`` bridge) when it has one.

    Raises:
        ConfigError: The file is missing (a broken installation).
    """
    try:
        folder = resources.files("hyperagents.improvers.seeds").joinpath("reviewer")
        return folder.joinpath(REVIEWER_FILE).read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as exc:  # pragma: no cover - broken installation
        raise ConfigError(f"the default reviewer is missing: {exc}") from exc

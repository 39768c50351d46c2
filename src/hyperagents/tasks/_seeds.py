"""Seed programs of the built-in tasks: their own files and the shared offline meta agent."""

from __future__ import annotations

import importlib.resources
from pathlib import PurePosixPath

from hyperagents.exceptions import TaskError

__all__ = ["offline_meta_agent", "seed_files", "seed_text", "train_state_file"]


def offline_meta_agent() -> dict[str, str]:
    """The files of the offline seed meta agent (:func:`hyperagents.improvers.meta_agent_files`).

    Raises:
        TaskError: They are missing (a broken installation).
    """
    from hyperagents.improvers import meta_agent_files

    try:
        files = meta_agent_files("offline") or {}
    except (OSError, ModuleNotFoundError) as exc:
        files = {}
        problem = f": {exc}"
    else:
        problem = ""
    if "meta_agent.py" not in files:
        raise TaskError(
            f"the offline meta agent (hyperagents.improvers.seeds/offline/) is missing{problem}"
        )
    return files


def train_state_file() -> dict[str, str]:
    """``train_state.py``, the checkpoints of a torch trainer (``hyperagents.weights``' seed
    module), for the seed programs that train a model.

    Raises:
        TaskError: It is missing (a broken installation).
    """
    return {"train_state.py": _read("hyperagents.weights", "seed/train_state.py")}


def seed_files(package: str, *paths: str) -> dict[str, str]:
    """A seed program: the files ``paths`` of ``package`` (by name: ``seed/task_agent.py`` is
    ``task_agent.py``) and the offline meta agent's files.

    Raises:
        TaskError: A file is missing.
    """
    files = {PurePosixPath(path).name: _read(package, path) for path in paths}
    return {**files, **offline_meta_agent()}


def _read(package: str, path: str) -> str:
    """The text of the file ``path`` of ``package``.

    Raises:
        TaskError: It is missing.
    """
    try:
        return importlib.resources.files(package).joinpath(path).read_text("utf-8")
    except (OSError, ModuleNotFoundError) as exc:  # pragma: no cover - broken installation
        raise TaskError(f"seed file {package}/{path} is missing: {exc}") from exc


def seed_text(package: str, path: str) -> str:
    """The text of a seed file ``path`` of ``package`` (e.g. a task's arena mutators).

    Raises:
        TaskError: It is missing.
    """
    return _read(package, path)
